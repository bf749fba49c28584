/**
 * The sales query: a region's sales over an inclusive date range, optionally of one category:
 * how many, the revenue, the average ticket, and the five products with the most revenue (ties
 * by name). Sums run over integer cents; the reply's numbers are currency units, the average
 * rounded to the cent.
 *
 * One statement per request (after the region's id): the sales of each product in the range,
 * grouped by product. The totals are the sums of those groups and the top five the largest of
 * them, so the rows are read once, where a totals statement and a top-products statement read
 * them twice. With the `sales_region_product` index (`./schema.ts`) the statement walks the
 * products (those of the category) and, for each, seeks its sales of the region in the range:
 * the groups come out in index order, with no join per sale and no sort; ~10× cheaper than the
 * two statements it replaces on the default database. A database seeded before that index
 * existed is answered by the same grouping, planned over whatever indexes it has.
 */
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import type { SqliteDatabaseShape, SqliteError } from "../capabilities/SqliteDatabase.ts"
import type { SalesError, SalesRequest, SalesResult } from "./request.ts"

export const topProductCount = 5

/** The index the per-product plan needs; see `indexSql`. */
export const productIndex = "sales_region_product"

const Region = Schema.Struct({ id: Schema.Number })
/**
 * A row of `groupsSql`, read without decoding (a Schema decode of the ~100 rows costs more than
 * the statement): the types hold by the schema, `name` TEXT NOT NULL, and count and sum of
 * INTEGER NOT NULL over a group that has at least one sale.
 */
interface Group {
  readonly product: string
  readonly sales: number
  readonly cents: number
}

const regionSql = "SELECT id FROM regions WHERE name = ?"

/**
 * Per product: `CROSS JOIN` keeps products the outer loop, so each product's sales are one index
 * range (region, product, dates). Parameters: region id, from, to[, category].
 */
export const groupsSql = (category: boolean, indexed: boolean): string =>
  indexed
    ? "SELECT p.name AS product, count(*) AS sales, sum(s.amount_cents) AS cents FROM products p " +
      `CROSS JOIN sales s INDEXED BY ${productIndex} ON s.region_id = ? AND s.product_id = p.id AND s.sale_date BETWEEN ? AND ?` +
      (category ? " WHERE p.category = ?" : "") + " GROUP BY p.id"
    : "SELECT p.name AS product, count(*) AS sales, sum(s.amount_cents) AS cents FROM sales s JOIN products p ON p.id = s.product_id " +
      "WHERE s.region_id = ? AND s.sale_date BETWEEN ? AND ?" + (category ? " AND p.category = ?" : "") + " GROUP BY p.id"

/** SQLite's BINARY collation on UTF-8 text orders by code point; `<` on strings orders by UTF-16 unit. */
const byCodePoint = (a: string, b: string): number => {
  for (let i = 0, j = 0; i < a.length && j < b.length;) {
    const x = a.codePointAt(i)!
    const y = b.codePointAt(j)!
    if (x !== y) return x - y
    i += x > 0xffff ? 2 : 1
    j += y > 0xffff ? 2 : 1
  }
  return a.length - b.length
}

/** Most revenue first, ties by name: what `ORDER BY cents DESC, name` gave. */
const byRevenue = (a: Group, b: Group) => b.cents - a.cents || byCodePoint(a.product, b.product)

export type QuerySales = (request: SalesRequest) => Effect.Effect<SalesResult, SalesError | SqliteError>

/**
 * The query on `db`. Its plan is chosen on the first request (does the database have the
 * per-product index?) and kept, as is each region's id once found: the workers' database is
 * read-only. Fails with the reply's
 * error for an unknown region; an SqliteError is the caller's `internal`.
 */
export const makeQuerySales = (db: SqliteDatabaseShape): QuerySales => {
  let texts: readonly [string, string] | undefined
  const plan = Effect.suspend(() =>
    texts !== undefined
      ? Effect.succeed(texts)
      : Effect.map(
        db.query<{ readonly found: number }>("SELECT count(*) AS found FROM sqlite_master WHERE type = 'index' AND name = ?", [productIndex]),
        ([row]) => {
          const indexed = (row?.found ?? 0) > 0
          return texts = [groupsSql(false, indexed), groupsSql(true, indexed)] as const
        }
      )
  )
  // Region ids, kept like the plan: a statement per request less. Only regions found are kept,
  // so the map holds no more entries than the table has rows.
  const regions = new Map<string, number>()
  const regionId = (name: string) =>
    Effect.suspend(() => {
      const known = regions.get(name)
      if (known !== undefined) return Effect.succeed(known)
      return Effect.flatMap(db.queryAs(Region, regionSql, [name]), ([region]) => {
        if (region === undefined) {
          return Effect.fail<SalesError>({ code: "unknown_region", message: `no region named ${JSON.stringify(name)}` })
        }
        regions.set(name, region.id)
        return Effect.succeed(region.id)
      })
    })
  return (request) =>
    Effect.gen(function*() {
      const [withoutCategory, withCategory] = yield* plan
      const region = yield* regionId(request.region)
      const groups = request.category === undefined
        ? yield* db.query<Group>(withoutCategory, [region, request.from, request.to])
        : yield* db.query<Group>(withCategory, [region, request.from, request.to, request.category])
      let sales = 0
      let cents = 0
      for (const group of groups) {
        sales += group.sales
        cents += group.cents
      }
      const top = [...groups].sort(byRevenue).slice(0, topProductCount)
      return {
        sales,
        revenue: cents / 100,
        averageTicket: sales === 0 ? 0 : Math.round(cents / sales) / 100,
        topProducts: top.map((row) => ({ product: row.product, revenue: row.cents / 100 }))
      }
    })
}

/** One query on its own (its plan looked up again): for a caller that asks once. */
export const querySales = (
  db: SqliteDatabaseShape,
  request: SalesRequest
): Effect.Effect<SalesResult, SalesError | SqliteError> => makeQuerySales(db)(request)
