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
 * The per-job series are kept here, compactly, and entered in the metric registry as entries of
 * their own: a series made by `Metric.update` costs about 800 bytes (its closures, typed arrays
 * and a metric object to update it through), and one made by `Metric.registerUnsafe` still
 * about 450 (a hooks object, a closure and its scope besides the entry), which with 10 000 jobs
 * was most of the scheduler's memory. Here a job's series share one `Float64Array` of cells,
 * and each series is a single object serving as the registry's entry and its own hooks. The
 * registry lists every series under the key Effect's own histogram or counter of the same name,
 * description and attributes would have (so `Metric.value` of such a metric reads ours instead
 * of starting a second series), with the state it would hold, so exporters and
 * `Metric.snapshot` see no difference. Kept per registry, as Effect's own series are.
 */

/** A histogram's cells (its boundaries in ascending order, as `exponentialBoundaries` gives them): count, sum, min, max, then the count of each bucket (the last: above every boundary). */
const COUNT = 0
const SUM = 1
const MIN = 2
const MAX = 3

const outcomes: ReadonlyArray<Exclude<FinalOutcome, "skipped">> = ["succeeded", "failed", "timed_out", "interrupted"]
const reasons: ReadonlyArray<SkipReason> = ["concurrency_limit", "overlap", "paused", "stalled", "missed", "store_error"]

/** Where each series' cells start in a job's array: lateness, duration, then one count per outcome and per skip reason. */
const LATENESS = 0
const DURATION = LATENESS + 4 + latenessOptions.boundaries.length + 1
const COUNTS = DURATION + 4 + durationOptions.boundaries.length + 1
const CELLS = COUNTS + outcomes.length + reasons.length

/**
 * A job's cells; a series not registered yet has NaN in its first cell (a histogram's count, a
 * counter's value), so one array also says which series exist.
 */
const jobCells = () => new Float64Array(CELLS).fill(NaN)

const observe = (cells: Float64Array, at: number, boundaries: ReadonlyArray<number>, value: number) => {
  let i = 0
  while (i < boundaries.length && !(value <= boundaries[i]!)) i++
  cells[at + 4 + i]!++
  cells[at + COUNT]!++
  cells[at + SUM]! += value
  if (value < cells[at + MIN]!) cells[at + MIN] = value
  if (value > cells[at + MAX]!) cells[at + MAX] = value
}

/**
 * One series: the registry's entry (`Metric.Metadata`) and its own hooks. Its cells are private
 * fields, so `Metric.snapshot`, which copies an entry's own properties, copies only the metadata.
 */
class Series implements Metric.Metric.Metadata<number, unknown>, Metric.Metric.Hooks<number, unknown> {
  readonly hooks: Metric.Metric.Hooks<number, unknown> = this
  readonly #cells: Float64Array
  readonly #at: number
  readonly #boundaries: ReadonlyArray<number> | undefined
  constructor(
    readonly type: "Counter" | "Histogram",
    readonly id: string,
    readonly description: string,
    readonly attributes: Metric.Metric.AttributeSet,
    cells: Float64Array,
    at: number,
    boundaries?: ReadonlyArray<number>
  ) {
    this.#cells = cells
    this.#at = at
    this.#boundaries = boundaries
  }
  get(): Metric.CounterState<number> | Metric.HistogramState {
    const cells = this.#cells
    const at = this.#at
    const boundaries = this.#boundaries
    if (boundaries === undefined) return { count: cells[at]!, incremental: true }
    const buckets: Array<[number, number]> = new Array(boundaries.length)
    let cumulated = 0
    for (let i = 0; i < boundaries.length; i++) {
      cumulated += cells[at + 4 + i]!
      buckets[i] = [boundaries[i]!, cumulated]
    }
    return { buckets, count: cells[at + COUNT]!, min: cells[at + MIN]!, max: cells[at + MAX]!, sum: cells[at + SUM]! }
  }
  update() {}
  modify() {}
}

/** The key Effect gives a metric's series (`makeKey` in effect/Metric): its type, id, description and sorted attributes. */
const keyOf = (series: Series) =>
  JSON.stringify([series.type, series.id, series.description, Object.entries(series.attributes).sort((a, b) => a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)])

