/**
 * `database-cleanup` (daily at 02:00 in the scheduler's zone): deletes rows soft-deleted more
 * than a retention [90 days] ago — rows whose `deleted_at` (or another timestamptz column) is
 * older than the run's scheduled time less the retention — from the tables it is given, in
 * batches, and reports how many went per table.
 *
 * Which tables is configuration, not code: no table of this project soft-deletes, and the
 * application that owns a table knows its column. `CLEANUP_TABLES=sessions,audit.events:removed_at`
 * names them (`table` or `schema.table`, with `:column` when it is not `deleted_at`).
 *
 * Batches keep each DELETE short: one statement over millions of rows holds its locks and
 * bloats the WAL in one go, and a timeout in the middle would roll all of it back. Each batch is
 * its own statement and commits; a run interrupted halfway keeps what it deleted, and the next
 * run carries on. The cut-off comes from the run's scheduled time, so a retry deletes exactly
 * what the first attempt meant to.
 */
import * as Clock from "effect/Clock"
import * as Config from "effect/Config"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { SqlDatabase, type SqlError } from "../../capabilities/SqlDatabase.ts"
import { configIssue, intInRange } from "../../runtime/config.ts"
import { longDuration } from "../config.ts"
import { job } from "../job.ts"
import { CurrentRun } from "../scheduler.ts"

export interface CleanupTarget {
  /** `table` or `schema.table`. */
  readonly table: string
  /** A timestamptz column, null while the row is live [deleted_at]. */
  readonly column: string
}

export interface CleanupOptions {
  readonly targets: ReadonlyArray<CleanupTarget>
  /** Rows deleted longer ago than this go [90 days]. */
  readonly retention: Duration.Duration
  /** Rows per DELETE [1000]. */
  readonly batchSize: number
  /** [0 2 * * *] */
  readonly schedule?: string
}

export interface CleanupReport {
  readonly cutoff: Date
  readonly deleted: ReadonlyArray<{ readonly table: string; readonly rows: number; readonly batches: number }>
}

const identifier = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/
const quote = (name: string) => `"${name}"`

/** Parses `table`, `schema.table`, either with `:column`; undefined when it is not plain identifiers. */
export const parseTarget = (text: string): CleanupTarget | undefined => {
  const [tablePart, column = "deleted_at", ...rest] = text.trim().split(":")
  const parts = (tablePart ?? "").split(".")
  if (rest.length > 0 || parts.length > 2 || !parts.every((p) => identifier.test(p)) || !identifier.test(column)) return undefined
  return { table: parts.join("."), column }
}

/**
 * One batch: at most `batchSize` rows soft-deleted before `cutoff`, locked rows left to the next
 * batch or run (SKIP LOCKED: a row being restored right now is not fought over). Answers the count.
 */
const deleteBatch = (target: CleanupTarget, cutoff: Date, batchSize: number) => {
  const table = target.table.split(".").map(quote).join(".")
  const column = quote(target.column)
  return SqlDatabase.use((db) =>
    db.query<{ n: number }>(
      `with doomed as (
         select ctid from ${table} where ${column} is not null and ${column} < $1::timestamptz
         limit $2::int for update skip locked
       ), deleted as (
         delete from ${table} where ctid in (select ctid from doomed) returning 1
       )
       select count(*)::int as n from deleted`,
      [cutoff, batchSize]
    )
  ).pipe(Effect.map((rows) => rows[0]?.n ?? 0))
}

/** Deletes every row of `target` soft-deleted before `cutoff`, batch by batch. */
export const purgeSoftDeleted = (target: CleanupTarget, cutoff: Date, batchSize: number) =>
  Effect.gen(function*() {
    let rows = 0
    let batches = 0
    while (true) {
      const n = yield* deleteBatch(target, cutoff, batchSize)
      rows += n
      if (n > 0) batches++
      if (n < batchSize) return { table: target.table, rows, batches }
    }
  })

/** The cleanup of every target, with the cut-off taken from `at` (the run's scheduled time). */
export const cleanUp = (options: CleanupOptions, at: Date): Effect.Effect<CleanupReport, SqlError, SqlDatabase> =>
  Effect.gen(function*() {
    const cutoff = new Date(at.getTime() - Duration.toMillis(options.retention))
    const deleted = []
    for (const target of options.targets) {
      const result = yield* purgeSoftDeleted(target, cutoff, options.batchSize)
      yield* Effect.logInfo(`database-cleanup: deleted ${result.rows} rows of ${target.table} soft-deleted before ${cutoff.toISOString()} (${result.batches} batches)`)
      deleted.push(result)
    }
    return { cutoff, deleted }
  })

export const databaseCleanup = (options: CleanupOptions) =>
  job({
    name: "database-cleanup",
    schedule: options.schedule ?? "0 2 * * *",
    // A failed night is worth another try before the next one; the work is idempotent.
    retry: { base: "1 minute", max: "30 minutes", maxAttempts: 3 },
    run: Effect.gen(function*() {
      const run = yield* CurrentRun
      const report = yield* cleanUp(options, run?.scheduledAt ?? new Date(yield* Clock.currentTimeMillis))
      const total = report.deleted.reduce((sum, d) => sum + d.rows, 0)
      yield* Effect.annotateCurrentSpan("cleanup.rows_deleted", total)
      return report
    })
  })

/**
 * `CLEANUP_TABLES` (unset: no cleanup job), `CLEANUP_RETENTION` [90d], `CLEANUP_BATCH_SIZE` [1000].
 */
export const cleanupConfig: Config.Config<CleanupOptions | undefined> = Config.all({
  tables: Config.option(Config.String("CLEANUP_TABLES")),
  retention: longDuration("CLEANUP_RETENTION").pipe(Config.withDefault(Duration.days(90))),
  batchSize: intInRange("CLEANUP_BATCH_SIZE", 1, 100_000, "an integer from 1 to 100000").pipe(Config.withDefault(1000))
}).pipe(
  Config.mapEffect(({ tables, retention, batchSize }) => {
    if (tables._tag === "None" || tables.value.trim() === "") return Effect.succeed(undefined)
    const targets: Array<CleanupTarget> = []
    for (const text of tables.value.split(",")) {
      const target = parseTarget(text)
      if (target === undefined) {
        return Effect.fail(configIssue("CLEANUP_TABLES", "comma-separated tables such as sessions,audit.events:removed_at", `"${text.trim()}" is not one`))
      }
      targets.push(target)
    }
    return Effect.succeed({ targets, retention, batchSize })
  })
)
