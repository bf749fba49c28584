/**
 * The scheduler's metrics, per job (the `job` attribute):
 * - `scheduler_job_runs_total{job, outcome}`: finished attempts by outcome (succeeded, failed,
 *   timed_out, interrupted);
 * - `scheduler_job_skips_total{job, reason}`: occurrences not run, by reason (concurrency_limit,
 *   overlap, paused, stalled, missed, store_error); `missed` counts every occurrence that fell
 *   while no replica ran, for a job whose missed-run policy is skip;
 * - `scheduler_job_duration_seconds{job}`: start to end of each attempt;
 * - `scheduler_job_lateness_seconds{job}`: start minus scheduled time of each scheduled first
 *   attempt (how far behind the clock the scheduler runs);
 * - `scheduler_jobs_running`: attempts running in this process now.
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import type { FinalOutcome } from "../capabilities/SchedulerStore.ts"

export type SkipReason = "concurrency_limit" | "overlap" | "paused" | "stalled" | "missed" | "store_error"

const runsOptions = { description: "Finished job attempts, by outcome", incremental: true } as const
const skipsOptions = { description: "Job occurrences not run, by reason", incremental: true } as const
const durationOptions = {
  description: "Start to end of each job attempt",
  boundaries: Metric.exponentialBoundaries({ start: 0.001, factor: 2, count: 22 })
}
const latenessOptions = {
  description: "Start minus scheduled time of each scheduled run",
  boundaries: Metric.exponentialBoundaries({ start: 0.0005, factor: 2, count: 20 })
}
const running = Metric.gauge("scheduler_jobs_running", { description: "Job attempts running in this process" })

/*
 * The per-job series are kept here, compactly, and registered in the metric registry with a
 * `get` that reads them: a series made by `Metric.update` costs about 800 bytes (its closures,
 * typed arrays and a metric object to update it through), which with 10 000 jobs was most of
 * the scheduler's memory. The registry still lists every series, with the state a histogram or
 * counter of the same name and attributes would have, so exporters and `Metric.snapshot` see
 * no difference. Kept per registry, as Effect's own series are.
 */

/** A histogram's cells (its boundaries in ascending order, as `exponentialBoundaries` gives them): count, sum, min, max, then the count of each bucket (the last: above every boundary). */
const COUNT = 0
const SUM = 1
const MIN = 2
const MAX = 3

const histogramCells = (boundaries: ReadonlyArray<number>) => {
  const cells = new Float64Array(4 + boundaries.length + 1)
  cells[MIN] = Number.MAX_VALUE
  cells[MAX] = -Number.MAX_VALUE
  return cells
}

const observe = (cells: Float64Array, boundaries: ReadonlyArray<number>, value: number) => {
  let i = 0
  while (i < boundaries.length && !(value <= boundaries[i]!)) i++
  cells[4 + i]!++
  cells[COUNT]!++
  cells[SUM]! += value
  if (value < cells[MIN]!) cells[MIN] = value
  if (value > cells[MAX]!) cells[MAX] = value
}

const histogramState = (cells: Float64Array, boundaries: ReadonlyArray<number>): Metric.HistogramState => {
  const buckets: Array<[number, number]> = new Array(boundaries.length)
  let cumulated = 0
  for (let i = 0; i < boundaries.length; i++) {
    cumulated += cells[4 + i]!
    buckets[i] = [boundaries[i]!, cumulated]
  }
  return { buckets, count: cells[COUNT]!, min: cells[MIN]!, max: cells[MAX]!, sum: cells[SUM]! }
}

const outcomes: ReadonlyArray<Exclude<FinalOutcome, "skipped">> = ["succeeded", "failed", "timed_out", "interrupted"]
const reasons: ReadonlyArray<SkipReason> = ["concurrency_limit", "overlap", "paused", "stalled", "missed", "store_error"]

interface JobSeries {
  lateness?: Float64Array
  duration?: Float64Array
  /** Runs by outcome, then skips by reason (NaN: not registered yet). */
  counts?: Float64Array
}

type Registry = Map<string, unknown>
const registries = new WeakMap<Registry, Map<string, JobSeries>>()

const seriesOf = (context: Context.Context<never>, job: string): JobSeries => {
  const registry = Context.get(context, Metric.MetricRegistry) as Registry
  let jobs = registries.get(registry)
  if (jobs === undefined) registries.set(registry, jobs = new Map())
  let found = jobs.get(job)
  if (found === undefined) jobs.set(job, found = {})
  return found
}

const none = () => {}
// Made apart from the callers, so each closure holds only what it reads.
const histogramHooks = (cells: Float64Array, boundaries: ReadonlyArray<number>) => ({
  get: () => histogramState(cells, boundaries),
  update: none,
  modify: none
})
const counterHooks = (cells: Float64Array, i: number) => ({
  get: () => ({ count: cells[i]!, incremental: true }),
  update: none,
  modify: none
})

const histogram = (
  context: Context.Context<never>,
  name: string,
  options: { readonly description: string; readonly boundaries: ReadonlyArray<number> },
  job: string
) => {
  const cells = histogramCells(options.boundaries)
  Metric.registerUnsafe(Metric.histogram(name, { ...options, attributes: { job } }), context, histogramHooks(cells, options.boundaries))
  return cells
}

const count = (
  context: Context.Context<never>,
  series: JobSeries,
  i: number,
  make: () => Metric.Metric<number, Metric.CounterState<number>>,
  by: number
) => {
  const cells = series.counts ??= new Float64Array(outcomes.length + reasons.length).fill(NaN)
  if (Number.isNaN(cells[i]!)) {
    cells[i] = 0
    Metric.registerUnsafe(make(), context, counterHooks(cells, i))
  }
  // An incremental counter ignores a negative update, as Effect's does.
  if (by >= 0) cells[i]! += by
}

export const recordRun = (job: string, outcome: Exclude<FinalOutcome, "skipped">, seconds: number) =>
  Effect.contextWith((context: Context.Context<never>) => {
    const series = seriesOf(context, job)
    count(context, series, outcomes.indexOf(outcome), () => Metric.counter("scheduler_job_runs", { ...runsOptions, attributes: { job, outcome } }), 1)
    series.duration ??= histogram(context, "scheduler_job_duration_seconds", durationOptions, job)
    observe(series.duration, durationOptions.boundaries, seconds)
    return Effect.void
  })

export const recordSkip = (job: string, reason: SkipReason, n = 1) =>
  Effect.contextWith((context: Context.Context<never>) => {
    const series = seriesOf(context, job)
    const i = outcomes.length + reasons.indexOf(reason)
    count(context, series, i, () => Metric.counter("scheduler_job_skips", { ...skipsOptions, attributes: { job, reason } }), n)
    return Effect.void
  })

export const recordLateness = (job: string, seconds: number) =>
  Effect.contextWith((context: Context.Context<never>) => {
    const series = seriesOf(context, job)
    series.lateness ??= histogram(context, "scheduler_job_lateness_seconds", latenessOptions, job)
    observe(series.lateness, latenessOptions.boundaries, seconds)
    return Effect.void
  })

export const setRunning = (n: number) => Metric.update(running, n)
