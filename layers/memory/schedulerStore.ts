/**
 * SchedulerStore in memory: the embedded default, for one scheduler process. It keeps the same
 * promises as the PostgreSQL store (`test/contract/schedulerStore.ts`): each operation is one
 * synchronous step, so two fibers of the process racing for an occurrence cannot both win.
 *
 * History lives as long as the layer. Besides `prune` (the retention), each job keeps at most
 * `maxRunsPerJob` [20] finished runs, its oldest dropped first: a week of an `@every 1s` job
 * is 604 800 runs, too many to hold in a process's memory, and nothing reads that far back
 * (the jobs API shows the latest 10). With 10 000 jobs, 20 runs each are about 40 MB.
 * A run still running or owed a retry is never dropped.
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { type ClaimResult, type Lease, type Occurrence, type Run, SchedulerStore } from "../../src/capabilities/SchedulerStore.ts"

export interface Options {
  /** Finished runs kept per job [20]; older ones are dropped as new ones come. */
  readonly maxRunsPerJob?: number
}

/**
 * A run as kept here: times as epoch millis, changed in place. A `Run` (with its Dates) is made
 * only when one is read: with 10 000 jobs the history is most of the store's memory.
 */
interface Row {
  readonly id: number
  readonly job: string
  readonly scheduledAt: number
  readonly trigger: Run["trigger"]
  readonly attempt: number
  instance: string
  readonly startedAt: number
  endedAt: number | null
  leaseUntil: number | null
  outcome: Run["outcome"]
  error: string | null
  errorStack: string | null
  retryAt: number | null
}

const date = (millis: number | null) => (millis === null ? null : new Date(millis))

const toRun = (row: Row): Run => ({
  id: String(row.id),
  job: row.job,
  scheduledAt: new Date(row.scheduledAt),
  trigger: row.trigger,
  attempt: row.attempt,
  instance: row.instance,
  startedAt: new Date(row.startedAt),
  endedAt: date(row.endedAt),
  leaseUntil: date(row.leaseUntil),
  outcome: row.outcome,
  error: row.error,
  errorStack: row.errorStack,
  retryAt: date(row.retryAt)
})

