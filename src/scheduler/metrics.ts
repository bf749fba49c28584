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

export const recordRun = (job: string, outcome: Exclude<FinalOutcome, "skipped">, seconds: number) =>
  Effect.andThen(
    Metric.update(Metric.withAttributes(runs, { job, outcome }), 1),
    Metric.update(Metric.withAttributes(duration, { job }), seconds)
  )

export const recordSkip = (job: string, reason: SkipReason) => Metric.update(Metric.withAttributes(skips, { job, reason }), 1)

export const recordLateness = (job: string, seconds: number) => Metric.update(Metric.withAttributes(lateness, { job }), seconds)

export const setRunning = (n: number) => Metric.update(running, n)
