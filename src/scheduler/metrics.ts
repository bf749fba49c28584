/**
 * The scheduler's metrics, per job (the `job` attribute):
 * - `scheduler_job_runs_total{job, outcome}`: finished attempts by outcome (succeeded, failed,
 *   timed_out, interrupted);
 * - `scheduler_job_skips_total{job, reason}`: occurrences not run, by reason (concurrency_limit,
 *   overlap, paused, stalled, store_error);
 * - `scheduler_job_duration_seconds{job}`: start to end of each attempt;
 * - `scheduler_job_lateness_seconds{job}`: start minus scheduled time of each scheduled first
 *   attempt (how far behind the clock the scheduler runs);
 * - `scheduler_jobs_running`: attempts running in this process now.
 */
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import type { FinalOutcome } from "../capabilities/SchedulerStore.ts"

export type SkipReason = "concurrency_limit" | "overlap" | "paused" | "stalled" | "store_error"

const runs = Metric.counter("scheduler_job_runs", { description: "Finished job attempts, by outcome", incremental: true })
const skips = Metric.counter("scheduler_job_skips", { description: "Job occurrences not run, by reason", incremental: true })
const duration = Metric.histogram("scheduler_job_duration_seconds", {
  description: "Start to end of each job attempt",
  boundaries: Metric.exponentialBoundaries({ start: 0.001, factor: 2, count: 22 })
})
const lateness = Metric.histogram("scheduler_job_lateness_seconds", {
  description: "Start minus scheduled time of each scheduled run",
  boundaries: Metric.exponentialBoundaries({ start: 0.0005, factor: 2, count: 20 })
})
const running = Metric.gauge("scheduler_jobs_running", { description: "Job attempts running in this process" })

// Tagged metrics are cached per attribute set: tagging anew costs a key built from the
// attributes on every update, which showed at a thousand runs a second.
const cache = new Map<string, Metric.Metric<number, unknown>>()
const tagged = (metric: Metric.Metric<number, unknown>, name: string, attributes: Record<string, string>) => {
  const key = `${name}\u0000${Object.values(attributes).join("\u0000")}`
  let found = cache.get(key)
  if (found === undefined) cache.set(key, found = Metric.withAttributes(metric, attributes))
  return found
}

export const recordRun = (job: string, outcome: Exclude<FinalOutcome, "skipped">, seconds: number) =>
  Effect.andThen(
    Metric.update(tagged(runs, "runs", { job, outcome }), 1),
    Metric.update(tagged(duration, "duration", { job }), seconds)
  )

export const recordSkip = (job: string, reason: SkipReason) => Metric.update(tagged(skips, "skips", { job, reason }), 1)

export const recordLateness = (job: string, seconds: number) => Metric.update(tagged(lateness, "lateness", { job }), seconds)

export const setRunning = (n: number) => Metric.update(running, n)
