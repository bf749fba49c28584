/**
 * SchedulerStore on a PostgreSQL-dialect database (a server, for replicas; PGlite, embedded):
 * the statements of `sql.ts` over the `SqlDatabase` capability. Building the layer applies the
 * scheduler's migrations (advisory-locked, so replicas starting together apply them once).
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import {
  type ClaimResult,
  type Run,
  SchedulerStore,
  SchedulerStoreError,
  type SchedulerStoreShape
} from "../capabilities/SchedulerStore.ts"
import { SqlDatabase } from "../capabilities/SqlDatabase.ts"
import { migrate } from "../sql/migrations.ts"
import * as Sql from "./sql.ts"

const RunRow = Schema.Struct({
  id: Schema.String,
  job: Schema.String,
  scheduled_at: Schema.Date,
  trigger: Schema.Literals(["schedule", "manual"]),
  attempt: Schema.Number,
  instance: Schema.String,
  started_at: Schema.Date,
  ended_at: Schema.NullOr(Schema.Date),
  lease_until: Schema.NullOr(Schema.Date),
  outcome: Schema.Literals(["running", "succeeded", "failed", "timed_out", "skipped", "interrupted"]),
  error: Schema.NullOr(Schema.String),
  error_stack: Schema.NullOr(Schema.String),
  retry_at: Schema.NullOr(Schema.Date)
})

const toRun = (row: typeof RunRow.Type): Run => ({
  id: row.id,
  job: row.job,
  scheduledAt: row.scheduled_at,
  trigger: row.trigger,
  attempt: row.attempt,
  instance: row.instance,
  startedAt: row.started_at,
  endedAt: row.ended_at,
  leaseUntil: row.lease_until,
  outcome: row.outcome,
  error: row.error,
  errorStack: row.error_stack,
  retryAt: row.retry_at
})

const failed = (operation: string) => (cause: unknown) => new SchedulerStoreError({ operation, cause })

export const make = Effect.gen(function*() {
  const db = yield* SqlDatabase
  yield* migrate(Sql.migrations, { direction: "up", table: Sql.migrationsTable }).pipe(Effect.mapError(failed("migrate")))
  const runs = (text: string, params: ReadonlyArray<unknown>) => Effect.map(db.queryAs(RunRow, text, params), (rows) => rows.map(toRun))

  const claim: SchedulerStoreShape["claim"] = (occurrence, lease, options) =>
    db.transaction((tx) =>
      Effect.gen(function*() {
        const key = [occurrence.job, occurrence.scheduledAt, occurrence.trigger] as const
        yield* tx.query(Sql.lockJob, [occurrence.job])
        if ((yield* tx.query(Sql.occurrenceTaken, key)).length > 0) return { _tag: "Taken" } as ClaimResult
        if (options.overlap === "skip") {
          const [other] = (yield* tx.queryAs(RunRow, Sql.runningOf, [occurrence.job, lease.now])).map(toRun)
          if (other !== undefined) {
            const reason = `overlap: run ${other.id} of ${other.scheduledAt.toISOString()} still running on ${other.instance}`
            yield* tx.query(Sql.insertSkip, [...key, lease.instance, lease.now, reason])
            return { _tag: "Overlap", running: other } as ClaimResult
          }
        }
        const [run] = (yield* tx.queryAs(RunRow, Sql.insertClaim, [...key, lease.instance, lease.now, lease.until])).map(toRun)
        return run === undefined ? { _tag: "Taken" } as ClaimResult : { _tag: "Claimed", run } as ClaimResult
      })
    ).pipe(Effect.mapError(failed("claim")))
  // The steps of `claim`, each one statement for the whole batch: about as many round trips
  // for the 200 jobs due at one second as for one of them.
  // Each advisory lock takes a slot of the server's shared lock table (max_locks_per_transaction
  // × max_connections, 6 400 by default), so a batch of 10 000 jobs due at one minute is claimed
  // a chunk at a time.
  const chunk = 256
  const claimAll: SchedulerStoreShape["claimAll"] = (claims, lease) => {
    const jobs = claims.map((c) => c.occurrence.job)
    // A job twice would have to see its own claim for the overlap check: one by one, then.
    if (claims.length < 2 || new Set(jobs).size !== jobs.length) {
      return Effect.forEach(claims, (c) => claim(c.occurrence, lease, { overlap: c.overlap }))
    }
    if (claims.length > chunk) {
      const parts: Array<typeof claims> = []
      for (let i = 0; i < claims.length; i += chunk) parts.push(claims.slice(i, i + chunk))
      return Effect.map(Effect.forEach(parts, (part) => claimChunk(part, lease)), (results) => results.flat())
    }
    return claimChunk(claims, lease)
  }
  const claimChunk: SchedulerStoreShape["claimAll"] = (claims, lease) => {
    const jobs = claims.map((c) => c.occurrence.job)
    const times = claims.map((c) => c.occurrence.scheduledAt.toISOString())
    const triggers = claims.map((c) => c.occurrence.trigger)
    return db.transaction((tx) =>
      Effect.gen(function*() {
        yield* tx.query(Sql.lockJobs, [jobs])
        const taken = new Set((yield* tx.query<{ i: number }>(Sql.occurrencesTaken, [jobs, times, triggers])).map((row) => row.i - 1))
        const checked = jobs.filter((job, i) => !taken.has(i) && claims[i]!.overlap === "skip")
        const running = new Map(
          checked.length === 0 ? [] : (yield* tx.queryAs(RunRow, Sql.runningOfJobs, [checked, lease.now])).map((row) => [row.job, toRun(row)])
        )
        const results: Array<ClaimResult> = []
        const skips: Array<number> = []
        const reasons: Array<string> = []
        const claiming: Array<number> = []
        claims.forEach((c, i) => {
          const other = c.overlap === "skip" ? running.get(c.occurrence.job) : undefined
          if (taken.has(i)) results[i] = { _tag: "Taken" }
          else if (other !== undefined) {
            results[i] = { _tag: "Overlap", running: other }
            skips.push(i)
            reasons.push(`overlap: run ${other.id} of ${other.scheduledAt.toISOString()} still running on ${other.instance}`)
          } else claiming.push(i)
        })
        const pick = <A>(values: ReadonlyArray<A>, at: ReadonlyArray<number>) => at.map((i) => values[i]!)
        if (skips.length > 0) {
          yield* tx.query(Sql.insertSkips, [pick(jobs, skips), pick(times, skips), pick(triggers, skips), lease.instance, lease.now, reasons])
        }
        if (claiming.length > 0) {
          const rows = yield* tx.queryAs(RunRow, Sql.insertClaims, [
            pick(jobs, claiming),
            pick(times, claiming),
            pick(triggers, claiming),
            lease.instance,
            lease.now,
            lease.until
          ])
          const inserted = new Map(rows.map((row) => [`${row.job}\u0000${row.scheduled_at.getTime()}\u0000${row.trigger}`, toRun(row)]))
          for (const i of claiming) {
            const o = claims[i]!.occurrence
            const run = inserted.get(`${o.job}\u0000${o.scheduledAt.getTime()}\u0000${o.trigger}`)
            // Taken meanwhile by a skip, which records without the job's lock.
            results[i] = run === undefined ? { _tag: "Taken" } : { _tag: "Claimed", run }
          }
        }
        return results
      })
    ).pipe(Effect.mapError(failed("claim")))
  }

  return SchedulerStore.of({
    claim,
    claimAll,
    skip: (occurrence, by) =>
      db.query(Sql.insertSkip, [occurrence.job, occurrence.scheduledAt, occurrence.trigger, by.instance, by.now, by.reason]).pipe(
        Effect.map((rows) => rows.length > 0),
        Effect.mapError(failed("skip"))
      ),
    renew: (runIds, instance, until) =>
      runIds.length === 0 ? Effect.succeed(new Set<string>()) : db.query<{ id: string }>(Sql.renew, [runIds, instance, until]).pipe(
        Effect.map((rows): ReadonlySet<string> => new Set(rows.map((row) => row.id))),
        Effect.mapError(failed("renew"))
      ),
    complete: (runId, instance, completion) =>
      db.query(Sql.complete, [
        runId,
        instance,
        completion.outcome,
        completion.now,
        completion.error ?? null,
        completion.errorStack ?? null,
        completion.retryAt ?? null
      ]).pipe(Effect.map((rows) => rows.length > 0), Effect.mapError(failed("complete"))),
    expiredLeases: (now, limit) => runs(Sql.expiredLeases, [now, limit]).pipe(Effect.mapError(failed("list expired leases"))),
    expire: (runId, now, retryAt) =>
      db.query(Sql.expire, [runId, now, retryAt ?? null]).pipe(Effect.map((rows) => rows.length > 0), Effect.mapError(failed("expire"))),
    dueRetries: (now, limit) => runs(Sql.dueRetries, [now, limit]).pipe(Effect.mapError(failed("list due retries"))),
    claimRetry: (previous, lease) =>
      db.transaction((tx) =>
        Effect.gen(function*() {
          const taken = yield* tx.query<{ job: string; scheduled_at: Date; trigger: string; attempt: number }>(
            Sql.takeRetry,
            [previous.id, lease.now]
          )
          const row = taken[0]
          if (row === undefined) return Option.none<Run>()
          const [run] = (yield* tx.queryAs(RunRow, Sql.insertAttempt, [
            row.job,
            row.scheduled_at,
            row.trigger,
            row.attempt + 1,
            lease.instance,
            lease.now,
            lease.until
          ])).map(toRun)
          return Option.fromUndefinedOr(run)
        })
      ).pipe(Effect.mapError(failed("claim retry"))),
    lastOccurrence: (job) =>
      db.queryAs(Schema.Struct({ last: Schema.NullOr(Schema.Date) }), Sql.lastOccurrence, [job]).pipe(
        Effect.map((rows) => Option.fromNullishOr(rows[0]?.last)),
        Effect.mapError(failed("read last occurrence"))
      ),
    recentRuns: (job, limit) => runs(Sql.recentRuns, [job, limit]).pipe(Effect.mapError(failed("list recent runs"))),
    prune: (before) =>
      db.queryAs(Schema.Struct({ deleted: Schema.Number }), Sql.prune, [before]).pipe(
        Effect.map((rows) => rows[0]?.deleted ?? 0),
        Effect.mapError(failed("prune"))
      ),
    setPaused: (job, paused, now) => db.query(Sql.setPaused, [job, paused, now]).pipe(Effect.asVoid, Effect.mapError(failed("set paused"))),
    paused: db.query<{ job: string }>(Sql.paused).pipe(
      Effect.map((rows) => new Set(rows.map((row) => row.job)) as ReadonlySet<string>),
      Effect.mapError(failed("read paused jobs"))
    )
  })
})

export const layer: Layer.Layer<SchedulerStore, SchedulerStoreError, SqlDatabase> = Layer.effect(SchedulerStore, make)
