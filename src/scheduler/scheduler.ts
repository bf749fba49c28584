/**
 * The scheduler (SPEC §3): runs registered jobs at their occurrences, each occurrence once
 * across every replica that shares the store.
 *
 * The jobs' next occurrences (schedule.ts) wait in one queue, earliest first (dueQueue.ts); one
 * fiber sleeps on Effect's Clock until the earliest, so TestClock can run a simulated week in
 * milliseconds. The occurrences due at once are claimed in one store call. At an occurrence:
 * 1. a paused job is skipped (counted, not recorded: a paused `@every 1s` job would flood the
 *    history);
 * 2. if this process already runs `maxConcurrent` attempts, the occurrence is skipped with a
 *    warning, recorded as skipped (reason: concurrency limit) and counted;
 * 3. the store claims it: one replica gets it; with the overlap policy `skip`, a claim that
 *    finds the job still running anywhere records a skip instead;
 * 4. the claimed attempt (attempt.ts) runs in a fiber of its own under the job's timeout (kept
 *    by one watchdog for all attempts, src/resilience/watchdog.ts),
 *    renewing its lease meanwhile; its end is recorded with the outcome, and with the error and
 *    the whole cause (stack included) when it failed, threw or died. The scheduler goes on.
 * 5. a failed, timed-out or interrupted attempt with retries left in the job's policy records
 *    when the next is due; this replica claims it then, or any replica's sweep does if this one
 *    is gone. A replica that dies mid-run stops renewing its lease; after it expires a sweep
 *    marks the run interrupted and the retry policy decides whether another attempt follows.
 *
 * Missed runs: at start, a job whose history ends before its latest occurrence missed some
 * while no replica ran; `catch-up` runs the latest of them once, now; `skip` records the latest
 * as skipped (saying how many were missed) and counts them all (`reason="missed"`).
 * A process that stalls past occurrences (a long GC, a suspended laptop) skips them likewise,
 * counted as `stalled`, rather than firing a burst.
 *
 * Stopping (the run fiber interrupted): no occurrence, retry or sweep starts any more; running
 * attempts get `shutdownTimeout` to finish; those still running then are interrupted and
 * recorded as interrupted (and owed a retry when their policy has one left, for another
 * replica or the next start to take).
 */
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import {
  type ClaimResult,
  type Completion,
  type Occurrence,
  type Run,
  SchedulerStore,
  type SchedulerStoreError,
  type Trigger
} from "../capabilities/SchedulerStore.ts"
import { exhausted } from "../resilience/backoff.ts"
import { CurrentRun, runAttempt } from "./attempt.ts"
import { type Due, DueQueue } from "./dueQueue.ts"
import type { Job } from "./job.ts"
import * as Metrics from "./metrics.ts"
import { nextOccurrence, previousOccurrence } from "./schedule.ts"
import { makeTimeouts } from "../resilience/watchdog.ts"
import { IntrusiveList, type Links } from "../runtime/intrusiveList.ts"

export interface SchedulerOptions {
  /** This replica's name in the history and in leases; unique among replicas. */
  readonly instance: string
  /** Attempts running at once in this process [WORKER_MAX_CONCURRENT_JOBS, 10]. */
  readonly maxConcurrent: number
  /** How long stopping waits for running attempts before interrupting them [SHUTDOWN_TIMEOUT, 30 s]. */
  readonly shutdownTimeout: Duration.Input
  /** Finished runs older than this are pruned [SCHEDULER_HISTORY_RETENTION, 7 days]. */
  readonly retention: Duration.Input
  /**
   * A claim lapses this long after its last renewal [30 s]; attempts renew every third of it.
   * A replica that died is noticed this long after its last renewal, plus one sweep.
   */
  readonly lease?: Duration.Input
  /** How often expired leases, due retries and pause flags are read from the store [5 s]. */
  readonly sweepInterval?: Duration.Input
  /** How often old history is pruned [1 hour]. */
  readonly pruneInterval?: Duration.Input
}

export class UnknownJobError extends Data.TaggedError("UnknownJobError")<{ readonly job: string }> {
  override get message() {
    return `no job named "${this.job}" is registered`
  }
}

export type TriggerResult =
  | { readonly _tag: "Started"; readonly run: Run }
  | { readonly _tag: "Skipped"; readonly reason: string }

export interface JobStatus {
  readonly name: string
  readonly schedule: string
  readonly timeZone: string
  /** The job's next occurrence; null before the scheduler runs and once it stopped. */
  readonly nextRun: Date | null
  readonly paused: boolean
  readonly recentRuns: ReadonlyArray<Run>
}

