/**
 * The sales database and query: the seeder repeats itself, the query's numbers are those of a
 * computation over the raw rows, and every bad request gets its code.
 */
import { describe, expect, test } from "bun:test"
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as Effect from "effect/Effect"
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import type { SqliteDatabaseShape } from "../../src/capabilities/SqliteDatabase.ts"
import * as Sqlite from "../../layers/sqlite/index.ts"
import { answer, makeAnswer } from "../../src/sales/answer.ts"
import { groupsSql, productIndex } from "../../src/sales/query.ts"
import { parseRequest, SalesRequest, type SalesReply } from "../../src/sales/request.ts"
import { categories, defaultSeedOptions, regions, seedSales, type SeedOptions } from "../../src/sales/seed.ts"

const dir = mkdtempSync(join(tmpdir(), "sales-"))
let files = 0

const seeded = (options: Partial<SeedOptions> = {}): Effect.Effect<SqliteDatabaseShape, unknown, Scope.Scope> =>
  Effect.gen(function*() {
    const driver = yield* Sqlite.loadDriver
    const path = join(dir, `sales-${files++}.db`)
    yield* Effect.scoped(Effect.flatMap(driver.open({ path, create: true }), (db) => seedSales(db, { ...defaultSeedOptions, ...options })))
    return yield* driver.open({ path, readOnly: true })
  })

const run = <A>(effect: Effect.Effect<A, unknown, Scope.Scope>) => Effect.runPromise(Effect.scoped(effect))

const dump = (db: SqliteDatabaseShape) =>
  Effect.all([
    db.query("SELECT * FROM regions ORDER BY id"),
    db.query("SELECT * FROM products ORDER BY id"),
    db.query("SELECT * FROM sales ORDER BY id")
  ])

const body = (value: unknown) => new TextEncoder().encode(typeof value === "string" ? value : JSON.stringify(value))

const ask = (db: SqliteDatabaseShape, request: unknown): Effect.Effect<SalesReply> => answer(db, body(request))

interface SaleRow {
  region: string
  product: string
  category: string
  sale_date: string
  amount_cents: number
}

/** The expected result from the raw rows, in plain code. */
const expectedFor = (rows: ReadonlyArray<SaleRow>, request: SalesRequest) => {
  const chosen = rows.filter((r) =>
    r.region === request.region && r.sale_date >= request.from && r.sale_date <= request.to &&
    (request.category === undefined || r.category === request.category)
  )
  const cents = chosen.reduce((sum, r) => sum + r.amount_cents, 0)
  const byProduct = new Map<string, number>()
  for (const r of chosen) byProduct.set(r.product, (byProduct.get(r.product) ?? 0) + r.amount_cents)
  const top = [...byProduct].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)).slice(0, 5)
  return {
    sales: chosen.length,
    revenue: cents / 100,
    averageTicket: chosen.length === 0 ? 0 : Math.round(cents / chosen.length) / 100,
    topProducts: top.map(([product, c]) => ({ product, revenue: c / 100 }))
  }
}

