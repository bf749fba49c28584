/**
 * The scheduler's part of the demonstration: a few `@every` jobs on whatever store it is given
 * (the demo: in memory), for a few seconds, then the history as a table.
 *
 * - `tick` every second: always succeeds;
 * - `flaky` every 2 s: its first attempt at each occurrence fails, the retry (300 ms later)
 *   gets through, so the history shows attempt 1 failed and attempt 2 succeeded;
 * - `slow` every second, working 1.5 s with the overlap policy skip: every other occurrence
 *   finds the previous run still going and is recorded as skipped;
 * - one manual trigger of `tick`, recorded as `manual`.
 *
 * Stopping is the scheduler's graceful stop: a run still going when the time is up is given
 * half a second to finish, then interrupted and recorded as such. Everything runs on Effect's
 * Clock, so a test runs the demo under TestClock in no time.
 */
import * as Console from "effect/Console"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import { type Run, SchedulerStore } from "../capabilities/SchedulerStore.ts"
import { job, register } from "./job.ts"
import { CurrentRun, makeScheduler } from "./scheduler.ts"

export interface SchedulerDemoOptions {
  /** How long the jobs fire [4.5 s]. */
  readonly duration: Duration.Duration
  /** The replica name in the history [demo]. */
  readonly instance: string
}

export const defaultSchedulerDemoOptions: SchedulerDemoOptions = { duration: Duration.millis(4500), instance: "demo" }

export interface SchedulerDemoResult {
  /** Every run of the demo's jobs, oldest first. */
  readonly runs: ReadonlyArray<Run>
  /** Runs by job and outcome. */
  readonly outcomes: Readonly<Record<string, Readonly<Record<string, number>>>>
  /** What did not happen as described above; empty when all did. */
  readonly problems: ReadonlyArray<string>
}

const demoJobs = [
  job({ name: "tick", schedule: "@every 1s", run: Effect.void }),
  job({
    name: "flaky",
    schedule: "@every 2s",
    retry: { base: "300 millis", max: "1 second", jitter: 0, maxAttempts: 3 },
    run: Effect.flatMap(CurrentRun, (run) =>
      run?.attempt === 1 ? Effect.fail(new Error("the first attempt always fails")) : Effect.void)
  }),
  job({ name: "slow", schedule: "@every 1s", timeout: "5 seconds", overlap: "skip", run: Effect.sleep("1500 millis") })
]

const time = (date: Date | null) => (date === null ? "" : date.toISOString().slice(11, 23))

/** The history as rows for `console.table`. */
export const historyTable = (runs: ReadonlyArray<Run>) =>
  runs.map((run) => ({
    job: run.job,
    scheduled: time(run.scheduledAt),
    trigger: run.trigger,
    attempt: run.attempt,
    outcome: run.outcome,
    took: run.endedAt === null || run.outcome === "skipped" ? "" : `${run.endedAt.getTime() - run.startedAt.getTime()} ms`,
    error: run.error ?? ""
  }))

const check = (runs: ReadonlyArray<Run>): ReadonlyArray<string> => {
  const problems: Array<string> = []
  const of = (name: string) => runs.filter((r) => r.job === name)
  const ticks = of("tick").filter((r) => r.trigger === "schedule" && r.outcome === "succeeded")
  if (ticks.length < 3) problems.push(`tick succeeded ${ticks.length} times on schedule, expected at least 3`)
  if (!of("tick").some((r) => r.trigger === "manual" && r.outcome === "succeeded")) problems.push("the manual run of tick is missing")
  const retried = of("flaky").filter((r) => r.attempt === 1 && r.outcome === "failed").some((first) =>
    of("flaky").some((r) => r.attempt === 2 && r.outcome === "succeeded" && r.scheduledAt.getTime() === first.scheduledAt.getTime()))
  if (!retried) problems.push("no flaky occurrence failed its first attempt and succeeded on the retry")
  if (!of("slow").some((r) => r.outcome === "skipped" && r.error?.startsWith("overlap") === true)) {
    problems.push("no slow occurrence was skipped for overlapping the previous run")
  }
  if (runs.some((r) => r.outcome === "running")) problems.push("a run is still recorded as running after the stop")
  return problems
}

/**
 * Runs the demo jobs for `options.duration` on the `SchedulerStore` it is given, stops the
 * scheduler, prints the history as a table and a summary, and answers both.
 */
export const schedulerDemo = (
  options: Partial<SchedulerDemoOptions> = {}
): Effect.Effect<SchedulerDemoResult, never, SchedulerStore> =>
  Effect.gen(function*() {
    const { duration, instance } = { ...defaultSchedulerDemoOptions, ...options }
    const store = yield* SchedulerStore
    const jobs = yield* register(demoJobs, { timeZone: "UTC", timeout: Duration.seconds(30) }).pipe(Effect.orDie)
    const scheduler = yield* makeScheduler(jobs, {
      instance,
      maxConcurrent: 10,
      shutdownTimeout: "500 millis",
      retention: "1 day",
      sweepInterval: "1 second"
    })
    const fiber = yield* Effect.forkChild(scheduler.run, { startImmediately: true })
    yield* Effect.sleep(Duration.divideUnsafe(duration, 2))
    yield* scheduler.trigger("tick").pipe(Effect.orDie)
    yield* Effect.sleep(Duration.divideUnsafe(duration, 2))
    yield* Fiber.interrupt(fiber)

    const runs = (yield* Effect.forEach(demoJobs, (j) => store.recentRuns(j.name, 1000)).pipe(Effect.orDie))
      .flat()
      .sort((a, b) => a.scheduledAt.getTime() - b.scheduledAt.getTime() || a.job.localeCompare(b.job) || a.attempt - b.attempt)
    const outcomes: Record<string, Record<string, number>> = {}
    for (const run of runs) {
      const byOutcome = outcomes[run.job] ??= {}
      byOutcome[run.outcome] = (byOutcome[run.outcome] ?? 0) + 1
    }
    const problems = check(runs)

    yield* Console.log(`\nScheduler: @every jobs for ${Duration.format(duration)} on the in-memory store, then its run history`)
    yield* Console.table(historyTable(runs))
    for (const [name, byOutcome] of Object.entries(outcomes)) {
      yield* Console.log(`${name}: ${Object.entries(byOutcome).map(([outcome, n]) => `${n} ${outcome}`).join(", ")}`)
    }
    for (const problem of problems) yield* Console.log(`PROBLEM: ${problem}`)
    yield* Console.log(problems.length === 0
      ? "every tick ran, the flaky job's failed first attempts were retried, overlapping slow runs were skipped"
      : "THE SCHEDULER'S HISTORY DIFFERS from what the demo expects")
    return { runs, outcomes, problems }
  })
