/**
 * A job is a value: what to run (an Effect), when (a schedule in a time zone), and the policies
 * the scheduler applies to each of its runs (SPEC §3).
 *
 * `job({...})` declares one; `register(jobs, defaults)` checks a set of them at start and fails
 * with a `JobDefinitionError` naming the job and the field at fault (duplicate name, invalid
 * expression or zone, a timeout or retry policy out of range), so a typo in a schedule stops the
 * program before it runs anything instead of a job silently never firing.
 */
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Result from "effect/Result"
import type { BackoffPolicy } from "../resilience/backoff.ts"
import { parseSchedule, type Schedule } from "./schedule.ts"

/** `skip`: an occurrence that finds the previous run still going is recorded as skipped. */
export type OverlapPolicy = "skip" | "allow"

/**
 * What happens to occurrences that fell while no scheduler was running (read from the run
 * history at start): `skip` forgets them; `catch-up` runs the latest one once, at start.
 */
export type MissedRunPolicy = "skip" | "catch-up"

export interface JobDefinition<E = unknown, R = never> {
  /** Unique among the registered jobs; the key of its history and its metrics. */
  readonly name: string
  /** See `schedule.ts`: cron (5 or 6 fields), `@hourly`/`@daily`/`@weekly`/`@monthly`, `@every 30s`. */
  readonly schedule: string
  /** IANA zone for cron schedules; the scheduler's default (`TZ`, else UTC) when absent. */
  readonly timeZone?: string
  /** A run still going after this is interrupted and recorded as timed out [WORKER_DEFAULT_TIMEOUT_SECONDS]. */
  readonly timeout?: Duration.Input
  /** Retries after a failed, timed-out or lost run; none when absent (the next occurrence comes anyway). */
  readonly retry?: BackoffPolicy
  /** [skip] */
  readonly overlap?: OverlapPolicy
  /** [skip] */
  readonly missed?: MissedRunPolicy
  readonly run: Effect.Effect<unknown, E, R>
}

/** A job with every default applied and its schedule parsed. */
export interface Job<R = never> {
  readonly name: string
  readonly schedule: Schedule
  readonly timeZone: string
  readonly timeout: Duration.Duration
  readonly retry: BackoffPolicy | undefined
  readonly overlap: OverlapPolicy
  readonly missed: MissedRunPolicy
  readonly run: Effect.Effect<unknown, unknown, R>
}

export interface JobDefaults {
  readonly timeZone: string
  readonly timeout: Duration.Duration
}

/** A job definition, typed: `job({ name, schedule, run })`. */
export const job = <E, R>(definition: JobDefinition<E, R>): JobDefinition<E, R> => definition

export class JobDefinitionError extends Data.TaggedError("JobDefinitionError")<{
  readonly job: string
  readonly field: string
  readonly reason: string
}> {
  override get message() {
    return `job "${this.job}": ${this.field}: ${this.reason}`
  }
}

const names = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/

const checkPolicy = (name: string, policy: BackoffPolicy): JobDefinitionError | undefined => {
  const fail = (field: string, reason: string) => new JobDefinitionError({ job: name, field: `retry.${field}`, reason })
  const millis = (input: Duration.Input) => Duration.toMillis(Duration.fromInputUnsafe(input))
  try {
    if (!(millis(policy.base) >= 0)) return fail("base", "must be a duration of 0 or more")
    if (!(millis(policy.max) >= millis(policy.base))) return fail("max", "must be at least base")
  } catch (error) {
    return fail("base", `not a duration: ${error instanceof Error ? error.message : String(error)}`)
  }
  if (policy.factor !== undefined && !(policy.factor >= 1)) return fail("factor", `must be 1 or more, got ${policy.factor}`)
  if (policy.jitter !== undefined && !(policy.jitter >= 0 && policy.jitter <= 1)) {
    return fail("jitter", `must be from 0 to 1, got ${policy.jitter}`)
  }
  if (policy.maxAttempts !== undefined && !(Number.isSafeInteger(policy.maxAttempts) && policy.maxAttempts >= 1)) {
    return fail("maxAttempts", `must be an integer of 1 or more, got ${policy.maxAttempts}`)
  }
  return undefined
}

/** Checks one definition and applies the defaults. */
export const define = <E, R>(definition: JobDefinition<E, R>, defaults: JobDefaults): Result.Result<Job<R>, JobDefinitionError> => {
  const name = definition.name
  if (typeof name !== "string" || !names.test(name)) {
    return Result.fail(new JobDefinitionError({
      job: String(name),
      field: "name",
      reason: "must be 1 to 128 letters, digits, or . _ : - (not first), so it can key history and metrics"
    }))
  }
  const timeZone = definition.timeZone ?? defaults.timeZone
  const schedule = parseSchedule(definition.schedule, timeZone)
  if (Result.isFailure(schedule)) {
    return Result.fail(new JobDefinitionError({ job: name, field: schedule.failure.field, reason: schedule.failure.message }))
  }
  const timeout = definition.timeout === undefined ? Option.some(defaults.timeout) : Duration.fromInput(definition.timeout)
  if (Option.isNone(timeout) || !(Duration.toMillis(timeout.value) > 0) || !Duration.isFinite(timeout.value)) {
    return Result.fail(new JobDefinitionError({
      job: name,
      field: "timeout",
      reason: `must be a finite duration greater than 0, got ${String(definition.timeout)}`
    }))
  }
  if (definition.retry !== undefined) {
    const issue = checkPolicy(name, definition.retry)
    if (issue !== undefined) return Result.fail(issue)
  }
  const overlap = definition.overlap ?? "skip"
  if (overlap !== "skip" && overlap !== "allow") {
    return Result.fail(new JobDefinitionError({ job: name, field: "overlap", reason: `must be "skip" or "allow", got "${overlap}"` }))
  }
  const missed = definition.missed ?? "skip"
  if (missed !== "skip" && missed !== "catch-up") {
    return Result.fail(new JobDefinitionError({ job: name, field: "missed", reason: `must be "skip" or "catch-up", got "${missed}"` }))
  }
  return Result.succeed({
    name,
    schedule: schedule.success,
    timeZone,
    timeout: timeout.value,
    retry: definition.retry,
    overlap,
    missed,
    run: definition.run
  })
}

/**
 * Checks every definition (names unique, schedules valid) and returns the jobs with their
 * defaults applied, in the order given. Fails with the first problem found.
 */
export const register = <R>(
  definitions: ReadonlyArray<JobDefinition<any, R>>,
  defaults: JobDefaults
): Effect.Effect<ReadonlyArray<Job<R>>, JobDefinitionError> =>
  Effect.suspend(() => {
    const jobs: Array<Job<R>> = []
    const seen = new Set<string>()
    for (const definition of definitions) {
      const defined = define(definition, defaults)
      if (Result.isFailure(defined)) return Effect.fail(defined.failure)
      if (seen.has(defined.success.name)) {
        return Effect.fail(new JobDefinitionError({
          job: defined.success.name,
          field: "name",
          reason: "registered twice; job names must be unique"
        }))
      }
      seen.add(defined.success.name)
      jobs.push(defined.success)
    }
    return Effect.succeed(jobs)
  })