describe("seeder", () => {
  test("the same seed writes the same rows; another seed other rows; the sizes asked for", () =>
    run(Effect.gen(function*() {
      const a = yield* dump(yield* seeded({ seed: 7, sales: 3_000 }))
      const b = yield* dump(yield* seeded({ seed: 7, sales: 3_000 }))
      const c = yield* dump(yield* seeded({ seed: 8, sales: 3_000 }))
      expect(a).toEqual(b)
      expect(a[2]).not.toEqual(c[2])
      expect(a[0]!.map((r) => (r as { name: string }).name)).toEqual([...regions])
      expect(a[1]).toHaveLength(100)
      expect(new Set(a[1]!.map((r) => (r as { category: string }).category))).toEqual(new Set(categories))
      expect(a[2]).toHaveLength(3_000)
      const dates = a[2]!.map((r) => (r as { sale_date: string }).sale_date)
      expect(dates.every((d) => d >= "2024-01-01" && d <= "2024-12-31")).toBe(true)
    })), 60_000)

  test("the defaults are the original's sizes, in WAL mode, with the query's indexes", () =>
    run(Effect.gen(function*() {
      const db = yield* seeded()
      const [counts] = yield* db.query<{ regions: number; products: number; sales: number }>(
        "SELECT (SELECT count(*) FROM regions) AS regions, (SELECT count(*) FROM products) AS products, (SELECT count(*) FROM sales) AS sales"
      )
      expect(counts).toEqual({ regions: 5, products: 100, sales: 10_000 })
      expect(yield* db.query("PRAGMA journal_mode")).toEqual([{ journal_mode: "wal" }])
      // Each product's sales are one range of the covering index: no table reads, no sort for the grouping.
      for (const category of [false, true]) {
        const plan = yield* db.query<{ detail: string }>(
          `EXPLAIN QUERY PLAN ${groupsSql(category, true)}`, [1, "2024-01-01", "2024-02-01", ...(category ? ["Books"] : [])]
        )
        const details = plan.map((p) => p.detail).join(" | ")
        expect(details).toContain(`USING COVERING INDEX ${productIndex} (region_id=? AND product_id=? AND sale_date>? AND sale_date<?)`)
        expect(details).not.toContain("TEMP B-TREE")
      }
    })), 60_000)
})

describe("query", () => {
  test("its numbers equal a computation over the raw rows, with and without a category", () =>
    run(Effect.gen(function*() {
      const db = yield* seeded({ seed: 3 })
      const rows = yield* db.query<SaleRow>(
        "SELECT r.name AS region, p.name AS product, p.category, s.sale_date, s.amount_cents FROM sales s JOIN regions r ON r.id = s.region_id JOIN products p ON p.id = s.product_id"
      )
      const requests: Array<SalesRequest> = [
        { region: "South", from: "2024-01-01", to: "2024-12-31" },
        { region: "North", from: "2024-03-10", to: "2024-03-20" },
        { region: "Southeast", category: "Books", from: "2024-02-01", to: "2024-06-30" },
        { region: "Northeast", category: "Toys", from: "2024-07-04", to: "2024-07-04" },
        { region: "Central-West", from: "2025-01-01", to: "2025-12-31" },
        { region: "Central-West", category: "No such category", from: "2024-01-01", to: "2024-12-31" }
      ]
      for (const request of requests) {
        const reply = yield* ask(db, request)
        expect(reply).toEqual({ ok: true, result: expectedFor(rows, request) })
      }
      const whole = yield* ask(db, requests[0])
      expect(whole.ok && whole.result.sales > 1_000 && whole.result.topProducts.length === 5).toBe(true)
      const empty = yield* ask(db, requests[4])
      expect(empty).toEqual({ ok: true, result: { sales: 0, revenue: 0, averageTicket: 0, topProducts: [] } })
    })), 60_000)
})

