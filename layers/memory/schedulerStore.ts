/**
 * SchedulerStore in memory: the embedded default, for one scheduler process. It keeps the same
 * promises as the PostgreSQL store (`test/contract/schedulerStore.ts`): each operation is one
 * synchronous step, so two fibers of the process racing for an occurrence cannot both win.
 *
 * History lives as long as the layer. Besides `prune` (the retention), each job keeps at most
 * `maxRunsPerJob` [10] finished runs, its oldest dropped first: a week of an `@every 1s` job
 * is 604 800 runs, too many to hold in a process's memory, and nothing reads further back
 * (the jobs API and page show the latest 10). A run still running or owed a retry is never
 * dropped. (PostgreSQL keeps the whole retention.)
 *
 * With 10 000 jobs, the history is most of the store's memory, so a finished run is kept as a
 * fixed-size record (six numbers, 48 B) in its job's typed array rather than an object of its
 * own (about 400 B with its Dates and strings): 10 runs of 10 000 jobs are about 5 MB. Its
 * instance is an index into a table of instance names; error texts are kept only when present.
 * A run that an operation can still change (running, or owed a retry) is a plain object.
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { IdTable } from "./idTable.ts"
import { type ClaimResult, type Lease, type Occurrence, type Run, runOutcomes, SchedulerStore } from "../../src/capabilities/SchedulerStore.ts"

export interface Options {
  /** Finished runs kept per job [10]; older ones are dropped as new ones come. */
  readonly maxRunsPerJob?: number
}

/** A run that can still change (running, or owed a retry): times as epoch millis. */
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

// A finished run's record: its fields' offsets in the job's Float64Array. A finished run has
// ended, holds no lease and is owed no retry, so those need no room.
const ID = 0
const SCHEDULED = 1
const STARTED = 2
const ENDED = 3
const ATTEMPT = 4
/** instance index × 16 + outcome index × 2 + (manual ? 1 : 0) */
const META = 5
const STRIDE = 6

