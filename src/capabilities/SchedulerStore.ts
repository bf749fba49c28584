/**
 * SchedulerStore: where scheduler replicas agree on who runs an occurrence, and the history of
 * every run.
 *
 * Contract (`test/contract/schedulerStore.ts` checks it on memory, PGlite and PostgreSQL):
 * - An occurrence (job, scheduled time, trigger) is claimed at most once: of any number of
 *   replicas calling `claim` for it, exactly one gets `Claimed`; the others get `Taken`.
 *   `claimAll` claims a batch (of distinct jobs) at once with the same answers, and races
 *   safely with other batches and single claims.
 * - A claim holds a lease (instance id, expiry). `renew` extends the leases of an instance's
 *   running runs in one call and answers which are still its own (a run taken over is not);
 *   `complete` records the outcome and only ever completes the caller's own running run.
 * - A run whose lease expired (its replica died or stalled) is found by `expiredLeases`; exactly
 *   one caller of `expire` marks it interrupted, optionally with a time its retry is due.
 * - A finished run with `retryAt` set is found by `dueRetries` once that time has come; exactly
 *   one caller of `claimRetry` gets the next attempt (attempt + 1, same occurrence).
 * - With the overlap policy `skip`, a claim that finds another run of the job still running
 *   (an unexpired lease) records the occurrence as skipped and answers `Overlap`.
 * - Time is the caller's: every `now` comes from the scheduler's Clock, so TestClock drives
 *   leases and retries on every backend alike.
 *
 * History: `recentRuns` lists a job's runs newest first; `prune` deletes finished runs that
 * ended before a cut-off, never a running one. Pause flags per job persist with the history,
 * so every replica honours a pause.
 */
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import type * as Effect from "effect/Effect"
import type * as Option from "effect/Option"
import { describeCause } from "./describeCause.ts"

export type Trigger = "schedule" | "manual"

export type RunOutcome = "running" | "succeeded" | "failed" | "timed_out" | "skipped" | "interrupted"

/** What a run ended with: every outcome but `running`. */
export type FinalOutcome = Exclude<RunOutcome, "running">

export const runOutcomes: ReadonlyArray<RunOutcome> = ["running", "succeeded", "failed", "timed_out", "skipped", "interrupted"]

/** One occurrence of a job: what the store claims once. */
export interface Occurrence {
  readonly job: string
  readonly scheduledAt: Date
  readonly trigger: Trigger
}

/** Who holds a claim, and until when, as of `now`. */
export interface Lease {
  readonly instance: string
  readonly now: Date
  readonly until: Date
}

/** One attempt at one occurrence: a row of the run history. */
export interface Run extends Occurrence {
  /** Opaque, unique in the store. */
  readonly id: string
  /** 1 for the occurrence's first run, then one more per retry. */
  readonly attempt: number
  /** The replica that ran (or skipped) it. */
  readonly instance: string
  readonly startedAt: Date
  readonly endedAt: Date | null
  /** While running: the claim lapses after this unless renewed. */
  readonly leaseUntil: Date | null
  readonly outcome: RunOutcome
  /** One line: the error's message, the skip's reason. */
  readonly error: string | null
  /** The whole cause, stack included, when the run failed or died. */
  readonly errorStack: string | null
  /** When the next attempt is due; null when none will follow, or once it was claimed. */
  readonly retryAt: Date | null
}

export type ClaimResult =
  | { readonly _tag: "Claimed"; readonly run: Run }
  /** Another replica claimed (or skipped) this occurrence first. */
  | { readonly _tag: "Taken" }
  /** Recorded as skipped: `running` of the same job had not finished. */
  | { readonly _tag: "Overlap"; readonly running: Run }

export interface Completion {
  readonly outcome: Exclude<FinalOutcome, "skipped">
  readonly now: Date
  readonly error?: string
  readonly errorStack?: string
  readonly retryAt?: Date
}

export class SchedulerStoreError extends Data.TaggedError("SchedulerStoreError")<{
  readonly operation: string
  readonly cause: unknown
}> {
  override get message() {
    return `scheduler store ${this.operation} failed: ${describeCause(this.cause)}`
  }
}

export interface SchedulerStoreShape {
  /** Claims the occurrence's first attempt for `lease.instance`; see `ClaimResult`. */
  readonly claim: (
    occurrence: Occurrence,
    lease: Lease,
    options: { readonly overlap: "skip" | "allow" }
  ) => Effect.Effect<ClaimResult, SchedulerStoreError>
  /**
   * Claims the first attempts of several occurrences (of distinct jobs) in one call, answering
   * for each, in order, what `claim` would: the scheduler's occurrences that fall due together
   * cost one round of the store instead of one each.
   */
  readonly claimAll: (
    claims: ReadonlyArray<{ readonly occurrence: Occurrence; readonly overlap: "skip" | "allow" }>,
    lease: Lease
  ) => Effect.Effect<ReadonlyArray<ClaimResult>, SchedulerStoreError>
  /** Records the occurrence as skipped with `reason`, unless someone claimed it: true if recorded. */
  readonly skip: (
    occurrence: Occurrence,
    by: { readonly instance: string; readonly now: Date; readonly reason: string }
  ) => Effect.Effect<boolean, SchedulerStoreError>
  /**
   * Extends the leases of `runIds` that are `instance`'s running runs; returns those ids. An id
   * left out is no longer that instance's: taken over after its lease lapsed, or ended.
   */
  readonly renew: (
    runIds: ReadonlyArray<string>,
    instance: string,
    until: Date
  ) => Effect.Effect<ReadonlySet<string>, SchedulerStoreError>
  /** Ends `instance`'s running run: false (nothing written) when it is no longer that instance's. */
  readonly complete: (runId: string, instance: string, completion: Completion) => Effect.Effect<boolean, SchedulerStoreError>
  /** Running runs whose lease ended before `now`, oldest first, at most `limit`. */
  readonly expiredLeases: (now: Date, limit: number) => Effect.Effect<ReadonlyArray<Run>, SchedulerStoreError>
  /**
   * Marks a running run whose lease ended before `now` as interrupted, its retry due at
   * `retryAt` (none when absent): true for the one caller that did.
   */
  readonly expire: (runId: string, now: Date, retryAt?: Date) => Effect.Effect<boolean, SchedulerStoreError>
  /** Finished runs whose retry is due at `now`, earliest first, at most `limit`. */
  readonly dueRetries: (now: Date, limit: number) => Effect.Effect<ReadonlyArray<Run>, SchedulerStoreError>
  /** Claims the next attempt after `previous`, if its retry is due and nobody claimed it yet. */
  readonly claimRetry: (previous: Run, lease: Lease) => Effect.Effect<Option.Option<Run>, SchedulerStoreError>
  /** The latest scheduled (not manual) occurrence of `job` in the history. */
  readonly lastOccurrence: (job: string) => Effect.Effect<Option.Option<Date>, SchedulerStoreError>
  /** `job`'s latest runs, newest first. */
  readonly recentRuns: (job: string, limit: number) => Effect.Effect<ReadonlyArray<Run>, SchedulerStoreError>
  /** Deletes finished runs that ended before `before`; returns how many. */
  readonly prune: (before: Date) => Effect.Effect<number, SchedulerStoreError>
  readonly setPaused: (job: string, paused: boolean, now: Date) => Effect.Effect<void, SchedulerStoreError>
  /** The jobs paused now. */
  readonly paused: Effect.Effect<ReadonlySet<string>, SchedulerStoreError>
}

export class SchedulerStore extends Context.Service<SchedulerStore, SchedulerStoreShape>()("queueworks/SchedulerStore") {}
