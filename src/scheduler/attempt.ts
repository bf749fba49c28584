/**
 * One attempt at a claimed run: the job's effect under its timeout, and its end recorded in the
 * store with its outcome (succeeded, failed, timed out, interrupted), the error and the whole
 * cause, and the time its retry is due when the job's policy has one left. (The scheduler
 * renews the leases of all its running attempts at once; see scheduler.ts.)
 *
 * Invariant: an attempt that started is recorded however it ends (a failure, a defect, a timeout,
 * an interruption by the stop) — the recording runs uninterruptibly after the job — except when
 * its lease was taken over by another replica, which then owns the run and records it.
 */
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as References from "effect/References"
import * as Tracer from "effect/Tracer"
import { describeCause } from "../capabilities/describeCause.ts"
import type { Completion, Run, SchedulerStoreShape } from "../capabilities/SchedulerStore.ts"
import { delayFor, exhausted } from "../resilience/backoff.ts"
import type { Job } from "./job.ts"
import * as Metrics from "./metrics.ts"
import type { Timeouts } from "../resilience/watchdog.ts"

/**
 * The run a job's effect belongs to (job, scheduled time, attempt, trigger, instance), for jobs
 * whose work depends on it: a weekly report covers the week before its scheduled time, not the
 * week before whenever a retry happened to start. Undefined outside a job.
 */
export const CurrentRun = Context.Reference<Run | undefined>("queueworks/scheduler/CurrentRun", {
  defaultValue: () => undefined
})

/** A job attempt that ran past its timeout (interrupted at it). */
class JobTimeout extends Data.TaggedError("JobTimeout")<{ readonly timeout: Duration.Duration }> {
  override get message() {
    return `timed out after ${Duration.format(this.timeout)}`
  }
}

export interface AttemptEnv<R> {
  readonly store: SchedulerStoreShape
  readonly instance: string
  /**
   * The context an attempt runs in, from the one it is started in: the latter with the jobs'
   * own requirements on top.
   */
  readonly context: (current: Context.Context<never>) => Context.Context<R>
  /** Whether the run was taken over by another replica (the attempt was interrupted for that). */
  readonly lost: (runId: string) => boolean
  /** Keeps the job's timeout without a race per attempt; without it, a race keeps it. */
  readonly timeouts?: Timeouts
}

/** One line for the history: the first error's message, or the defect's. */
const summarize = (cause: Cause.Cause<unknown>): string => {
  const error = Cause.findError(cause)
  if (error._tag === "Success") return describeCause(error.success)
  const defect = Cause.findDefect(cause)
  if (defect._tag === "Success") return `defect: ${describeCause(defect.success)}`
  return "interrupted"
}

/** What an attempt's exit means for the history, and when its retry is due. */
const completion = <R>(job: Job<R>, run: Run, exit: Exit.Exit<unknown, unknown>, now: number) =>
  Effect.gen(function*() {
    const succeeded: Completion = { outcome: "succeeded", now: new Date(now) }
    if (Exit.isSuccess(exit)) return succeeded
    const cause = exit.cause
    const error = Cause.findError(cause)
    const outcome = error._tag === "Success" && error.success instanceof JobTimeout
      ? "timed_out" as const
      : Cause.hasInterruptsOnly(cause)
      ? "interrupted" as const
      : "failed" as const
    const retry = job.retry !== undefined && !exhausted(job.retry, run.attempt)
      ? new Date(now + Duration.toMillis(yield* delayFor(job.retry, run.attempt)))
      : undefined
    const ended: Completion = {
      outcome,
      now: new Date(now),
      error: outcome === "interrupted" ? "interrupted: the scheduler stopped before the run ended" : summarize(cause),
      ...(outcome === "failed" ? { errorStack: Cause.pretty(cause) } : {}),
      ...(retry === undefined ? {} : { retryAt: retry })
    }
    return ended
  })

/**
 * Runs `run`'s attempt of `job` and records its end; returns what was recorded (undefined when
 * nothing was: the run was no longer this instance's). Interrupting it interrupts the job, and
 * the end is recorded as interrupted.
 */
export const runAttempt = <R>(job: Job<R>, run: Run, env: AttemptEnv<R>): Effect.Effect<Completion | undefined> => {
  const timedOut = () => new JobTimeout({ timeout: job.timeout })
  const limited = env.timeouts === undefined
    ? Effect.timeoutOrElse(job.run, { duration: job.timeout, orElse: () => Effect.fail(timedOut()) })
    : env.timeouts.run(job.run, job.timeout, timedOut)
  // Effect's own tracer (no exporter configured) records nothing: a span per run would be made
  // only to be dropped, and at a thousand runs a second it was the largest allocation of a run
  // (about 2 KB of 22), as for the consume runner's message spans.
  const body = Effect.flatMap(Effect.tracer, (tracer) =>
    tracer === Tracer.nativeTracer ? limited : limited.pipe(Effect.withSpan(
      `scheduler job ${job.name}`,
      { attributes: { "job.name": job.name, "job.attempt": run.attempt, "job.trigger": run.trigger } },
      // A stack per run costs more than the rest of the span at a thousand runs a second.
      { captureStackTrace: false }
    )))
  // One change of context for the whole attempt (each costs a copy of the context or a rebuild
  // of the fiber's cache of it): the jobs' requirements, the run, and the log annotations that
  // tie the job's logs and the attempt's own to the run.
  const annotations = { job: job.name, scheduledAt: run.scheduledAt.toISOString(), trigger: run.trigger }
  const attemptContext = (current: Context.Context<never>): Context.Context<R> => {
    const base = env.context(current)
    return Context.add(
      Context.add(base, CurrentRun, run),
      References.CurrentLogAnnotations,
      { ...Context.get(base, References.CurrentLogAnnotations), ...annotations }
    )
  }
  return Effect.uninterruptibleMask((restore) =>
    Effect.gen(function*() {
      const started = yield* Clock.currentTimeMillis
      if (run.trigger === "schedule" && run.attempt === 1) {
        yield* Metrics.recordLateness(job.name, Math.max(0, started - run.scheduledAt.getTime()) / 1000)
      }
      const exit = yield* Effect.exit(restore(body))
      const ended = yield* Clock.currentTimeMillis
      if (Exit.isFailure(exit) && env.lost(run.id)) {
        yield* Effect.logWarning(`run ${run.id} was taken over by another replica after its lease lapsed; stopped here`)
        return undefined
      }
      const done = yield* completion(job, run, exit, ended)
      const recorded = yield* env.store.complete(run.id, env.instance, done).pipe(
        Effect.catch((error) => Effect.as(Effect.logError(`could not record the end of run ${run.id}: ${error.message}`), false))
      )
      yield* Metrics.recordRun(job.name, done.outcome, (ended - started) / 1000)
      const line = `job ${job.name} attempt ${run.attempt} ${done.outcome}${done.error ? `: ${done.error}` : ""}`
      if (done.outcome === "succeeded") yield* Effect.logInfo(line)
      else if (done.outcome === "failed") yield* Effect.logError(line).pipe(Effect.annotateLogs({ stack: done.errorStack }))
      else yield* Effect.logWarning(line)
      return recorded ? done : undefined
    })
  ).pipe(Effect.updateContext(attemptContext))
}