/** One job's runs: the changing ones in id order, the finished ones as records in no order. */
interface History {
  readonly job: string
  readonly active: Array<Row>
  /** Finished records held. */
  size: number
  data: Float64Array
  /** error and errorStack of each slot, two entries a slot; made when a first one is kept. */
  texts: Array<string | null> | undefined
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

const outcomeCode = new Map(runOutcomes.map((outcome, i) => [outcome, i]))

export const make = (options: Options = {}) => Effect.sync(() => {
  const cap = Math.max(1, options.maxRunsPerJob ?? 10)
  const byJob = new Map<string, History>()
  // Only the runs an operation can change by id are indexed by id (in an IdTable: a Map's
  // add and delete at every run would leave its dropped storage to the old generation).
  const active = new IdTable<Row>()
  const pausedJobs = new Set<string>()
  const instances: Array<string> = []
  const instanceIndex = new Map<string, number>()
  let nextId = 1

  const instanceOf = (name: string) => {
    let i = instanceIndex.get(name)
    if (i === undefined) {
      i = instances.push(name) - 1
      instanceIndex.set(name, i)
    }
    return i
  }
  const historyOf = (job: string) => {
    let history = byJob.get(job)
    if (history === undefined) {
      history = { job, active: [], size: 0, data: new Float64Array(Math.min(cap, 4) * STRIDE), texts: undefined }
      byJob.set(job, history)
    }
    return history
  }

  const finishedRun = (history: History, slot: number): Run => {
    const d = history.data
    const o = slot * STRIDE
    const meta = d[o + META]!
    return {
      id: String(d[o + ID]),
      job: history.job,
      scheduledAt: new Date(d[o + SCHEDULED]!),
      trigger: meta % 2 === 1 ? "manual" : "schedule",
      attempt: d[o + ATTEMPT]!,
      instance: instances[Math.floor(meta / 16)]!,
      startedAt: new Date(d[o + STARTED]!),
      endedAt: new Date(d[o + ENDED]!),
      leaseUntil: null,
      outcome: runOutcomes[Math.floor(meta / 2) % 8]!,
      error: history.texts?.[2 * slot] ?? null,
      errorStack: history.texts?.[2 * slot + 1] ?? null,
      retryAt: null
    }
  }
  const addFinished = (history: History, row: Row) => {
    const slot = history.size
    if ((slot + 1) * STRIDE > history.data.length) {
      const slots = history.data.length / STRIDE
      const grown = new Float64Array((slots < cap ? Math.min(cap, slots * 2) : slots + 4) * STRIDE)
      grown.set(history.data)
      history.data = grown
    }
    const d = history.data
    const o = slot * STRIDE
    d[o + ID] = row.id
    d[o + SCHEDULED] = row.scheduledAt
    d[o + STARTED] = row.startedAt
    d[o + ENDED] = row.endedAt!
    d[o + ATTEMPT] = row.attempt
    d[o + META] = instanceOf(row.instance) * 16 + outcomeCode.get(row.outcome)! * 2 + (row.trigger === "manual" ? 1 : 0)
    if (row.error !== null || row.errorStack !== null) history.texts ??= []
    if (history.texts !== undefined) {
      history.texts[2 * slot] = row.error
      history.texts[2 * slot + 1] = row.errorStack
    }
    history.size++
  }
  // The last record moves into the freed slot.
  const removeFinished = (history: History, slot: number) => {
    const last = history.size - 1
    if (slot !== last) {
      history.data.copyWithin(slot * STRIDE, last * STRIDE, last * STRIDE + STRIDE)
      if (history.texts !== undefined) {
        history.texts[2 * slot] = history.texts[2 * last] ?? null
        history.texts[2 * slot + 1] = history.texts[2 * last + 1] ?? null
      }
    }
    if (history.texts !== undefined) history.texts[2 * last] = history.texts[2 * last + 1] = null
    history.size--
  }
  // Oldest (lowest id) first; a run still running or owed a retry stays.
  const trim = (history: History) => {
    while (history.size > 0 && history.size + history.active.length > cap) {
      let oldest = 0
      for (let slot = 1; slot < history.size; slot++) {
        if (history.data[slot * STRIDE + ID]! < history.data[oldest * STRIDE + ID]!) oldest = slot
      }
      removeFinished(history, oldest)
    }
  }

  const isActive = (row: Row) => row.outcome === "running" || row.retryAt !== null
  // A run that can no longer change leaves its object for a record.
  const index = (row: Row) => {
    if (isActive(row)) return
    active.delete(row.id)
    const history = historyOf(row.job)
    const i = history.active.indexOf(row)
    if (i >= 0) history.active.splice(i, 1)
    addFinished(history, row)
  }
  // Each new row is one literal (no spread), numbered as it is built.
  /** A run starting now under `lease`: attempt `attempt` of the job's occurrence at `scheduledAt`. */
  const running = (job: string, scheduledAt: number, trigger: Run["trigger"], attempt: number, lease: Lease): Row => ({
    id: nextId++,
    job,
    scheduledAt,
    trigger,
    attempt,
    instance: lease.instance,
    startedAt: lease.now.getTime(),
    endedAt: null,
    leaseUntil: lease.until.getTime(),
    outcome: "running",
    error: null,
    errorStack: null,
    retryAt: null
  })
  /** An occurrence's first attempt recorded as skipped by `instance` at `now`, with the reason. */
  const skipped = (occurrence: Occurrence, instance: string, now: number, reason: string): Row => ({
    id: nextId++,
    job: occurrence.job,
    scheduledAt: occurrence.scheduledAt.getTime(),
    trigger: occurrence.trigger,
    attempt: 1,
    instance,
    startedAt: now,
    endedAt: now,
    leaseUntil: null,
    outcome: "skipped",
    error: reason,
    errorStack: null,
    retryAt: null
  })
  const insert = (row: Row): Run => {
    const history = historyOf(row.job)
    if (isActive(row)) {
      history.active.push(row)
      active.set(row)
    } else addFinished(history, row)
    if (history.size + history.active.length > cap) trim(history)
    return toRun(row)
  }
  const hasOccurrence = (job: string, scheduledAt: number, trigger: Run["trigger"], attempt: number) => {
    const history = byJob.get(job)
    if (history === undefined) return false
    for (const row of history.active) {
      if (row.scheduledAt === scheduledAt && row.attempt === attempt && row.trigger === trigger) return true
    }
    const d = history.data
    const manual = trigger === "manual" ? 1 : 0
    for (let o = 0; o < history.size * STRIDE; o += STRIDE) {
      if (d[o + SCHEDULED] === scheduledAt && d[o + ATTEMPT] === attempt && d[o + META]! % 2 === manual) return true
    }
    return false
  }
  const has = (occurrence: Occurrence, attempt: number) =>
    hasOccurrence(occurrence.job, occurrence.scheduledAt.getTime(), occurrence.trigger, attempt)
  const find = (id: string) => active.get(Number(id))
  // The earliest started, as the SQL store answers. A running run is never a record.
  const runningOf = (job: string, now: number) => {
    let found: Row | undefined
    for (const row of byJob.get(job)?.active ?? []) {
      if (row.outcome !== "running" || row.leaseUntil === null || !(row.leaseUntil > now)) continue
      if (found === undefined || row.startedAt < found.startedAt) found = row
    }
    return found
  }

  const claim = (occurrence: Occurrence, lease: Lease, options: { readonly overlap: "skip" | "allow" }): ClaimResult => {
    if (has(occurrence, 1)) return { _tag: "Taken" } as const
    const now = lease.now.getTime()
    const other = options.overlap === "skip" ? runningOf(occurrence.job, now) : undefined
    if (other !== undefined) {
      insert(skipped(occurrence, lease.instance, now, `overlap: run ${other.id} of ${new Date(other.scheduledAt).toISOString()} still running on ${other.instance}`))
      return { _tag: "Overlap", running: toRun(other) } as const
    }
    const run = insert(running(occurrence.job, occurrence.scheduledAt.getTime(), occurrence.trigger, 1, lease))
    return { _tag: "Claimed", run } as const
  }

  return SchedulerStore.of({
    claim: (occurrence, lease, options) => Effect.sync(() => claim(occurrence, lease, options)),
    claimAll: (claims, lease) => Effect.sync(() => claims.map(({ occurrence, overlap }) => claim(occurrence, lease, { overlap }))),
    skip: (occurrence, by) =>
      Effect.sync(() => {
        if (has(occurrence, 1)) return false
        insert(skipped(occurrence, by.instance, by.now.getTime(), by.reason))
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
        active.values()
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
        active.values()
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
        if (hasOccurrence(row.job, row.scheduledAt, row.trigger, row.attempt + 1)) return Option.none()
        return Option.some(insert(running(row.job, row.scheduledAt, row.trigger, row.attempt + 1, lease)))
      }),
    lastOccurrence: (job) =>
      Effect.sync(() => {
        const history = byJob.get(job)
        let latest: number | undefined
        if (history !== undefined) {
          for (const row of history.active) {
            if (row.trigger === "schedule" && (latest === undefined || row.scheduledAt > latest)) latest = row.scheduledAt
          }
          const d = history.data
          for (let o = 0; o < history.size * STRIDE; o += STRIDE) {
            if (d[o + META]! % 2 === 0 && (latest === undefined || d[o + SCHEDULED]! > latest)) latest = d[o + SCHEDULED]!
          }
        }
        return Option.fromUndefinedOr(latest === undefined ? undefined : new Date(latest))
      }),
    recentRuns: (job, limit) =>
      Effect.sync(() => {
        const history = byJob.get(job)
        if (history === undefined) return []
        const runs = history.active.map(toRun)
        for (let slot = 0; slot < history.size; slot++) runs.push(finishedRun(history, slot))
        return runs
          .sort((a, b) => b.startedAt.getTime() - a.startedAt.getTime() || Number(b.id) - Number(a.id))
          .slice(0, limit)
      }),
    // Runs still running or owed a retry are kept: they are never records.
    prune: (before) =>
      Effect.sync(() => {
        const cut = before.getTime()
        let deleted = 0
        for (const [job, history] of byJob) {
          for (let slot = history.size - 1; slot >= 0; slot--) {
            if (history.data[slot * STRIDE + ENDED]! < cut) {
              removeFinished(history, slot)
              deleted++
            }
          }
          if (history.size === 0 && history.active.length === 0) byJob.delete(job)
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
