/**
 * SchedulerStore in memory: the embedded default, for one scheduler process. It keeps the same
 * promises as the PostgreSQL store (`test/contract/schedulerStore.ts`): each operation is one
 * synchronous step, so two fibers of the process racing for an occurrence cannot both win.
 * History lives as long as the layer; `prune` bounds it.
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { type Occurrence, type Run, SchedulerStore } from "../../src/capabilities/SchedulerStore.ts"

const occurrenceKey = (occurrence: Occurrence, attempt: number) =>
  `${occurrence.job}\u0000${occurrence.scheduledAt.getTime()}\u0000${occurrence.trigger}\u0000${attempt}`

export const make = Effect.sync(() => {
  // Insertion order is id order; `byKey` is the unique (job, scheduled time, trigger, attempt).
  const runs = new Map<string, Run>()
  const byKey = new Map<string, string>()
  const pausedJobs = new Set<string>()
  let nextId = 1

  const insert = (fields: Omit<Run, "id">): Run => {
    const run: Run = { ...fields, id: String(nextId++) }
    runs.set(run.id, run)
    byKey.set(occurrenceKey(run, run.attempt), run.id)
    return run
  }
  const update = (run: Run, fields: Partial<Run>) => {
    const next = { ...run, ...fields }
    runs.set(run.id, next)
    return next
  }
  const running = (job: string, now: Date) =>
    [...runs.values()].find((run) => run.job === job && run.outcome === "running" && run.leaseUntil !== null && run.leaseUntil > now)

  return SchedulerStore.of({
    claim: (occurrence, lease, options) =>
      Effect.sync(() => {
        if (byKey.has(occurrenceKey(occurrence, 1))) return { _tag: "Taken" } as const
        const base = { ...occurrence, attempt: 1, instance: lease.instance, startedAt: lease.now, errorStack: null, retryAt: null }
        const other = options.overlap === "skip" ? running(occurrence.job, lease.now) : undefined
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
      }),
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
    renew: (runId, instance, until) =>
      Effect.sync(() => {
        const run = runs.get(runId)
        if (run === undefined || run.outcome !== "running" || run.instance !== instance) return false
        update(run, { leaseUntil: until })
        return true
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
        [...runs.values()]
          .filter((run) => run.outcome === "running" && run.leaseUntil !== null && run.leaseUntil < now)
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
        [...runs.values()]
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
        for (const run of runs.values()) {
          if (run.job === job && run.trigger === "schedule" && (latest === undefined || run.scheduledAt > latest)) latest = run.scheduledAt
        }
        return Option.fromUndefinedOr(latest)
      }),
    recentRuns: (job, limit) =>
      Effect.sync(() => {
        const out: Array<Run> = []
        for (const run of runs.values()) if (run.job === job) out.push(run)
        return out.sort((a, b) => b.startedAt.getTime() - a.startedAt.getTime() || Number(b.id) - Number(a.id)).slice(0, limit)
      }),
    prune: (before) =>
      Effect.sync(() => {
        let deleted = 0
        for (const run of [...runs.values()]) {
          if (run.outcome !== "running" && run.endedAt !== null && run.endedAt < before && run.retryAt === null) {
            runs.delete(run.id)
            byKey.delete(occurrenceKey(run, run.attempt))
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

export const layer: Layer.Layer<SchedulerStore> = Layer.effect(SchedulerStore, make)
