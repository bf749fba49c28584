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

// One metric per attribute set, made once, with its attributes built in: tagging with
// `Metric.withAttributes` at each update rebuilds the series key every time, which showed in
// profiles at a thousand runs a second.
const cache = new Map<string, Metric.Metric<number, unknown>>()
const series = (key: string, make: () => Metric.Metric<number, unknown>) => {
  let found = cache.get(key)
  if (found === undefined) cache.set(key, found = make())
  return found
}

export const recordRun = (job: string, outcome: Exclude<FinalOutcome, "skipped">, seconds: number) =>
  Effect.andThen(
    Metric.update(series(`runs\u0000${job}\u0000${outcome}`, () => Metric.counter("scheduler_job_runs", { ...runsOptions, attributes: { job, outcome } })), 1),
    Metric.update(series(`duration\u0000${job}`, () => Metric.histogram("scheduler_job_duration_seconds", { ...durationOptions, attributes: { job } })), seconds)
  )

export const recordSkip = (job: string, reason: SkipReason, count = 1) =>
  Metric.update(series(`skips\u0000${job}\u0000${reason}`, () => Metric.counter("scheduler_job_skips", { ...skipsOptions, attributes: { job, reason } })), count)

export const recordLateness = (job: string, seconds: number) =>
  Metric.update(series(`lateness\u0000${job}`, () => Metric.histogram("scheduler_job_lateness_seconds", { ...latenessOptions, attributes: { job } })), seconds)

export const setRunning = (n: number) => Metric.update(running, n)