export interface Scheduler {
  /** Runs the jobs until interrupted; interruption is the graceful stop described above. */
  readonly run: Effect.Effect<never>
  /** Runs `name` now, recorded as a manual run (it obeys the concurrency limit and overlap policy). */
  readonly trigger: (name: string) => Effect.Effect<TriggerResult, UnknownJobError | SchedulerStoreError>
  /** Stops (or restarts) `name`'s scheduled occurrences on every replica; a running attempt goes on. */
  readonly pause: (name: string) => Effect.Effect<void, UnknownJobError | SchedulerStoreError>
  readonly resume: (name: string) => Effect.Effect<void, UnknownJobError | SchedulerStoreError>
  /** Every job with its next run, pause flag and latest runs (`recent` of them [10]). */
  readonly status: (recent?: number) => Effect.Effect<ReadonlyArray<JobStatus>, SchedulerStoreError>
}

export { CurrentRun }

/** A fiber in one of the scheduler's lists: a running attempt (with its run's id) or a waiter. */
interface Tracked<A> extends Links<Tracked<A>> {
  readonly id: string
  readonly fiber: Fiber.Fiber<A>
}

const track = <A>(id: string, fiber: Fiber.Fiber<A>): Tracked<A> => ({ id, fiber, prev: undefined, next: undefined, linked: false })

const fibersOf = <A>(list: IntrusiveList<Tracked<A>>) => list.toArray().map((tracked) => tracked.fiber)

const millis = (input: Duration.Input) => Duration.toMillis(Duration.fromInputUnsafe(input))

/**
 * Builds a scheduler for `jobs` (from `register`). The jobs' own requirements `R` are taken from
 * the caller's context, so the scheduler's methods need nothing more.
 */
