/**
 * `weekly-report` (Mondays at 08:00 in its zone): aggregates the previous week's orders from the
 * orders system's tables (`orders`, `order_items`; src/orders/sql.ts) and publishes the report as
 * one JSON message through the `Publisher` (on RabbitMQ: to the topic exchange
 * `WEEKLY_REPORT_TOPIC` [reports], routing key `weekly-report`).
 *
 * "The previous week" is the one before the run's scheduled time — Monday 00:00 to Monday 00:00
 * in the job's zone — never the one before whenever a retry or a catch-up started: an attempt
 * retried on Tuesday reports the same week with the same figures. A manual run reports the last
 * whole week before it was triggered.
 *
 * The scheduler only reads those tables: the orders API creates them (its migrations). Run
 * against a database without them, the job fails with the database's own message and the history
 * records it.
 */
import * as Clock from "effect/Clock"
import * as Config from "effect/Config"
import * as Effect from "effect/Effect"
import * as Result from "effect/Result"
import { Publisher, type PublisherError } from "../../capabilities/Publisher.ts"
import { SqlDatabase, type SqlError } from "../../capabilities/SqlDatabase.ts"
import { configIssue } from "../../runtime/config.ts"
import { job } from "../job.ts"
import { parseSchedule, previousOccurrence } from "../schedule.ts"
import { CurrentRun } from "../scheduler.ts"

export interface WeeklyReportOptions {
  /** Where the report goes: a topic (a RabbitMQ topic exchange) [reports]. */
  readonly topic: string
  /** The zone of the schedule and of the week's bounds [the scheduler's TZ]. */
  readonly timeZone: string
  /** [0 8 * * 1] */
  readonly schedule?: string
  /** SKUs listed in `topSkus` [10]. */
  readonly topSkus?: number
}

export interface WeeklyReport {
  readonly report: "weekly-orders"
  /** Inclusive, ISO 8601 (UTC). */
  readonly weekStart: string
  /** Exclusive. */
  readonly weekEnd: string
  readonly timeZone: string
  readonly orders: number
  readonly customers: number
  readonly items: number
  readonly revenueCents: number
  readonly topSkus: ReadonlyArray<{ readonly sku: string; readonly quantity: number; readonly revenueCents: number }>
}

/** The Monday-to-Monday week before `at` in `timeZone`, DST included (a week may be 167 or 169 hours). */
export const previousWeek = (at: Date, timeZone: string): { readonly start: Date; readonly end: Date } => {
  const monday = parseSchedule("0 0 * * 1", timeZone)
  if (Result.isFailure(monday)) throw new Error(`invalid time zone ${timeZone}`)
  // The Monday midnight at or before `at` ends the week; the one before that starts it.
  const end = previousOccurrence(monday.success, at.getTime())
  const start = previousOccurrence(monday.success, end - 1)
  return { start: new Date(start), end: new Date(end) }
}

const totals = `
  select count(*)::int as orders,
         count(distinct customer_id)::int as customers,
         coalesce(sum(total_cents), 0)::text as revenue_cents,
         coalesce((select sum(i.quantity) from order_items i join orders o2 on o2.id = i.order_id
                   where o2.created_at >= $1::timestamptz and o2.created_at < $2::timestamptz), 0)::int as items
  from orders where created_at >= $1::timestamptz and created_at < $2::timestamptz`

const skus = `
  select i.sku, sum(i.quantity)::int as quantity, sum(i.quantity * i.unit_price_cents)::text as revenue_cents
  from order_items i join orders o on o.id = i.order_id
  where o.created_at >= $1::timestamptz and o.created_at < $2::timestamptz
  group by i.sku order by sum(i.quantity * i.unit_price_cents) desc, i.sku limit $3::int`

/** The report of the week before `at`, read in one transaction so its figures agree with each other. */
export const buildReport = (at: Date, options: WeeklyReportOptions): Effect.Effect<WeeklyReport, SqlError, SqlDatabase> =>
  Effect.gen(function*() {
    const week = previousWeek(at, options.timeZone)
    const db = yield* SqlDatabase
    return yield* db.transaction((tx) =>
      Effect.gen(function*() {
        const [sum] = yield* tx.query<{ orders: number; customers: number; revenue_cents: string; items: number }>(totals, [week.start, week.end])
        const top = yield* tx.query<{ sku: string; quantity: number; revenue_cents: string }>(skus, [week.start, week.end, options.topSkus ?? 10])
        return {
          report: "weekly-orders",
          weekStart: week.start.toISOString(),
          weekEnd: week.end.toISOString(),
          timeZone: options.timeZone,
          orders: sum?.orders ?? 0,
          customers: sum?.customers ?? 0,
          items: sum?.items ?? 0,
          revenueCents: Number(sum?.revenue_cents ?? 0),
          topSkus: top.map((row) => ({ sku: row.sku, quantity: row.quantity, revenueCents: Number(row.revenue_cents) }))
        } satisfies WeeklyReport
      })
    )
  })

/** Builds the report of the week before `at` and publishes it; answers what was published. */
export const publishReport = (at: Date, options: WeeklyReportOptions): Effect.Effect<WeeklyReport, SqlError | PublisherError, SqlDatabase | Publisher> =>
  Effect.gen(function*() {
    const report = yield* buildReport(at, options)
    const publisher = yield* Publisher
    yield* publisher.publish(options.topic, [{
      // One id per week: a retry that publishes again is recognisably the same report.
      id: `weekly-report-${report.weekStart}`,
      key: "weekly-report",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(report)
    }])
    yield* Effect.logInfo(`weekly-report: ${report.orders} orders, ${report.revenueCents} cents for the week from ${report.weekStart}, published to ${options.topic}`)
    return report
  })

export const weeklyReport = (options: WeeklyReportOptions) =>
  job({
    name: "weekly-report",
    schedule: options.schedule ?? "0 8 * * 1",
    timeZone: options.timeZone,
    retry: { base: "1 minute", max: "15 minutes", maxAttempts: 5 },
    // Stopped over the weekend, Monday's report still goes out when a replica starts.
    missed: "catch-up",
    run: Effect.gen(function*() {
      const run = yield* CurrentRun
      return yield* publishReport(run?.scheduledAt ?? new Date(yield* Clock.currentTimeMillis), options)
    })
  })

/** `WEEKLY_REPORT_TOPIC` [reports]. */
export const weeklyReportTopic: Config.Config<string> = Config.String("WEEKLY_REPORT_TOPIC").pipe(
  Config.withDefault("reports"),
  Config.mapEffect((topic) =>
    /^[A-Za-z0-9._:-]{1,200}$/.test(topic)
      ? Effect.succeed(topic)
      : Effect.fail(configIssue("WEEKLY_REPORT_TOPIC", "a topic name of letters, digits and . _ : -", `got "${topic}"`))
  )
)