describe("bad requests", () => {
  const cases: ReadonlyArray<[string, unknown, string]> = [
    ["not JSON", "{region: South", "bad_request"],
    ["JSON but not an object", "[1, 2]", "bad_request"],
    ["missing region", { from: "2024-01-01", to: "2024-02-01" }, "bad_request"],
    ["missing dates", { region: "South" }, "bad_request"],
    ["region not a string", { region: 5, from: "2024-01-01", to: "2024-02-01" }, "bad_request"],
    ["empty region", { region: "", from: "2024-01-01", to: "2024-02-01" }, "bad_request"],
    ["category not a string", { region: "South", category: 1, from: "2024-01-01", to: "2024-02-01" }, "bad_request"],
    ["malformed date", { region: "South", from: "01/02/2024", to: "2024-02-01" }, "bad_request"],
    ["no such day", { region: "South", from: "2024-02-30", to: "2024-03-01" }, "bad_request"],
    ["reversed range", { region: "South", from: "2024-03-01", to: "2024-02-01" }, "invalid_range"],
    ["unknown region", { region: "Atlantis", from: "2024-01-01", to: "2024-02-01" }, "unknown_region"],
    ["oversized body", { region: "South", from: "2024-01-01", to: "2024-02-01", pad: "x".repeat(20_000) }, "bad_request"]
  ]

  test("each gets an error reply with its code and a message", () =>
    run(Effect.gen(function*() {
      const db = yield* seeded({ sales: 100 })
      for (const [name, request, code] of cases) {
        const reply = yield* ask(db, request)
        expect({ name, ok: reply.ok, code: reply.ok ? undefined : reply.error.code as string }).toEqual({ name, ok: false, code })
        expect(reply.ok ? "" : reply.error.message).not.toBe("")
      }
      const notUtf8 = yield* answer(db, new Uint8Array([0x7b, 0xff, 0x7d]))
      expect(notUtf8).toEqual({ ok: false, error: { code: "bad_request", message: "request body is not UTF-8" } })
    })), 60_000)

  test("the field at fault is named", () => {
    const parsed = parseRequest(body({ region: "South", from: "2024-13-01", to: "2024-12-01" }))
    expect(Result.isFailure(parsed) && parsed.failure.message).toContain("from")
  })

  test("a good request decodes as the Schema decodes it: its fields, unknown ones left out", () => {
    const cases: ReadonlyArray<Record<string, unknown>> = [
      { region: "South", from: "2024-01-01", to: "2024-02-01" },
      { region: "South", category: "Books", from: "2024-01-01", to: "2024-02-01", extra: [1], note: "kept out" },
      { region: "x".repeat(200), from: "2024-02-29", to: "2024-02-29" }
    ]
    for (const request of cases) {
      const parsed = parseRequest(body(request))
      const expected = Schema.decodeUnknownSync(SalesRequest)(request)
      expect(Result.isSuccess(parsed) && parsed.success).toEqual(expected)
      expect(Result.isSuccess(parsed) && Object.keys(parsed.success).sort()).toEqual(Object.keys(expected).sort())
    }
    for (const bad of [{ region: "x".repeat(201), from: "2024-01-01", to: "2024-02-01" }, { region: "South", category: "", from: "2024-01-01", to: "2024-02-01" }, { region: "South", category: null, from: "2024-01-01", to: "2024-02-01" }]) {
      expect(Result.isFailure(parseRequest(body(bad)))).toBe(true)
    }
  })

  test("a region's id, once found, is kept; an unknown region is looked up again each time", () =>
    run(Effect.gen(function*() {
      const db = yield* seeded({ sales: 100 })
      const statements: Array<string> = []
      const counting: SqliteDatabaseShape = {
        ...db,
        query: (text, params) => {
          statements.push(text)
          return db.query(text, params)
        },
        queryAs: (schema, text, params) => {
          statements.push(text)
          return db.queryAs(schema, text, params)
        }
      }
      const answerOf = makeAnswer(counting)
      const ask2 = (request: unknown) => answerOf(body(request))
      const first = yield* ask2({ region: "South", from: "2024-01-01", to: "2024-02-01" })
      const second = yield* ask2({ region: "South", from: "2024-01-01", to: "2024-02-01" })
      expect(second).toEqual(first)
      expect(statements.filter((text) => text.includes("FROM regions")).length).toBe(1)
      yield* ask2({ region: "Atlantis", from: "2024-01-01", to: "2024-02-01" })
      const again = yield* ask2({ region: "Atlantis", from: "2024-01-01", to: "2024-02-01" })
      expect(again.ok ? "" : again.error.code).toBe("unknown_region")
      expect(statements.filter((text) => text.includes("FROM regions")).length).toBe(3)
    })), 60_000)

  test("a query that fails is an internal error, its cause kept out of the reply", () =>
    run(Effect.gen(function*() {
      const driver = yield* Sqlite.loadDriver
      const db = yield* driver.open({ path: ":memory:", create: true })
      const reply = yield* ask(db, { region: "South", from: "2024-01-01", to: "2024-02-01" })
      expect(reply).toEqual({ ok: false, error: { code: "internal", message: "the query failed" } })
    })))
})