export const makeScheduler = <R>(
  jobs: ReadonlyArray<Job<R>>,
  options: SchedulerOptions
): Effect.Effect<Scheduler, never, SchedulerStore | R> =>
  Effect.gen(function*() {
    const store = yield* SchedulerStore
    const context = yield* Effect.context<R>()
    const byName = new Map(jobs.map((job) => [job.name, job]))
    const leaseMillis = millis(options.lease ?? "30 seconds")
    const sweepInterval = millis(options.sweepInterval ?? "5 seconds")
    const pruneInterval = millis(options.pruneInterval ?? "1 hour")
    const retention = millis(options.retention)
    const shutdownTimeout = Duration.fromInputUnsafe(options.shutdownTimeout)

    // Mutable state, touched only inside Effect.sync steps: each check-and-update is one step,
    // so no two fibers can both take the last concurrency slot.
    // Lists, not a Map and a Set: an entry is added and removed at every run that waits
    // (intrusiveList.ts says why).
    const attempts = new IntrusiveList<Tracked<Completion | undefined>>()
    const lost = new Set<string>()
    let renewer: Fiber.Fiber<void> | undefined
    const waiters = new IntrusiveList<Tracked<void>>()
    /** Each job's entry in the timer's queue (its next occurrence), while the timer runs. */
    let nextRuns: Map<string, Due<Job<R>>> | undefined
    let paused = new Set<string>()
    let reserved = 0
    let stopping = false
    const timeouts = makeTimeouts()

    const lookup = (name: string) =>
      Effect.suspend(() => {
        const job = byName.get(name)
        return job === undefined ? Effect.fail(new UnknownJobError({ job: name })) : Effect.succeed(job)
      })

    const reserve = Effect.sync(() => {
      if (stopping || reserved >= options.maxConcurrent) return false
      reserved++
      return true
    })
    const release = Effect.sync(() => {
      reserved--
    })

    // Attempts run in the context they are started in (the timer's, or an ops request's) with
    // the jobs' requirements on top. The timer starts every scheduled attempt from one context,
    // so that merge (a copy of the context) is made once, not once a run.
    let mergedFrom: Context.Context<never> | undefined
    let merged: Context.Context<R> = context
    const attemptContext = (current: Context.Context<never>): Context.Context<R> => {
      if (current !== mergedFrom) {
        mergedFrom = current
        merged = Context.merge(current, context)
      }
      return merged
    }

    const annotate = (job: Job<R>, occurrence: Occurrence) =>
      Effect.annotateLogs({ job: job.name, scheduledAt: occurrence.scheduledAt.toISOString(), trigger: occurrence.trigger })

    /**
     * Renews the leases of every running attempt in one store call each third of the lease, for
     * as long as attempts run (also while stopping: a draining run must not look abandoned).
     * An attempt whose run is no longer ours was taken over by another replica, which now owns
     * it: it is interrupted here and left for the new owner to record.
     */
    const renewLeases: Effect.Effect<void> = Effect.gen(function*() {
      while (true) {
        yield* Effect.sleep(Duration.millis(Math.max(1, Math.floor(leaseMillis / 3))))
        const running = yield* Effect.sync(() => {
          if (attempts.size === 0) renewer = undefined
          return attempts.toArray()
        })
        if (running.length === 0) return
        const ids = running.map((attempt) => attempt.id)
        const now = yield* Clock.currentTimeMillis
        const ours = yield* store.renew(ids, options.instance, new Date(now + leaseMillis)).pipe(
          // A store outage is no proof a run was taken: keep them running, try again next time.
          Effect.catch((error) => Effect.as(Effect.logWarning(`could not renew leases: ${error.message}`), new Set(ids)))
        )
        for (const attempt of running) {
          // Not linked any more: it ended meanwhile.
          if (ours.has(attempt.id) || !attempt.linked) continue
          lost.add(attempt.id)
          yield* Effect.logWarning(`run ${attempt.id} was taken over by another replica after its lease lapsed; stopping it here`)
          yield* Effect.forkDetach(Fiber.interrupt(attempt.fiber))
        }
      }
    })

    /**
     * Runs one claimed attempt in a fiber of its own (stopping waits for it, then interrupts it)
     * and records how it ended. The slot reserved for it is released when it ends.
     */
    const startAttempt = (job: Job<R>, run: Run) =>
      Effect.gen(function*() {
        let tracked: Tracked<Completion | undefined> | undefined
        // The attempt annotates its logs with the run itself.
        const attempt = runAttempt(job, run, { store, instance: options.instance, context: attemptContext, lost: (id) => lost.has(id), timeouts }).pipe(
          Effect.ensuring(Effect.suspend(() => {
            if (tracked !== undefined) attempts.remove(tracked)
            lost.delete(run.id)
            return release
          }))
        )
        const fiber = yield* Effect.forkDetach(attempt, { startImmediately: true })
        // A job that needs no waiting has ended already, its cleanup run: keep no stale entry.
        if (fiber.pollUnsafe() === undefined) {
          attempts.push(tracked = track(run.id, fiber))
          if (renewer === undefined) renewer = yield* Effect.forkDetach(renewLeases, { startImmediately: true })
        }
        return fiber
      })

    /** Waits for the retry `previous` is owed, claims it and runs it, as long as it is owed. */
    const followRetries = (job: Job<R>, first: Fiber.Fiber<Completion | undefined>, run: Run): Effect.Effect<void> =>
      Effect.gen(function*() {
        let fiber = first
        let previous = run
        while (true) {
          const done = yield* Fiber.await(fiber).pipe(Effect.map((exit) => (Exit.isSuccess(exit) ? exit.value : undefined)))
          if (done?.retryAt === undefined) return
          const wait = done.retryAt.getTime() - (yield* Clock.currentTimeMillis)
          if (wait > 0) yield* Effect.sleep(Duration.millis(wait))
          // Without a free slot the retry stays owed in the store; a later sweep claims it.
          const next = yield* claimRetry(job, { ...previous, retryAt: done.retryAt })
          if (next === undefined) return
          fiber = next.fiber
          previous = next.run
        }
      })

    const claimRetry = (job: Job<R>, previous: Run) =>
      Effect.uninterruptible(Effect.gen(function*() {
        if (!(yield* reserve)) return undefined
        const now = yield* Clock.currentTimeMillis
        const claimed = yield* store.claimRetry(previous, {
          instance: options.instance,
          now: new Date(now),
          until: new Date(now + leaseMillis)
        }).pipe(Effect.catch((error) => Effect.as(Effect.logWarning(`could not claim a retry: ${error.message}`), Option.none())))
        if (Option.isNone(claimed)) {
          yield* release
          return undefined
        }
        yield* Effect.logInfo(`job ${job.name} attempt ${claimed.value.attempt} claimed (retry)`)
        return { run: claimed.value, fiber: yield* startAttempt(job, claimed.value) }
      }))

    /** Forks `effect` as a waiter: stopping interrupts it at once. */
    const asWaiter = (effect: Effect.Effect<void>) =>
      Effect.gen(function*() {
        const fiber = yield* Effect.forkDetach(effect, { startImmediately: true })
        if (fiber.pollUnsafe() !== undefined) return
        const waiter = track("", fiber)
        waiters.push(waiter)
        fiber.addObserver(() => waiters.remove(waiter))
      })

    /** Settles an occurrence this process has no slot for: recorded as skipped, unless another replica claimed it. */
    const refuse = (job: Job<R>, occurrence: Occurrence, now: number): Effect.Effect<TriggerResult> =>
      Effect.gen(function*() {
        if (stopping) return { _tag: "Skipped", reason: "the scheduler is stopping" } as TriggerResult
        const reason = `concurrency limit reached: ${options.maxConcurrent} jobs already running (WORKER_MAX_CONCURRENT_JOBS)`
        const recorded = yield* store.skip(occurrence, { instance: options.instance, now: new Date(now), reason }).pipe(
          Effect.catch((error) => Effect.as(Effect.logWarning(`could not record the skip: ${error.message}`), true))
        )
        // Another replica that claimed it first runs it: nothing was skipped.
        if (!recorded) return { _tag: "Skipped", reason: "claimed by another replica" } as TriggerResult
        yield* Effect.logWarning(`job ${job.name} skipped: ${reason}`)
        return yield* skipped(job, "concurrency_limit", reason)
      }).pipe(annotate(job, occurrence))

    const skipped = (job: Job<R>, reason: Metrics.SkipReason, text: string) =>
      Effect.as(Metrics.recordSkip(job.name, reason), { _tag: "Skipped", reason: text } as TriggerResult)

    /** What a claim's answer means here: the first attempt started, or the slot given back. */
    const settle = (job: Job<R>, occurrence: Occurrence, result: ClaimResult): Effect.Effect<TriggerResult> =>
      Effect.gen(function*() {
        if (result._tag === "Taken") {
          yield* release
          return { _tag: "Skipped", reason: "claimed by another replica" } as TriggerResult
        }
        if (result._tag === "Overlap") {
          yield* release
          const reason = `overlap: the run of ${result.running.scheduledAt.toISOString()} is still running on ${result.running.instance}`
          yield* Effect.logWarning(`job ${job.name} skipped: ${reason}`).pipe(annotate(job, occurrence))
          return yield* skipped(job, "overlap", reason)
        }
        // The attempt and the retries annotate their own logs with the run.
        const fiber = yield* startAttempt(job, result.run)
        if (job.retry !== undefined) yield* asWaiter(followRetries(job, fiber, result.run).pipe(annotate(job, occurrence)))
        return { _tag: "Started", run: result.run } as TriggerResult
      })

    /**
     * Claims occurrences (of distinct jobs) that fell due together, in one store call, and
     * starts their first attempts; settles a skip for each of the others.
     */
    const fireAll = (due: ReadonlyArray<readonly [Job<R>, Occurrence]>): Effect.Effect<ReadonlyArray<TriggerResult>> =>
      Effect.uninterruptible(Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        const results: Array<TriggerResult> = new Array(due.length)
        const claiming: Array<number> = []
        const refused: Array<number> = []
        for (let i = 0; i < due.length; i++) {
          if (yield* reserve) claiming.push(i)
          else refused.push(i)
        }
        if (claiming.length > 0) {
          const lease = { instance: options.instance, now: new Date(now), until: new Date(now + leaseMillis) }
          const claims = claiming.length === 1
            ? Effect.map(store.claim(due[claiming[0]!]![1], lease, { overlap: due[claiming[0]!]![0].overlap }), (result) => [result])
            : store.claimAll(claiming.map((i) => ({ occurrence: due[i]![1], overlap: due[i]![0].overlap })), lease)
          const claimed = yield* Effect.result(claims)
          for (let k = 0; k < claiming.length; k++) {
            const [job, occurrence] = due[claiming[k]!]!
            if (claimed._tag === "Success") {
              results[claiming[k]!] = yield* settle(job, occurrence, claimed.success[k]!)
              continue
            }
            yield* release
            yield* Effect.logError(`could not claim the occurrence: ${claimed.failure.message}`).pipe(annotate(job, occurrence))
            results[claiming[k]!] = yield* skipped(job, "store_error", claimed.failure.message)
          }
        }
        // After the claims, so the runs this process has slots for start without waiting for
        // the skips; side by side, as each job's own fiber recorded its skip before.
        yield* Effect.forEach(refused, (i) =>
          Effect.map(refuse(due[i]![0], due[i]![1], now), (result) => {
            results[i] = result
          }), { concurrency: refused.length > 1 ? "unbounded" : 1, discard: true })
        return results
      }))

    /** Claims an occurrence and starts its first attempt; settles a skip otherwise. */
    const fire = (job: Job<R>, occurrence: Occurrence): Effect.Effect<TriggerResult> =>
      Effect.map(fireAll([[job, occurrence]]), (results) => results[0]!)

    /**
     * The one timer of all jobs: sleeps on the Clock until the earliest next occurrence, then
     * fires every occurrence due by then as one batch (one claim in the store for all of them).
     */
    const timer = Effect.gen(function*() {
      const queue = new DueQueue<Job<R>>()
      const start = yield* Clock.currentTimeMillis
      nextRuns = new Map(jobs.map((job) => [job.name, queue.push(nextOccurrence(job.schedule, start), job)]))
      while (true) {
        const at = queue.peek()
        if (at === undefined) return yield* Effect.never
        const now = yield* Clock.currentTimeMillis
        if (at > now) yield* Effect.sleep(Duration.millis(at - now))
        const woke = yield* Clock.currentTimeMillis
        const due = queue.takeDue(woke)
        const batch: Array<readonly [Job<R>, Occurrence]> = []
        for (const { at: next, value: job } of due) {
          if (paused.has(job.name)) yield* Metrics.recordSkip(job.name, "paused")
          else batch.push([job, { job: job.name, scheduledAt: new Date(next), trigger: "schedule" }])
        }
        if (batch.length > 0) yield* fireAll(batch)
        for (const entry of due) {
          const { at: next, value: job } = entry
          // Occurrences that passed while the scheduler could not run are skipped, not fired in a burst.
          if (nextOccurrence(job.schedule, next) <= woke) {
            yield* Effect.logWarning(`job ${job.name}: occurrences after ${new Date(next).toISOString()} passed while the scheduler stalled; skipped`)
            yield* Metrics.recordSkip(job.name, "stalled")
          }
          queue.reschedule(entry, nextOccurrence(job.schedule, Math.max(next, woke)))
        }
      }
    }).pipe(Effect.ensuring(Effect.sync(() => {
      nextRuns = undefined
    })))

    /** Occurrences after `after` up to and including `until`, counted up to a bound (an `@every 1s` job down for a month). */
    const countOccurrences = (job: Job<R>, after: number, until: number) => {
      const bound = 100_000
      let count = 0
      for (let t = nextOccurrence(job.schedule, after); t <= until; t = nextOccurrence(job.schedule, t)) {
        if (++count >= bound) return { count, more: true }
      }
      return { count, more: false }
    }

    const catchUp = (job: Job<R>) =>
      Effect.gen(function*() {
        const last = yield* store.lastOccurrence(job.name)
        if (Option.isNone(last)) return
        const now = yield* Clock.currentTimeMillis
        const latest = previousOccurrence(job.schedule, now)
        if (latest <= last.value.getTime()) return
        if (job.missed === "skip") {
          // Recorded once, on the latest missed occurrence (whichever replica gets there first:
          // `skip` writes nothing for an occurrence already in the history), and counted by how
          // many were missed, so the history and the metrics both show the gap.
          const missed = countOccurrences(job, last.value.getTime(), latest)
          const reason = `missed: ${missed.count}${missed.more ? " or more" : ""} occurrences since ${last.value.toISOString()} passed while no scheduler ran (missed-run policy skip)`
          const recorded = yield* store.skip(
            { job: job.name, scheduledAt: new Date(latest), trigger: "schedule" },
            { instance: options.instance, now: new Date(now), reason }
          )
          if (!recorded) return
          yield* Effect.logWarning(`job ${job.name} skipped: ${reason}`)
          yield* Metrics.recordSkip(job.name, "missed", missed.count)
          return
        }
        yield* Effect.logInfo(`job ${job.name}: catching up the missed occurrence of ${new Date(latest).toISOString()}`)
        yield* fire(job, { job: job.name, scheduledAt: new Date(latest), trigger: "schedule" })
      }).pipe(Effect.catch((error) => Effect.logError(`job ${job.name}: could not read its history: ${error.message}`)))

    /** Expired leases and due retries of our jobs, and the pause flags: every replica's safety net. */
    const sweep = Effect.gen(function*() {
      paused = new Set(yield* store.paused)
      const now = yield* Clock.currentTimeMillis
      for (const run of yield* store.expiredLeases(new Date(now), 100)) {
        const job = byName.get(run.job)
        if (job === undefined || attempts.find((attempt) => attempt.id === run.id) !== undefined) continue
        const retryAt = job.retry !== undefined && !exhausted(job.retry, run.attempt) ? new Date(now) : undefined
        if (yield* store.expire(run.id, new Date(now), retryAt)) {
          yield* Effect.logWarning(`job ${job.name}: run ${run.id} (attempt ${run.attempt}) lost its replica ${run.instance}; marked interrupted`)
          yield* Metrics.recordRun(job.name, "interrupted", (now - run.startedAt.getTime()) / 1000)
        }
      }
      for (const run of yield* store.dueRetries(new Date(now), 100)) {
        const job = byName.get(run.job)
        if (job === undefined || stopping) continue
        const next = yield* claimRetry(job, run)
        if (next !== undefined && job.retry !== undefined) yield* asWaiter(followRetries(job, next.fiber, next.run))
      }
    }).pipe(Effect.catch((error) => Effect.logWarning(`scheduler sweep failed: ${error.message}`)))

    const prune = Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      const deleted = yield* store.prune(new Date(now - retention))
      if (deleted > 0) yield* Effect.logInfo(`pruned ${deleted} runs older than ${Duration.format(Duration.millis(retention))}`)
    }).pipe(Effect.catch((error) => Effect.logWarning(`pruning the run history failed: ${error.message}`)))

    const stop = Effect.gen(function*() {
      stopping = true
      yield* Fiber.interruptAll(fibersOf(waiters))
      const running = fibersOf(attempts)
      if (running.length === 0) return
      yield* Effect.logInfo(`waiting up to ${Duration.format(shutdownTimeout)} for ${running.length} running jobs`)
      const finished = yield* Effect.timeoutOption(Fiber.awaitAll(running), shutdownTimeout)
      if (Option.isNone(finished)) {
        const left = fibersOf(attempts)
        yield* Effect.logWarning(`${left.length} jobs still running after ${Duration.format(shutdownTimeout)}; interrupting them`)
        yield* Fiber.interruptAll(left)
      }
      yield* Effect.logInfo("all running jobs ended")
    })

    const run: Effect.Effect<never> = Effect.scoped(Effect.gen(function*() {
      // Added first, so it runs last: after the job, sweep and prune fibers are interrupted.
      yield* Effect.addFinalizer(() => stop)
      stopping = false
      yield* Metrics.registerJobs(jobs.map((job) => job.name))
      yield* Metrics.watchRunning(() => reserved)
      paused = new Set(yield* store.paused.pipe(Effect.orElseSucceed(() => new Set<string>())))
      yield* Effect.forEach(jobs, catchUp, { discard: true })
      yield* Effect.forkScoped(timer)
      yield* Effect.forkScoped(Effect.repeat(sweep, Schedule.spaced(Duration.millis(sweepInterval))))
      yield* Effect.forkScoped(Effect.repeat(prune, Schedule.spaced(Duration.millis(pruneInterval))))
      yield* Effect.logInfo(`scheduler ${options.instance} started with ${jobs.length} jobs`)
      return yield* Effect.never
    }))

    const setPaused = (value: boolean) => (name: string) =>
      Effect.gen(function*() {
        const job = yield* lookup(name)
        yield* store.setPaused(job.name, value, new Date(yield* Clock.currentTimeMillis))
        if (value) paused.add(job.name)
        else paused.delete(job.name)
        yield* Effect.logInfo(`job ${job.name} ${value ? "paused" : "resumed"}`)
      })

    return {
      run,
      trigger: (name) =>
        Effect.flatMap(lookup(name), (job) =>
          Effect.flatMap(Clock.currentTimeMillis, (now) =>
            fire(job, { job: job.name, scheduledAt: new Date(now), trigger: "manual" as Trigger }))),
      pause: setPaused(true),
      resume: setPaused(false),
      status: (recent = 10) =>
        Effect.forEach(jobs, (job) =>
          Effect.map(store.recentRuns(job.name, recent), (recentRuns): JobStatus => {
            const next = nextRuns?.get(job.name)?.at
            return {
              name: job.name,
              schedule: job.schedule.expression,
              timeZone: job.timeZone,
              nextRun: next === undefined ? null : new Date(next),
              paused: paused.has(job.name),
              recentRuns
            }
          }))
    } satisfies Scheduler
  })

/** The scheduler as a service, for the ops endpoints and the program. */
export class JobScheduler extends Context.Service<JobScheduler, Scheduler>()("queueworks/JobScheduler") {}
