/**
 * A deterministic sales database: the same options give the same rows, byte for byte the same
 * answers. The original's sizes are the defaults (5 regions, ~100 products in categories,
 * ~10 000 sales over one year); larger databases come from `sales`.
 */
import * as Effect from "effect/Effect"
import type { SqliteDatabaseShape, SqliteError, SqliteParam } from "../capabilities/SqliteDatabase.ts"
import { indexSql, schemaSql } from "./schema.ts"

export const regions = ["North", "Northeast", "Central-West", "Southeast", "South"] as const

export const categories = [
  "Electronics", "Books", "Clothing", "Home", "Sports", "Toys", "Grocery", "Beauty", "Garden", "Automotive"
] as const

export interface SeedOptions {
  readonly seed: number
  /** Products, spread over the categories round-robin; default 100. */
  readonly products: number
  readonly sales: number
  /** First and last sale day, inclusive, YYYY-MM-DD. */
  readonly from: string
  readonly to: string
}

export const defaultSeedOptions: SeedOptions = { seed: 42, products: 100, sales: 10_000, from: "2024-01-01", to: "2024-12-31" }

export interface Seeded {
  readonly regions: number
  readonly products: number
  readonly sales: number
  readonly revenueCents: number
}

/** mulberry32: small, fast and repeatable; test data, not cryptography. */
export const prng = (seed: number) => {
  let state = seed | 0
  return () => {
    state = (state + 0x6d2b79f5) | 0
    let t = Math.imul(state ^ (state >>> 15), 1 | state)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const dayMillis = 86_400_000
const dayNumber = (date: string) => Date.parse(`${date}T00:00:00Z`) / dayMillis
const dateOf = (day: number) => new Date(day * dayMillis).toISOString().slice(0, 10)

const batchSize = 5_000

/**
 * Writes the schema and rows into an empty database, in WAL mode (readers never wait for each
 * other), indexes last. `progress` is told after each batch of sales.
 */
export const seedSales = (
  db: SqliteDatabaseShape,
  options: SeedOptions,
  progress: (written: number, total: number) => Effect.Effect<void> = () => Effect.void
): Effect.Effect<Seeded, SqliteError> =>
  Effect.gen(function*() {
    const next = prng(options.seed)
    const pick = (n: number) => Math.floor(next() * n)
    yield* db.exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;")
    yield* db.exec(schemaSql)
    const prices: Array<number> = []
    yield* db.transaction(Effect.gen(function*() {
      for (const [i, name] of regions.entries()) yield* db.run("INSERT INTO regions (id, name) VALUES (?, ?)", [i + 1, name])
      for (let i = 0; i < options.products; i++) {
        const category = categories[i % categories.length]!
        const price = 500 + pick(199_500)
        prices.push(price)
        yield* db.run("INSERT INTO products (id, name, category, price_cents) VALUES (?, ?, ?, ?)", [
          i + 1, `${category} #${Math.floor(i / categories.length) + 1}`, category, price
        ])
      }
    }))
    const first = dayNumber(options.from)
    const days = dayNumber(options.to) - first + 1
    let revenueCents = 0
    for (let start = 0; start < options.sales; start += batchSize) {
      const end = Math.min(options.sales, start + batchSize)
      yield* db.transaction(Effect.gen(function*() {
        for (let id = start + 1; id <= end; id++) {
          const product = pick(options.products)
          const quantity = 1 + pick(5)
          const amount = prices[product]! * quantity
          revenueCents += amount
          const row: ReadonlyArray<SqliteParam> = [id, 1 + pick(regions.length), product + 1, dateOf(first + pick(days)), quantity, amount]
          yield* db.run("INSERT INTO sales (id, region_id, product_id, sale_date, quantity, amount_cents) VALUES (?, ?, ?, ?, ?, ?)", row)
        }
      }))
      yield* progress(end, options.sales)
    }
    yield* db.exec(indexSql)
    yield* db.exec("ANALYZE; PRAGMA wal_checkpoint(TRUNCATE);")
    return { regions: regions.length, products: options.products, sales: options.sales, revenueCents }
  })