type Registry = Map<string, Metric.Metric.Metadata<any, any>>
const registries = new WeakMap<Registry, Map<string, Float64Array>>()

const cellsOf = (registry: Registry, job: string): Float64Array => {
  let jobs = registries.get(registry)
  if (jobs === undefined) registries.set(registry, jobs = new Map())
  let cells = jobs.get(job)
  if (cells === undefined) jobs.set(job, cells = jobCells())
  return cells
}

const enter = (registry: Registry, series: Series) => {
  registry.set(keyOf(series), series)
}

/** `job`'s histogram at `at` (LATENESS or DURATION), registered (empty) if it was not. */
const histogram = (registry: Registry, cells: Float64Array, at: number, job: { readonly job: string }) => {
  if (!Number.isNaN(cells[at + COUNT]!)) return
  const options = at === LATENESS ? latenessOptions : durationOptions
  cells.fill(0, at, at + 4 + options.boundaries.length + 1)
  cells[at + MIN] = Number.MAX_VALUE
  cells[at + MAX] = -Number.MAX_VALUE
  const id = at === LATENESS ? "scheduler_job_lateness_seconds" : "scheduler_job_duration_seconds"
  enter(registry, new Series("Histogram", id, options.description, job, cells, at, options.boundaries))
}

const count = (registry: Registry, cells: Float64Array, job: string, i: number, by: number) => {
  const at = COUNTS + i
  if (Number.isNaN(cells[at]!)) {
    cells[at] = 0
    enter(
      registry,
      i < outcomes.length
        ? new Series("Counter", "scheduler_job_runs", runsOptions.description, { job, outcome: outcomes[i]! }, cells, at)
        : new Series("Counter", "scheduler_job_skips", skipsOptions.description, { job, reason: reasons[i - outcomes.length]! }, cells, at)
    )
  }
  // An incremental counter ignores a negative update, as Effect's does.
  if (by >= 0) cells[at]! += by
}

const registryOf = (context: Context.Context<never>) => Context.get(context, Metric.MetricRegistry) as Registry

/**
 * Registers the lateness and duration histograms of `jobs` (empty until they run), so every job
 * has its series from the start: a dashboard lists jobs that have not run yet, and the series
 * are made before the first occurrences rather than while they fire.
 */
export const registerJobs = (jobs: ReadonlyArray<string>) =>
  Effect.contextWith((context: Context.Context<never>) => {
    const registry = registryOf(context)
    for (const job of jobs) {
      const cells = cellsOf(registry, job)
      const attributes = { job }
      histogram(registry, cells, LATENESS, attributes)
      histogram(registry, cells, DURATION, attributes)
    }
    return Effect.void
  })

export const recordRun = (job: string, outcome: Exclude<FinalOutcome, "skipped">, seconds: number) =>
  Effect.contextWith((context: Context.Context<never>) => {
    const registry = registryOf(context)
    const cells = cellsOf(registry, job)
    count(registry, cells, job, outcomes.indexOf(outcome), 1)
    histogram(registry, cells, DURATION, { job })
    observe(cells, DURATION, durationOptions.boundaries, seconds)
    return Effect.void
  })

export const recordSkip = (job: string, reason: SkipReason, n = 1) =>
  Effect.contextWith((context: Context.Context<never>) => {
    const registry = registryOf(context)
    count(registry, cellsOf(registry, job), job, outcomes.length + reasons.indexOf(reason), n)
    return Effect.void
  })

export const recordLateness = (job: string, seconds: number) =>
  Effect.contextWith((context: Context.Context<never>) => {
    const registry = registryOf(context)
    const cells = cellsOf(registry, job)
    histogram(registry, cells, LATENESS, { job })
    observe(cells, LATENESS, latenessOptions.boundaries, seconds)
    return Effect.void
  })

/**
 * `scheduler_jobs_running` reads `count` whenever the metrics are read, instead of being set at
 * every start and end of an attempt (two metric updates per run at a thousand runs a second).
 */
export const watchRunning = (count: () => number) =>
  Effect.contextWith((context: Context.Context<never>) => {
    Metric.registerUnsafe(running, context, { get: () => ({ value: count() }), update: ignore, modify: ignore })
    return Effect.void
  })

const ignore = () => {}
