/**
 * SchedulerStore in memory: the embedded default, for one scheduler process. It keeps the same
 * promises as the PostgreSQL store (`test/contract/schedulerStore.ts`): each operation is one
 * synchronous step, so two fibers of the process racing for an occurrence cannot both win.
 *
 * History lives as long as the layer. Besides `prune` (the retention), each job keeps at most
 * `maxRunsPerJob` [100] finished runs, its oldest dropped first: a week of an `@every 1s` job
 * is 604 800 runs, too many to hold in a process's memory, and nothing reads that far back.
 * A run still running or owed a retry is never dropped.
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { type ClaimResult, type Lease, type Occurrence, type Run, SchedulerStore } from "../../src/capabilities/SchedulerStore.ts"

const occurrenceKey = (occurrence: Occurrence, attempt: number) =>
  `${occurrence.job}\u0000${occurrence.scheduledAt.getTime()}\u0000${occurrence.trigger}\u0000${attempt}`

export interface Options {
  /** Finished runs kept per job [100]; older ones are dropped as new ones come. */
  readonly maxRunsPerJob?: number
}

export const make = (options: Options = {}) => Effect.sync(() => {
  const cap = Math.max(1, options.maxRunsPerJob ?? 100)
  // Insertion order is id order; `byKey` is the unique (job, scheduled time, trigger, attempt).
  const runs = new Map<string, Run>()
  const byKey = new Map<string, string>()
  // Indexes for the hot paths, so a claim costs the same with a week of history as with none:
  // the runs of each job, the running runs (also per job, for the overlap check of each
  // claim), and the runs owed a retry.
  const byJob = new Map<string, Set<string>>()
  const running = new Set<string>()
  const runningByJob = new Map<string, Set<string>>()
  const owed = new Set<string>()
  const pausedJobs = new Set<string>()
  let nextId = 1

  const index = (run: Run) => {
    if (run.outcome === "running") {
      running.add(run.id)
      let ids = runningByJob.get(run.job)
      if (ids === undefined) runningByJob.set(run.job, ids = new Set())
      ids.add(run.id)
    } else unindexRunning(run)
    if (run.retryAt !== null) owed.add(run.id)
    else owed.delete(run.id)
  }
  const insert = (fields: Omit<Run, "id">): Run => {
    const run: Run = { ...fields, id: String(nextId++) }
    runs.set(run.id, run)
    byKey.set(occurrenceKey(run, run.attempt), run.id)
    let ids = byJob.get(run.job)
    if (ids === undefined) byJob.set(run.job, ids = new Set())
    ids.add(run.id)
    index(run)
    if (ids.size > cap) trim(ids)
    return run
  }
  // Oldest first (a Set iterates in insertion order); stops at the first run it must keep
  // beyond the cap, so the cost per insert stays constant.
  const trim = (ids: Set<string>) => {
    for (const id of ids) {
      if (ids.size <= cap) return
      const run = runs.get(id)!
      if (run.outcome === "running" || run.retryAt !== null) continue
      remove(run)
    }
  }
  const update = (run: Run, fields: Partial<Run>) => {
    const next = { ...run, ...fields }
    runs.set(run.id, next)
    index(next)
    return next
  }
  const unindexRunning = (run: Run) => {
    if (!running.delete(run.id)) return
    const ids = runningByJob.get(run.job)
    ids?.delete(run.id)
    if (ids?.size === 0) runningByJob.delete(run.job)
  }
  const remove = (run: Run) => {
    runs.delete(run.id)
    byKey.delete(occurrenceKey(run, run.attempt))
    byJob.get(run.job)?.delete(run.id)
    unindexRunning(run)
    owed.delete(run.id)
  }
  const select = (ids: Iterable<string>) => {
    const out: Array<Run> = []
    for (const id of ids) out.push(runs.get(id)!)
    return out
  }
  // The earliest started, as the SQL store answers.
  const runningOf = (job: string, now: Date) => {
    let found: Run | undefined
    for (const id of runningByJob.get(job) ?? []) {
      const run = runs.get(id)!
      if (run.leaseUntil !== null && run.leaseUntil > now && (found === undefined || run.startedAt < found.startedAt)) found = run
    }
    return found
  }

  const claim = (occurrence: Occurrence, lease: Lease, options: { readonly overlap: "skip" | "allow" }): ClaimResult => {
    if (byKey.has(occurrenceKey(occurrence, 1))) return { _tag: "Taken" } as const
    const base = { ...occurrence, attempt: 1, instance: lease.instance, startedAt: lease.now, errorStack: null, retryAt: null }
    const other = options.overlap === "skip" ? runningOf(occurrence.job, lease.now) : undefined
    if (other !== undefined) {
      insert({
        ...base,
        endedAt: lease.now,
        leaseUntil: null,
        outcome: "skipped",
        error: `overlap: run ${other.id} of ${other.scheduledAt.toISOString()} still running on ${other.instance}`
      })
      return { _tag: "Overlap", running: other } as const
    }
    return { _tag: "Claimed", run: insert({ ...base, endedAt: null, leaseUntil: lease.until, outcome: "running", error: null }) } as const
  }

  return SchedulerStore.of({
    claim: (occurrence, lease, options) => Effect.sync(() => claim(occurrence, lease, options)),
    claimAll: (claims, lease) => Effect.sync(() => claims.map(({ occurrence, overlap }) => claim(occurrence, lease, { overlap }))),
    skip: (occurrence, by) =>
      Effect.sync(() => {
        if (byKey.has(occurrenceKey(occurrence, 1))) return false
        insert({
          ...occurrence,
          attempt: 1,
          instance: by.instance,
          startedAt: by.now,
          endedAt: by.now,
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
          const run = runs.get(id)
          if (run === undefined || run.outcome !== "running" || run.instance !== instance) continue
          update(run, { leaseUntil: until })
          ours.add(id)
        }
        return ours as ReadonlySet<string>
      }),
    complete: (runId, instance, completion) =>
      Effect.sync(() => {
        const run = runs.get(runId)
        if (run === undefined || run.outcome !== "running" || run.instance !== instance) return false
        update(run, {
          outcome: completion.outcome,
          endedAt: completion.now,
          leaseUntil: null,
          error: completion.error ?? null,
          errorStack: completion.errorStack ?? null,
          retryAt: completion.retryAt ?? null
        })
        return true
      }),
    expiredLeases: (now, limit) =>
      Effect.sync(() =>
        select(running)
          .filter((run) => run.leaseUntil !== null && run.leaseUntil < now)
          .sort((a, b) => a.leaseUntil!.getTime() - b.leaseUntil!.getTime())
          .slice(0, limit)
      ),
    expire: (runId, now, retryAt) =>
      Effect.sync(() => {
        const run = runs.get(runId)
        if (run === undefined || run.outcome !== "running" || run.leaseUntil === null || !(run.leaseUntil < now)) return false
        update(run, {
          outcome: "interrupted",
          endedAt: now,
          leaseUntil: null,
          error: `lease expired at ${run.leaseUntil.toISOString()}: instance ${run.instance} stopped renewing it`,
          retryAt: retryAt ?? null
        })
        return true
      }),
    dueRetries: (now, limit) =>
      Effect.sync(() =>
        select(owed)
          .filter((run) => run.retryAt !== null && run.retryAt <= now)
          .sort((a, b) => a.retryAt!.getTime() - b.retryAt!.getTime())
          .slice(0, limit)
      ),
    claimRetry: (previous, lease) =>
      Effect.sync(() => {
        const run = runs.get(previous.id)
        if (run === undefined || run.retryAt === null || run.retryAt > lease.now) return Option.none()
        update(run, { retryAt: null })
        if (byKey.has(occurrenceKey(run, run.attempt + 1))) return Option.none()
        return Option.some(insert({
          job: run.job,
          scheduledAt: run.scheduledAt,
          trigger: run.trigger,
          attempt: run.attempt + 1,
          instance: lease.instance,
          startedAt: lease.now,
          endedAt: null,
          leaseUntil: lease.until,
          outcome: "running",
          error: null,
          errorStack: null,
          retryAt: null
        }))
      }),
    lastOccurrence: (job) =>
      Effect.sync(() => {
        let latest: Date | undefined
        for (const run of select(byJob.get(job) ?? [])) {
          if (run.trigger === "schedule" && (latest === undefined || run.scheduledAt > latest)) latest = run.scheduledAt
        }
        return Option.fromUndefinedOr(latest)
      }),
    recentRuns: (job, limit) =>
      Effect.sync(() => {
        return select(byJob.get(job) ?? []).sort((a, b) => b.startedAt.getTime() - a.startedAt.getTime() || Number(b.id) - Number(a.id)).slice(0, limit)
      }),
    prune: (before) =>
      Effect.sync(() => {
        let deleted = 0
        for (const run of [...runs.values()]) {
          if (run.outcome !== "running" && run.endedAt !== null && run.endedAt < before && run.retryAt === null) {
            remove(run)
            deleted++
          }
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