export const make = (options: Options = {}) => Effect.sync(() => {
  const cap = Math.max(1, options.maxRunsPerJob ?? 20)
  // Each job's runs in id order: a short array (the cap, plus runs still running or owed a
  // retry), so finding an occurrence or the job's running run is a scan of a few rows. Only
  // the runs an operation can change by id (running, or owed a retry) are indexed by id:
  // a map entry per finished run would cost about as much as the run.
  const byJob = new Map<string, Array<Row>>()
  const active = new Map<number, Row>()
  const pausedJobs = new Set<string>()
  let nextId = 1

  const rowsOf = (job: string) => byJob.get(job) ?? []
  const findOccurrence = (job: string, scheduledAt: number, trigger: Run["trigger"], attempt: number) =>
    rowsOf(job).find((row) => row.scheduledAt === scheduledAt && row.attempt === attempt && row.trigger === trigger)
  const has = (occurrence: Occurrence, attempt: number) =>
    findOccurrence(occurrence.job, occurrence.scheduledAt.getTime(), occurrence.trigger, attempt) !== undefined
  const isActive = (row: Row) => row.outcome === "running" || row.retryAt !== null
  const index = (row: Row) => {
    if (isActive(row)) active.set(row.id, row)
    else active.delete(row.id)
  }
  const insert = (fields: Omit<Row, "id">): Run => {
    const row: Row = { id: nextId++, ...fields }
    let rows = byJob.get(row.job)
    if (rows === undefined) byJob.set(row.job, rows = [])
    rows.push(row)
    index(row)
    if (rows.length > cap) trim(rows)
    return toRun(row)
  }
  // Oldest first; a run still running or owed a retry stays.
  const trim = (rows: Array<Row>) => {
    let excess = rows.length - cap
    for (let i = 0; i < rows.length && excess > 0;) {
      if (isActive(rows[i]!)) i++
      else {
        rows.splice(i, 1)
        excess--
      }
    }
  }
  const find = (id: string) => active.get(Number(id))
  // The earliest started, as the SQL store answers.
  const runningOf = (job: string, now: number) => {
    let found: Row | undefined
    for (const row of rowsOf(job)) {
      if (row.outcome !== "running" || row.leaseUntil === null || !(row.leaseUntil > now)) continue
      if (found === undefined || row.startedAt < found.startedAt) found = row
    }
    return found
  }

  const claim = (occurrence: Occurrence, lease: Lease, options: { readonly overlap: "skip" | "allow" }): ClaimResult => {
    if (has(occurrence, 1)) return { _tag: "Taken" } as const
    const now = lease.now.getTime()
    const base = {
      job: occurrence.job,
      scheduledAt: occurrence.scheduledAt.getTime(),
      trigger: occurrence.trigger,
      attempt: 1,
      instance: lease.instance,
      startedAt: now,
      errorStack: null,
      retryAt: null
    }
    const other = options.overlap === "skip" ? runningOf(occurrence.job, now) : undefined
    if (other !== undefined) {
      insert({
        ...base,
        endedAt: now,
        leaseUntil: null,
        outcome: "skipped",
        error: `overlap: run ${other.id} of ${new Date(other.scheduledAt).toISOString()} still running on ${other.instance}`
      })
      return { _tag: "Overlap", running: toRun(other) } as const
    }
    return { _tag: "Claimed", run: insert({ ...base, endedAt: null, leaseUntil: lease.until.getTime(), outcome: "running", error: null }) } as const
  }

  return SchedulerStore.of({
    claim: (occurrence, lease, options) => Effect.sync(() => claim(occurrence, lease, options)),
    claimAll: (claims, lease) => Effect.sync(() => claims.map(({ occurrence, overlap }) => claim(occurrence, lease, { overlap }))),
    skip: (occurrence, by) =>
      Effect.sync(() => {
        if (has(occurrence, 1)) return false
        insert({
          job: occurrence.job,
          scheduledAt: occurrence.scheduledAt.getTime(),
          trigger: occurrence.trigger,
          attempt: 1,
          instance: by.instance,
          startedAt: by.now.getTime(),
          endedAt: by.now.getTime(),
          leaseUntil: null,
          outcome: "skipped",
          error: by.reason,
          errorStack: null,
          retryAt: null
        })
        return true
      }),
    renew: (runIds, instance, until) =>
      Effect.sync(() => {
        const ours = new Set<string>()
        for (const id of runIds) {
          const row = find(id)
          if (row === undefined || row.outcome !== "running" || row.instance !== instance) continue
          row.leaseUntil = until.getTime()
          ours.add(id)
        }
        return ours as ReadonlySet<string>
      }),
    complete: (runId, instance, completion) =>
      Effect.sync(() => {
        const row = find(runId)
        if (row === undefined || row.outcome !== "running" || row.instance !== instance) return false
        row.outcome = completion.outcome
        row.endedAt = completion.now.getTime()
        row.leaseUntil = null
        row.error = completion.error ?? null
        row.errorStack = completion.errorStack ?? null
        row.retryAt = completion.retryAt?.getTime() ?? null
        index(row)
        return true
      }),
    expiredLeases: (now, limit) =>
      Effect.sync(() =>
        [...active.values()]
          .filter((row) => row.outcome === "running" && row.leaseUntil !== null && row.leaseUntil < now.getTime())
          .sort((a, b) => a.leaseUntil! - b.leaseUntil!)
          .slice(0, limit)
          .map(toRun)
      ),
    expire: (runId, now, retryAt) =>
      Effect.sync(() => {
        const row = find(runId)
        if (row === undefined || row.outcome !== "running" || row.leaseUntil === null || !(row.leaseUntil < now.getTime())) return false
        row.outcome = "interrupted"
        row.endedAt = now.getTime()
        row.error = `lease expired at ${new Date(row.leaseUntil).toISOString()}: instance ${row.instance} stopped renewing it`
        row.leaseUntil = null
        row.retryAt = retryAt?.getTime() ?? null
        index(row)
        return true
      }),
    dueRetries: (now, limit) =>
      Effect.sync(() =>
        [...active.values()]
          .filter((row) => row.retryAt !== null && row.retryAt <= now.getTime())
          .sort((a, b) => a.retryAt! - b.retryAt!)
          .slice(0, limit)
          .map(toRun)
      ),
    claimRetry: (previous, lease) =>
      Effect.sync(() => {
        const row = find(previous.id)
        if (row === undefined || row.retryAt === null || row.retryAt > lease.now.getTime()) return Option.none()
        row.retryAt = null
        index(row)
        if (findOccurrence(row.job, row.scheduledAt, row.trigger, row.attempt + 1) !== undefined) return Option.none()
        return Option.some(insert({
          job: row.job,
          scheduledAt: row.scheduledAt,
          trigger: row.trigger,
          attempt: row.attempt + 1,
          instance: lease.instance,
          startedAt: lease.now.getTime(),
          endedAt: null,
          leaseUntil: lease.until.getTime(),
          outcome: "running",
          error: null,
          errorStack: null,
          retryAt: null
        }))
      }),
    lastOccurrence: (job) =>
      Effect.sync(() => {
        let latest: number | undefined
        for (const row of rowsOf(job)) {
          if (row.trigger === "schedule" && (latest === undefined || row.scheduledAt > latest)) latest = row.scheduledAt
        }
        return Option.fromUndefinedOr(latest === undefined ? undefined : new Date(latest))
      }),
    recentRuns: (job, limit) =>
      Effect.sync(() =>
        [...rowsOf(job)].sort((a, b) => b.startedAt - a.startedAt || b.id - a.id).slice(0, limit).map(toRun)
      ),
    prune: (before) =>
      Effect.sync(() => {
        let deleted = 0
        for (const [job, rows] of byJob) {
          const kept = rows.filter((row) => row.outcome === "running" || row.endedAt === null || !(row.endedAt < before.getTime()) || row.retryAt !== null)
          deleted += rows.length - kept.length
          if (kept.length === 0) byJob.delete(job)
          else byJob.set(job, kept)
        }
        return deleted
      }),
    setPaused: (job, paused) =>
      Effect.sync(() => {
        if (paused) pausedJobs.add(job)
        else pausedJobs.delete(job)
      }),
    paused: Effect.sync(() => new Set(pausedJobs))
  })
})

export const layer = (options: Options = {}): Layer.Layer<SchedulerStore> => Layer.effect(SchedulerStore, make(options))
