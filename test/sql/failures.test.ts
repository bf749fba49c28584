import { afterAll, describe, expect, test } from "bun:test"
import * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"
import * as PgliteSql from "../../layers/pglite/sql.ts"
import * as PostgresSql from "../../layers/postgres/sql.ts"
import { SqlDatabase, SqlError } from "../../src/capabilities/SqlDatabase.ts"
import { isPermanentForData } from "../../src/sql/failures.ts"
import { dropPostgresSchema, freshSchema, postgresUrl, probePostgres, requireServer } from "../support/servers.ts"

const failing = (code?: string) =>
  code === undefined ? new SqlError({ operation: "query", cause: "connection refused" }) : new SqlError({ operation: "query", cause: "x", code })

describe("isPermanentForData", () => {
  test.each([
    ["22021", "invalid byte sequence (a NUL in text)"],
    ["22P05", "untranslatable character (\\u0000 in jsonb)"],
    ["22P02", "invalid text representation (a lone surrogate in JSON)"],
    ["22001", "string too long for the column"],
    ["23505", "unique violation"],
    ["23502", "not-null violation"],
    ["54000", "index row size exceeds the maximum"]
  ])("%s (%s) is permanent: the same values fail again", (code) => {
    expect(isPermanentForData(failing(code))).toBe(true)
  })

  test.each([
    [undefined, "no SQLSTATE: the server is unreachable, the socket closed"],
    ["08006", "connection failure"],
    ["40001", "serialization failure"],
    ["40P01", "deadlock"],
    ["53300", "too many connections"],
    ["57P01", "admin shutdown"],
    ["57014", "query canceled"],
    ["42P01", "undefined table: a bug to fix, not data to drop"],
    ["25P02", "transaction aborted"]
  ])("%s (%s) is not", (code) => {
    expect(isPermanentForData(failing(code))).toBe(false)
  })
})

// Random, so it does not compress below an index entry's limit as a repeated character would.
const incompressible = (length: number) => {
  let text = ""
  while (text.length < length) text += crypto.randomUUID().replaceAll("-", "")
  return text.slice(0, length)
}

/** What the drivers really answer for values PostgreSQL cannot store: each must classify as permanent. */
const pinned = (name: string, layer: () => Layer.Layer<SqlDatabase, SqlError>) =>
  describe(`values ${name} can never store`, () => {
    const failure = (setup: string, text: string, params: ReadonlyArray<unknown>) =>
      Effect.runPromise(
        Effect.gen(function*() {
          const db = yield* SqlDatabase
          yield* db.query(setup)
          return yield* Effect.flip(db.query(text, params))
        }).pipe(Effect.provide(layer()))
      )
    const table = () => `poison_${crypto.randomUUID().replaceAll("-", "").slice(0, 8)}`

    test("a NUL in a text parameter: 22021, permanent", async () => {
      const t = table()
      const error = await failure(`create table ${t} (id text primary key)`, `insert into ${t} (id) values ($1)`, ["nul\u0000id"])
      expect(error.code).toBe("22021")
      expect(isPermanentForData(error)).toBe(true)
    })

    test("a NUL escaped in JSON read as jsonb: 22P05, permanent", async () => {
      const error = await failure("select 1", "select * from jsonb_to_recordset($1::text::jsonb) as t(id text)", [
        JSON.stringify([{ id: "nul\u0000id" }])
      ])
      expect(error.code).toBe("22P05")
      expect(isPermanentForData(error)).toBe(true)
    })

    test("a lone surrogate escaped in JSON read as jsonb: 22P02, permanent", async () => {
      const error = await failure("select 1", "select * from jsonb_to_recordset($1::text::jsonb) as t(id text)", [
        JSON.stringify([{ id: "\ud800x" }])
      ])
      expect(error.code).toBe("22P02")
      expect(isPermanentForData(error)).toBe(true)
    })

    test("a 40 kB value in an indexed text column: 54000, permanent", async () => {
      const t = table()
      const error = await failure(`create table ${t} (id text primary key)`, `insert into ${t} (id) values ($1)`, [incompressible(40_000)])
      expect(error.code).toBe("54000")
      expect(isPermanentForData(error)).toBe(true)
    })

    test("a lone surrogate in a plain text parameter is not refused but stored as U+FFFD: validate before", async () => {
      const rows = await Effect.runPromise(
        SqlDatabase.use((db) => db.query<{ id: string }>("select $1::text as id", ["\ud800x"])).pipe(Effect.provide(layer()))
      )
      expect(rows[0]?.id).toBe("\ufffdx")
    })
  })

pinned("PGlite", () => PgliteSql.layer())

const url = postgresUrl()
if (await requireServer("PostgreSQL", probePostgres(url))) {
  const schema = freshSchema()
  afterAll(() => dropPostgresSchema(url, schema))
  pinned("PostgreSQL", () => PostgresSql.layer({ url, schema, max: 2 }))
}
