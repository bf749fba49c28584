/**
 * The sales query: a region's sales over an inclusive date range, optionally of one category:
 * how many, the revenue, the average ticket, and the five products with the most revenue (ties
 * by name). Sums run over integer cents; the reply's numbers are currency units, the average
 * rounded to the cent.
 */
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import type { SqliteDatabaseShape, SqliteError } from "../capabilities/SqliteDatabase.ts"
import type { SalesError, SalesRequest, SalesResult } from "./request.ts"

export const topProductCount = 5

const Region = Schema.Struct({ id: Schema.Number })
const Totals = Schema.Struct({ sales: Schema.Number, cents: Schema.Number })
const Top = Schema.Struct({ product: Schema.String, cents: Schema.Number })

const filter = (category: boolean) =>
  category
    ? "FROM sales s JOIN products p ON p.id = s.product_id WHERE s.region_id = ? AND s.sale_date BETWEEN ? AND ? AND p.category = ?"
    : "FROM sales s JOIN products p ON p.id = s.product_id WHERE s.region_id = ? AND s.sale_date BETWEEN ? AND ?"

const totalsSql = (category: boolean) => `SELECT count(*) AS sales, coalesce(sum(s.amount_cents), 0) AS cents ${filter(category)}`
const topSql = (category: boolean) =>
  `SELECT p.name AS product, sum(s.amount_cents) AS cents ${filter(category)} GROUP BY p.id ORDER BY cents DESC, p.name LIMIT ${topProductCount}`

/** Fails with the reply's error for an unknown region; an SqliteError is the caller's `internal`. */
export const querySales = (
  db: SqliteDatabaseShape,
  request: SalesRequest
): Effect.Effect<SalesResult, SalesError | SqliteError> =>
  Effect.gen(function*() {
    const [region] = yield* db.queryAs(Region, "SELECT id FROM regions WHERE name = ?", [request.region])
    if (region === undefined) {
      return yield* Effect.fail<SalesError>({ code: "unknown_region", message: `no region named ${JSON.stringify(request.region)}` })
    }
    const category = request.category !== undefined
    const params = category ? [region.id, request.from, request.to, request.category!] : [region.id, request.from, request.to]
    const [totals] = yield* db.queryAs(Totals, totalsSql(category), params)
    const top = yield* db.queryAs(Top, topSql(category), params)
    const { sales, cents } = totals ?? { sales: 0, cents: 0 }
    return {
      sales,
      revenue: cents / 100,
      averageTicket: sales === 0 ? 0 : Math.round(cents / sales) / 100,
      topProducts: top.map((row) => ({ product: row.product, revenue: row.cents / 100 }))
    }
  })
