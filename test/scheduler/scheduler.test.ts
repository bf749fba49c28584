/**
 * The scheduler on the in-memory store, driven by TestClock: every wait is virtual, so a week
 * of cron, a 30 s shutdown deadline or a backoff run in milliseconds, and every time asserted is
 * exact.
 */
import { describe, expect, test } from "bun:test"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Logger from "effect/Logger"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as References from "effect/References"
import * as Tracer from "effect/Tracer"
import { TestClock } from "effect/testing"
import * as MemoryStore from "../../layers/memory/schedulerStore.ts"
import {
  type Run,
  SchedulerStore,
  SchedulerStoreError,
  type SchedulerStoreShape
} from "../../src/capabilities/SchedulerStore.ts"
import { type JobDefinition, register } from "../../src/scheduler/job.ts"
import { CurrentRun, makeScheduler, type SchedulerOptions, UnknownJobError } from "../../src/scheduler/scheduler.ts"
import { recordingTracer } from "../support/tracing.ts"

const runTest = <A, E>(effect: Effect.Effect<A, E>) =>
  Effect.runPromise(effect.pipe(
    Effect.provide(TestClock.layer()),
    Effect.provide(Logger.layer([])),
    Effect.provideService(Metric.MetricRegistry, new Map())
  ))

const T0 = Date.parse("2026-01-01T00:00:00Z")
const iso = (millis: number) => new Date(millis).toISOString()
const now = Clock.currentTimeMillis

/** Pushes the virtual time at which it runs to `into`. */
const stamp = (into: Array<string>) => Effect.flatMap(now, (t) => Effect.sync(() => into.push(iso(t))))

const start = (
  definitions: ReadonlyArray<JobDefinition<any, never>>,
  options: Partial<SchedulerOptions> = {},
  shared?: SchedulerStoreShape
) =>
  Effect.gen(function*() {
    const store = shared ?? (yield* MemoryStore.make())
    const jobs = yield* register(definitions, { timeZone: "UTC", timeout: Duration.seconds(300) })
    const scheduler = yield* makeScheduler(jobs, {
      instance: "a",
      maxConcurrent: 10,
      shutdownTimeout: "30 seconds",
      retention: "7 days",
      // Each sweep is a step TestClock runs: an hour apart keeps a simulated week quick.
      sweepInterval: "1 hour",
      ...options
    }).pipe(Effect.provideService(SchedulerStore, store))
    const fiber = yield* Effect.forkChild(scheduler.run, { startImmediately: true })
    yield* Effect.yieldNow
    return { store, scheduler, fiber }
  })

/** Interrupts the scheduler and moves the clock past its shutdown deadline, so running jobs end. */
const stop = (fiber: Fiber.Fiber<unknown, unknown>) =>
  Effect.gen(function*() {
    const stopping = yield* Effect.forkChild(Fiber.interrupt(fiber), { startImmediately: true })
    yield* TestClock.adjust("1 minute")
    yield* Fiber.join(stopping)
  })

const history = (store: SchedulerStoreShape, job: string) => Effect.map(store.recentRuns(job, 1000), (runs) => [...runs].reverse())

const brief = (run: Run) => ({
  at: iso(run.scheduledAt.getTime()),
  attempt: run.attempt,
  outcome: run.outcome,
  ...(run.error === null ? {} : { error: run.error })
})

const counter = (name: string, attributes: Record<string, string>) =>
  Effect.map(Metric.snapshot, (all) => {
    const found = all.find((m) =>
      m.id === name && Object.entries(attributes).every(([k, v]) => m.attributes?.[k] === v)
    )
    return (found?.state as { count?: number } | undefined)?.count ?? 0
  })

describe("scheduler timing", () => {
  test("a simulated week across the spring DST change fires each job at exactly its times", () =>
    runTest(Effect.gen(function*() {
      yield* TestClock.setTime(Date.parse("2026-03-26T00:00:00Z"))
      const daily: Array<string> = []
      const hourly: Array<string> = []
      const weekly: Array<string> = []
      const every: Array<string> = []
      const { fiber } = yield* start([
        { name: "daily", schedule: "30 2 * * *", timeZone: "Europe/Berlin", run: stamp(daily) },
        { name: "hourly", schedule: "@hourly", timeZone: "Europe/Berlin", run: stamp(hourly) },
        { name: "weekly", schedule: "0 8 * * 1", timeZone: "Europe/Berlin", run: stamp(weekly) },
        { name: "every", schedule: "@every 90m", run: stamp(every) }
      ])
      yield* TestClock.adjust("7 days")
      expect(daily).toEqual([
        "2026-03-26T01:30:00.000Z",
        "2026-03-27T01:30:00.000Z",
        "2026-03-28T01:30:00.000Z",
        "2026-03-29T01:30:00.000Z", // 02:30 did not exist that night: 03:30 CEST, once
        "2026-03-30T00:30:00.000Z",
        "2026-03-31T00:30:00.000Z",
        "2026-04-01T00:30:00.000Z"
      ])
      expect(hourly.length).toBe(7 * 24) // every elapsed hour, 23 of them on the 29th
      expect(hourly.filter((t) => t.startsWith("2026-03-29")).length).toBe(24) // UTC day: all 24 hours still fire
      expect(new Set(hourly).size).toBe(hourly.length)
      expect(weekly).toEqual(["2026-03-30T06:00:00.000Z"]) // Monday 08:00 CEST
      expect(every.length).toBe(7 * 24 * 60 / 90)
      expect(every[0]).toBe("2026-03-26T01:30:00.000Z")
      yield* stop(fiber)
    })))

  test("the autumn DST change: the repeated 02:30 runs once, an hourly job runs 25 times that local day", () =>
    runTest(Effect.gen(function*() {
      yield* TestClock.setTime(Date.parse("2026-10-24T22:00:00Z")) // 00:00 CEST, Sunday 25th
      const daily: Array<string> = []
      const hourly: Array<string> = []
      const { fiber } = yield* start([
        { name: "daily", schedule: "30 2 * * *", timeZone: "Europe/Berlin", run: stamp(daily) },
        { name: "hourly", schedule: "0 * * * *", timeZone: "Europe/Berlin", run: stamp(hourly) }
      ])
      yield* TestClock.adjust("25 hours") // to 00:00 CET on the 26th
      expect(daily).toEqual(["2026-10-25T00:30:00.000Z"])
      expect(hourly.length).toBe(25)
      expect(hourly).toContain("2026-10-25T00:00:00.000Z") // 02:00 CEST
      expect(hourly).toContain("2026-10-25T01:00:00.000Z") // 02:00 CET, the repeated hour
      yield* stop(fiber)
    })))

  test("history records each occurrence with its scheduled time, and lateness is measured per run", () =>
    runTest(Effect.gen(function*() {
      yield* TestClock.setTime(T0)
      const { store, fiber } = yield* start([{ name: "tick", schedule: "@every 10s", run: Effect.void }])
      yield* TestClock.adjust("30 seconds")
      const runs = yield* history(store, "tick")
      expect(runs.map(brief)).toEqual([
        { at: "2026-01-01T00:00:10.000Z", attempt: 1, outcome: "succeeded" },
        { at: "2026-01-01T00:00:20.000Z", attempt: 1, outcome: "succeeded" },
        { at: "2026-01-01T00:00:30.000Z", attempt: 1, outcome: "succeeded" }
      ])
      expect(runs.every((r) => r.trigger === "schedule" && r.instance === "a")).toBe(true)
      expect(runs.map((r) => r.startedAt.getTime() - r.scheduledAt.getTime())).toEqual([0, 0, 0])
      const snapshot = yield* Metric.snapshot
      const lateness = snapshot.find((m) => m.id === "scheduler_job_lateness_seconds" && m.attributes?.["job"] === "tick")
      expect((lateness?.state as { count: number; max: number }).count).toBe(3)
      expect((lateness?.state as { count: number; max: number }).max).toBe(0)
      expect(yield* counter("scheduler_job_runs", { job: "tick", outcome: "succeeded" })).toBe(3)
      yield* stop(fiber)
    })))
  test("a run is a span under a tracer that records (a configured exporter), with the job's effect inside it", () =>
    runTest(Effect.gen(function*() {
      yield* TestClock.setTime(T0)
      const spans: Array<Tracer.Span> = []
      const recording = recordingTracer((span) => spans.push(span))
      const inside: Array<string | undefined> = []
      const job = Effect.flatMap(Effect.currentSpan, (span) => Effect.sync(() => inside.push(span.spanId)))
      const { fiber } = yield* start([{ name: "tick", schedule: "@every 10s", run: job }]).pipe(Effect.provideService(Tracer.Tracer, recording))
      yield* TestClock.adjust("20 seconds")
      const runs = spans.filter((span) => span.name === "scheduler job tick")
      expect(runs.length).toBe(2)
      expect(Object.fromEntries(runs[0]!.attributes)).toEqual({ "job.name": "tick", "job.attempt": 1, "job.trigger": "schedule" })
      expect(runs.every((span) => span.status._tag === "Ended")).toBe(true)
      expect(inside).toEqual(runs.map((span) => span.spanId))
      yield* stop(fiber)
    })))
  test("an attempt has the jobs' requirements from where the scheduler was made, also when triggered from elsewhere, and its logs carry the run", () =>
    runTest(Effect.gen(function*() {
      yield* TestClock.setTime(T0)
      class Greeting extends Context.Service<Greeting, string>()("test/scheduler/Greeting") {}
      class Caller extends Context.Service<Caller, string>()("test/scheduler/Caller") {}
      const lines: Array<{ readonly message: string; readonly annotations: Record<string, unknown> }> = []
      const capture = Logger.make((options) => {
        lines.push({ message: String(options.message), annotations: { ...options.fiber.getRef(References.CurrentLogAnnotations) } })
      })
      const jobs = yield* register([{
        name: "greet",
        schedule: "@every 10s",
        run: Effect.gen(function*() {
          const caller = yield* Effect.serviceOption(Caller)
          yield* Effect.logInfo(`${yield* Greeting} from the job, started by ${Option.getOrElse(caller, () => "the timer")}`)
        })
      }], { timeZone: "UTC", timeout: Duration.seconds(300) })
      const scheduler = yield* makeScheduler(jobs, { instance: "a", maxConcurrent: 10, shutdownTimeout: "30 seconds", retention: "7 days", sweepInterval: "1 hour" }).pipe(
        Effect.provideService(SchedulerStore, yield* MemoryStore.make()),
        Effect.provideService(Greeting, "hello"),
        Effect.annotateLogs({ component: "scheduler" }),
        Effect.provide(Logger.layer([capture]))
      )
      const fiber = yield* Effect.forkChild(scheduler.run, { startImmediately: true })
      yield* TestClock.adjust("10 seconds")
      // From a fiber that has neither the service nor the annotation, and a service of its own.
      yield* scheduler.trigger("greet").pipe(Effect.provideService(Caller, "an ops request"))
      const fromJob = lines.filter((line) => line.message.startsWith("hello from the job"))
      expect(fromJob.map((line) => line.message)).toEqual([
        "hello from the job, started by the timer",
        "hello from the job, started by an ops request"
      ])
      expect(fromJob.map((line) => line.annotations)).toEqual([
        { component: "scheduler", job: "greet", scheduledAt: "2026-01-01T00:00:10.000Z", trigger: "schedule" },
        { component: "scheduler", job: "greet", scheduledAt: "2026-01-01T00:00:10.000Z", trigger: "manual" }
      ])
      const ends = lines.filter((line) => line.message === "job greet attempt 1 succeeded")
      expect(ends.map((line) => line.annotations["trigger"])).toEqual(["schedule", "manual"])
      expect(ends.every((line) => line.annotations["job"] === "greet" && line.annotations["scheduledAt"] === "2026-01-01T00:00:10.000Z")).toBe(true)
      yield* stop(fiber)
    })))
})

describe("scheduler policies", () => {
  test("overlap skip: an occurrence that finds the previous run going is recorded as skipped and counted", () =>
    runTest(Effect.gen(function*() {
      yield* TestClock.setTime(T0)
      const { store, fiber } = yield* start([{ name: "slow", schedule: "@every 10s", run: Effect.sleep("25 seconds") }])
      yield* TestClock.adjust("60 seconds")
      const runs = (yield* history(store, "slow")).map((r) => [iso(r.scheduledAt.getTime()).slice(17, 19), r.outcome])
      expect(runs).toEqual([["10", "succeeded"], ["20", "skipped"], ["30", "skipped"], ["40", "running"], ["50", "skipped"], [
        "00",
        "skipped"
      ]])
      expect((yield* history(store, "slow"))[1]!.error).toContain("overlap")
      expect(yield* counter("scheduler_job_skips", { job: "slow", reason: "overlap" })).toBe(4)
      yield* stop(fiber)
    })))

  test("overlap allow: every occurrence runs, beside the previous ones", () =>
    runTest(Effect.gen(function*() {
      yield* TestClock.setTime(T0)
      const { store, fiber } = yield* start([{ name: "slow", schedule: "@every 10s", overlap: "allow", run: Effect.sleep("25 seconds") }])
      yield* TestClock.adjust("60 seconds")
      expect((yield* history(store, "slow")).map((r) => r.outcome)).toEqual([
        "succeeded", "succeeded", "succeeded", "running", "running", "running"
      ])
      yield* stop(fiber)
    })))

  test("concurrency limit: an occurrence that finds the limit reached is skipped with the reason, recorded and counted", () =>
    runTest(Effect.gen(function*() {
      yield* TestClock.setTime(T0)
      const { store, fiber } = yield* start([
        { name: "a", schedule: "@every 10s", run: Effect.sleep("5 seconds") },
        { name: "b", schedule: "@every 10s", run: Effect.sleep("5 seconds") },
        { name: "c", schedule: "@every 10s", run: Effect.sleep("5 seconds") }
      ], { maxConcurrent: 2 })
      yield* TestClock.adjust("20 seconds")
      const all = [...(yield* history(store, "a")), ...(yield* history(store, "b")), ...(yield* history(store, "c"))]
      for (const second of [10, 20]) {
        const at = all.filter((r) => r.scheduledAt.getTime() === T0 + second * 1000)
        expect(at.length).toBe(3)
        expect(at.filter((r) => r.outcome === "skipped").length).toBe(1)
        expect(at.filter((r) => r.outcome === "succeeded").length + at.filter((r) => r.outcome === "running").length).toBe(2)
      }
      const skipped = all.filter((r) => r.outcome === "skipped")
      expect(skipped[0]!.error).toBe("concurrency limit reached: 2 jobs already running (WORKER_MAX_CONCURRENT_JOBS)")
      const skips = (yield* counter("scheduler_job_skips", { job: "a", reason: "concurrency_limit" })) +
        (yield* counter("scheduler_job_skips", { job: "b", reason: "concurrency_limit" })) +
        (yield* counter("scheduler_job_skips", { job: "c", reason: "concurrency_limit" }))
      expect(skips).toBe(2)
      // The two runs of second 20 hold their slots until they end.
      const running = Effect.map(Metric.snapshot, (all) => (all.find((m) => m.id === "scheduler_jobs_running")?.state as { value: number }).value)
      expect(yield* running).toBe(2)
      yield* TestClock.adjust("5 seconds")
      expect(yield* running).toBe(0)
      yield* stop(fiber)
    })))

  test("timeout: a run past its job's timeout is interrupted at it, recorded as timed out; the next occurrence still runs", () =>
    runTest(Effect.gen(function*() {
      yield* TestClock.setTime(T0)
      const released: Array<string> = []
      const { store, fiber } = yield* start([{
        name: "hang",
        schedule: "@every 1m",
        timeout: "5 seconds",
        run: Effect.never.pipe(Effect.onInterrupt(() => stamp(released)))
      }])
      yield* TestClock.adjust("1 minute")
      yield* TestClock.adjust("4999 millis")
      expect((yield* history(store, "hang")).map((r) => r.outcome)).toEqual(["running"])
      yield* TestClock.adjust("1 millis")
      const [run] = yield* history(store, "hang")
      expect(run).toMatchObject({ outcome: "timed_out", error: "timed out after 5s", endedAt: new Date(T0 + 65_000) })
      expect(released).toEqual(["2026-01-01T00:01:05.000Z"])
      yield* TestClock.adjust("60 seconds")
      expect((yield* history(store, "hang")).map((r) => r.outcome)).toEqual(["timed_out", "timed_out"])
      expect(yield* counter("scheduler_job_runs", { job: "hang", outcome: "timed_out" })).toBe(2)
      yield* stop(fiber)
    })))

  test("timeouts of their own: a job with a short timeout started after one with a long timeout is stopped at its own deadline, then the other at its", () =>
    runTest(Effect.gen(function*() {
      yield* TestClock.setTime(T0)
      const released: Array<string> = []
      const { store, scheduler, fiber } = yield* start([
        { name: "slow", schedule: "@every 1h", timeout: "50 seconds", run: Effect.never.pipe(Effect.onInterrupt(() => stamp(released))) },
        { name: "quick", schedule: "@every 24h", timeout: "5 seconds", run: Effect.never.pipe(Effect.onInterrupt(() => stamp(released))) }
      ])
      yield* TestClock.adjust("1 hour")
      yield* TestClock.adjust("1 second")
      expect((yield* scheduler.trigger("quick"))._tag).toBe("Started")
      yield* TestClock.adjust("9 seconds")
      expect(released).toEqual(["2026-01-01T01:00:06.000Z"])
      expect((yield* history(store, "quick")).map((r) => r.outcome)).toEqual(["timed_out"])
      expect((yield* history(store, "slow")).map((r) => r.outcome)).toEqual(["running"])
      yield* TestClock.adjust("40 seconds")
      expect(released).toEqual(["2026-01-01T01:00:06.000Z", "2026-01-01T01:00:50.000Z"])
      expect((yield* history(store, "slow")).map((r) => r.outcome)).toEqual(["timed_out"])
      yield* stop(fiber)
    })))

  test("a manual run's timeout is kept while the scheduler is not running", () =>
    runTest(Effect.gen(function*() {
      yield* TestClock.setTime(T0)
      const store = yield* MemoryStore.make()
      const jobs = yield* register([{ name: "hang", schedule: "@every 1h", timeout: "3 seconds", run: Effect.never }], { timeZone: "UTC", timeout: Duration.seconds(300) })
      const scheduler = yield* makeScheduler(jobs, { instance: "a", maxConcurrent: 10, shutdownTimeout: "30 seconds", retention: "7 days" }).pipe(
        Effect.provideService(SchedulerStore, store)
      )
      expect((yield* scheduler.trigger("hang"))._tag).toBe("Started")
      yield* TestClock.adjust("2999 millis")
      expect((yield* history(store, "hang")).map((r) => r.outcome)).toEqual(["running"])
      yield* TestClock.adjust("1 millis")
      expect((yield* history(store, "hang")).map((r) => r.outcome)).toEqual(["timed_out"])
    })))

  test("retry with backoff: failed attempts are retried at the policy's delays, each one a row of the history", () =>
    runTest(Effect.gen(function*() {
      yield* TestClock.setTime(T0)
      const attempts: Array<string> = []
      const seen: Array<string> = []
      const { store, fiber } = yield* start([{
        name: "flaky",
        schedule: "@every 1h",
        retry: { base: "10 seconds", factor: 2, max: "1 minute", jitter: 0, maxAttempts: 5 },
        run: Effect.gen(function*() {
          yield* stamp(attempts)
          const run = yield* CurrentRun
          seen.push(`${run?.attempt} of ${iso(run!.scheduledAt.getTime())}`)
          if (attempts.length < 3) return yield* Effect.fail(new Error(`database busy (${attempts.length})`))
        })
      }])
      yield* TestClock.adjust("1 hour")
      yield* TestClock.adjust("29 seconds")
      expect(attempts).toEqual(["2026-01-01T01:00:00.000Z", "2026-01-01T01:00:10.000Z"])
      yield* TestClock.adjust("1 second")
      expect(attempts).toEqual(["2026-01-01T01:00:00.000Z", "2026-01-01T01:00:10.000Z", "2026-01-01T01:00:30.000Z"])
      const runs = yield* history(store, "flaky")
      expect(runs.map(brief)).toEqual([
        { at: "2026-01-01T01:00:00.000Z", attempt: 1, outcome: "failed", error: "database busy (1)" },
        { at: "2026-01-01T01:00:00.000Z", attempt: 2, outcome: "failed", error: "database busy (2)" },
        { at: "2026-01-01T01:00:00.000Z", attempt: 3, outcome: "succeeded" }
      ])
      expect(runs[0]!.errorStack).toContain("database busy (1)")
      // the job sees its run: the attempt, and the occurrence it belongs to (not the retry's start)
      expect(seen).toEqual(["1 of 2026-01-01T01:00:00.000Z", "2 of 2026-01-01T01:00:00.000Z", "3 of 2026-01-01T01:00:00.000Z"])
      expect(runs.map((r) => r.retryAt)).toEqual([null, null, null]) // each retry was claimed
      expect(yield* counter("scheduler_job_runs", { job: "flaky", outcome: "failed" })).toBe(2)
      expect(yield* counter("scheduler_job_runs", { job: "flaky", outcome: "succeeded" })).toBe(1)
      yield* stop(fiber)
    })))

  test("retries end at the policy's last attempt", () =>
    runTest(Effect.gen(function*() {
      yield* TestClock.setTime(T0)
      const { store, fiber } = yield* start([{
        name: "broken",
        schedule: "@every 1h",
        retry: { base: "1 second", max: "1 second", jitter: 0, maxAttempts: 2 },
        run: Effect.fail("still broken")
      }])
      yield* TestClock.adjust("1 hour")
      yield* TestClock.adjust("10 minutes")
      expect((yield* history(store, "broken")).map((r) => [r.attempt, r.outcome, r.retryAt])).toEqual([
        [1, "failed", null],
        [2, "failed", null]
      ])
      yield* stop(fiber)
    })))

  test("a job that throws or dies is recorded with its cause and stack, and the scheduler goes on", () =>
    runTest(Effect.gen(function*() {
      yield* TestClock.setTime(T0)
      const healthy: Array<string> = []
      const { store, fiber } = yield* start([
        { name: "throws", schedule: "@every 10s", run: Effect.sync(() => { throw new Error("kaboom") }) },
        { name: "dies", schedule: "@every 10s", run: Effect.die(new TypeError("cannot read x of undefined")) },
        { name: "healthy", schedule: "@every 10s", run: stamp(healthy) }
      ])
      yield* TestClock.adjust("20 seconds")
      const thrown = yield* history(store, "throws")
      expect(thrown.map((r) => [r.outcome, r.error])).toEqual([["failed", "defect: kaboom"], ["failed", "defect: kaboom"]])
      expect(thrown[0]!.errorStack).toContain("kaboom")
      expect(thrown[0]!.errorStack).toContain("scheduler.test.ts") // the stack points at the job's code
      const died = yield* history(store, "dies")
      expect(died.map((r) => r.error)).toEqual(["defect: cannot read x of undefined", "defect: cannot read x of undefined"])
      expect(died[0]!.errorStack).toContain("TypeError")
      expect(healthy).toEqual(["2026-01-01T00:00:10.000Z", "2026-01-01T00:00:20.000Z"])
      expect(fiber.pollUnsafe()).toBeUndefined()
      yield* stop(fiber)
    })))

  test("missed runs: catch-up runs the latest missed occurrence once at start; skip records and counts them and waits for the next", () =>
    runTest(Effect.gen(function*() {
      const store = yield* MemoryStore.make()
      // The history ends on Jan 1st: the scheduler was down on the 2nd and 3rd.
      for (const job of ["nightly-catch-up", "nightly-skip"]) {
        const claimed = yield* store.claim(
          { job, scheduledAt: new Date(Date.parse("2026-01-01T02:00:00Z")), trigger: "schedule" },
          { instance: "old", now: new Date(Date.parse("2026-01-01T02:00:00Z")), until: new Date(Date.parse("2026-01-01T02:00:30Z")) },
          { overlap: "skip" }
        )
        if (claimed._tag === "Claimed") {
          yield* store.complete(claimed.run.id, "old", { outcome: "succeeded", now: new Date(Date.parse("2026-01-01T02:00:01Z")) })
        }
      }
      yield* TestClock.setTime(Date.parse("2026-01-03T10:00:00Z"))
      const caught: Array<string> = []
      const skipped: Array<string> = []
      const never: Array<string> = []
      const { fiber } = yield* start([
        { name: "nightly-catch-up", schedule: "0 2 * * *", missed: "catch-up", run: stamp(caught) },
        { name: "nightly-skip", schedule: "0 2 * * *", missed: "skip", run: stamp(skipped) },
        { name: "never-ran", schedule: "0 2 * * *", missed: "catch-up", run: stamp(never) }
      ], {}, store)
      yield* TestClock.adjust("1 second")
      expect(caught).toEqual(["2026-01-03T10:00:00.000Z"])
      expect(skipped).toEqual([])
      expect(never).toEqual([]) // no history: nothing was missed, it is a first start
      // skip: the latest missed occurrence is recorded as skipped, saying how many were missed
      // (Jan 2nd and 3rd, 02:00), and all of them are counted.
      expect((yield* history(store, "nightly-skip")).map(brief)).toEqual([
        { at: "2026-01-01T02:00:00.000Z", attempt: 1, outcome: "succeeded" },
        {
          at: "2026-01-03T02:00:00.000Z",
          attempt: 1,
          outcome: "skipped",
          error: "missed: 2 occurrences since 2026-01-01T02:00:00.000Z passed while no scheduler ran (missed-run policy skip)"
        }
      ])
      expect(yield* counter("scheduler_job_skips", { job: "nightly-skip", reason: "missed" })).toBe(2)
      expect(yield* counter("scheduler_job_skips", { job: "nightly-catch-up", reason: "missed" })).toBe(0)
      const latest = (yield* store.recentRuns("nightly-catch-up", 1))[0]!
      expect(iso(latest.scheduledAt.getTime())).toBe("2026-01-03T02:00:00.000Z")
      yield* TestClock.adjust("16 hours")
      expect(caught).toEqual(["2026-01-03T10:00:00.000Z", "2026-01-04T02:00:00.000Z"])
      expect(skipped).toEqual(["2026-01-04T02:00:00.000Z"])
      yield* stop(fiber)
    })))

  test("manual trigger runs now, recorded as manual; pause stops the occurrences, resume restarts them", () =>
    runTest(Effect.gen(function*() {
      yield* TestClock.setTime(T0)
      const ran: Array<string> = []
      const { store, scheduler, fiber } = yield* start([{ name: "report", schedule: "@every 10s", run: stamp(ran) }])
      yield* TestClock.adjust("5 seconds")
      const triggered = yield* scheduler.trigger("report")
      expect(triggered._tag).toBe("Started")
      yield* TestClock.adjust("0 millis")
      expect(ran).toEqual(["2026-01-01T00:00:05.000Z"])
      yield* scheduler.pause("report")
      yield* TestClock.adjust("30 seconds")
      expect(ran).toEqual(["2026-01-01T00:00:05.000Z"])
      expect(yield* counter("scheduler_job_skips", { job: "report", reason: "paused" })).toBe(3)
      const [status] = yield* scheduler.status()
      expect(status).toMatchObject({ name: "report", schedule: "@every 10s", timeZone: "UTC", paused: true })
      expect(status!.nextRun).toEqual(new Date(T0 + 40_000))
      expect(yield* store.paused).toEqual(new Set(["report"]))
      yield* scheduler.resume("report")
      yield* TestClock.adjust("10 seconds")
      expect(ran).toEqual(["2026-01-01T00:00:05.000Z", "2026-01-01T00:00:40.000Z"])
      const runs = yield* history(store, "report")
      expect(runs.map((r) => [r.trigger, iso(r.scheduledAt.getTime())])).toEqual([
        ["manual", "2026-01-01T00:00:05.000Z"],
        ["schedule", "2026-01-01T00:00:40.000Z"]
      ])
      const unknown = yield* Effect.flip(scheduler.trigger("nope"))
      expect(unknown).toBeInstanceOf(UnknownJobError)
      expect(unknown.message).toBe(`no job named "nope" is registered`)
      yield* stop(fiber)
    })))
})

describe("scheduler and a failing store", () => {
  test("claims failing (database down) skip the occurrence, counted as store_error, and the scheduler goes on", () =>
    runTest(Effect.gen(function*() {
      yield* TestClock.setTime(T0)
      const memory = yield* MemoryStore.make()
      let down = true
      const flaky: SchedulerStoreShape = {
        ...memory,
        claim: (occurrence, lease, options) =>
          down ? Effect.fail(new SchedulerStoreError({ operation: "claim", cause: new Error("connection refused") })) : memory.claim(occurrence, lease, options)
      }
      const ran: Array<string> = []
      const { fiber } = yield* start([{ name: "tick", schedule: "@every 10s", run: stamp(ran) }], {}, flaky)
      yield* TestClock.adjust("20 seconds")
      expect(ran).toEqual([])
      expect(yield* counter("scheduler_job_skips", { job: "tick", reason: "store_error" })).toBe(2)
      down = false
      yield* TestClock.adjust("10 seconds")
      expect(ran).toEqual(["2026-01-01T00:00:30.000Z"])
      yield* stop(fiber)
    })))

  test("a run whose lease was taken over elsewhere is stopped here and left for the new owner to record", () =>
    runTest(Effect.gen(function*() {
      yield* TestClock.setTime(T0)
      const memory = yield* MemoryStore.make()
      const lost: SchedulerStoreShape = { ...memory, renew: () => Effect.succeed(new Set<string>()) }
      const released: Array<string> = []
      const { store, fiber } = yield* start([{
        name: "long",
        schedule: "@every 1h",
        run: Effect.sleep("5 minutes").pipe(Effect.onInterrupt(() => stamp(released)))
      }], { lease: "30 seconds" }, lost)
      yield* TestClock.adjust("1 hour")
      yield* TestClock.adjust("10 seconds")
      expect(released).toEqual(["2026-01-01T01:00:10.000Z"]) // the first renewal, at a third of the lease, found it gone
      expect((yield* history(store, "long")).map((r) => r.outcome)).toEqual(["running"]) // not ours to complete
      expect(yield* counter("scheduler_job_runs", { job: "long", outcome: "interrupted" })).toBe(0)
      yield* stop(fiber)
    })))
})

describe("scheduler history retention", () => {
  test("the scheduler prunes runs that ended more than the retention ago", () =>
    runTest(Effect.gen(function*() {
      yield* TestClock.setTime(T0)
      const { store, fiber } = yield* start([{ name: "daily", schedule: "@daily", run: Effect.void }], {
        retention: "3 days",
        pruneInterval: "1 hour"
      })
      yield* TestClock.adjust("10 days")
      const kept = (yield* history(store, "daily")).map((r) => iso(r.scheduledAt.getTime()).slice(0, 10))
      // at Jan 11 00:00 the cut-off is Jan 8 00:00; the prune of 23:00 on the 10th left the 8th
      expect(kept).toEqual(["2026-01-08", "2026-01-09", "2026-01-10", "2026-01-11"])
      yield* stop(fiber)
    })))
})

describe("scheduler stop", () => {
  test("stopping waits for a running job that ends within the deadline, and records it succeeded", () =>
    runTest(Effect.gen(function*() {
      yield* TestClock.setTime(T0)
      const { store, fiber } = yield* start([{ name: "long", schedule: "@every 1m", run: Effect.sleep("10 seconds") }])
      yield* TestClock.adjust("62 seconds")
      const stopping = yield* Effect.forkChild(Fiber.interrupt(fiber), { startImmediately: true })
      yield* TestClock.adjust("7999 millis")
      expect(stopping.pollUnsafe()).toBeUndefined()
      yield* TestClock.adjust("1 millis")
      yield* Fiber.join(stopping)
      const [run] = yield* history(store, "long")
      expect(run).toMatchObject({ outcome: "succeeded", endedAt: new Date(T0 + 70_000) })
      // no occurrence started while stopping: 02:00 would have been the next
      yield* TestClock.adjust("5 minutes")
      expect((yield* history(store, "long")).length).toBe(1)
    })))

  test("a job still running at the deadline is interrupted, recorded interrupted and owed its retry", () =>
    runTest(Effect.gen(function*() {
      yield* TestClock.setTime(T0)
      const released: Array<string> = []
      const { store, fiber } = yield* start([{
        name: "endless",
        schedule: "@every 1m",
        retry: { base: "1 second", max: "1 second", jitter: 0, maxAttempts: 3 },
        run: Effect.sleep("100 seconds").pipe(Effect.onInterrupt(() => stamp(released)))
      }], { shutdownTimeout: "30 seconds" })
      yield* TestClock.adjust("62 seconds")
      const stopping = yield* Effect.forkChild(Fiber.interrupt(fiber), { startImmediately: true })
      yield* TestClock.adjust("30 seconds")
      yield* Fiber.join(stopping)
      expect(Exit.isFailure(yield* Fiber.await(fiber))).toBe(true)
      const [run] = yield* history(store, "endless")
      expect(run).toMatchObject({
        outcome: "interrupted",
        endedAt: new Date(T0 + 92_000),
        error: "interrupted: the scheduler stopped before the run ended",
        retryAt: new Date(T0 + 93_000)
      })
      expect(released).toEqual(["2026-01-01T00:01:32.000Z"])
      // nobody here takes the retry: the scheduler stopped (another replica's sweep would)
      yield* TestClock.adjust("1 minute")
      expect((yield* history(store, "endless")).length).toBe(1)
    })))
})

describe("scheduler replicas on one store", () => {
  test("two schedulers with the same jobs run each occurrence exactly once", () =>
    runTest(Effect.gen(function*() {
      yield* TestClock.setTime(T0)
      // All 100 runs kept, to read each occurrence back (the default keeps a job's latest 20).
      const store = yield* MemoryStore.make({ maxRunsPerJob: 100 })
      const ran: Array<string> = []
      const jobs = [{ name: "tick", schedule: "@every 1s", run: stamp(ran) }]
      const a = yield* start(jobs, { instance: "a" }, store)
      const b = yield* start(jobs, { instance: "b" }, store)
      yield* TestClock.adjust("100 seconds")
      expect(ran.length).toBe(100)
      expect(new Set(ran).size).toBe(100)
      const runs = yield* history(store, "tick")
      expect(runs.length).toBe(100)
      expect(runs.every((r) => r.outcome === "succeeded")).toBe(true)
      yield* stop(a.fiber)
      yield* stop(b.fiber)
    })))

  test("a run whose replica died is taken over after its lease: interrupted, then retried as attempt 2", () =>
    runTest(Effect.gen(function*() {
      yield* TestClock.setTime(T0)
      const store = yield* MemoryStore.make()
      // replica "dead" claimed the 00:00 occurrence and stopped renewing its 30 s lease
      const claimed = yield* store.claim(
        { job: "report", scheduledAt: new Date(T0), trigger: "schedule" },
        { instance: "dead", now: new Date(T0), until: new Date(T0 + 30_000) },
        { overlap: "skip" }
      )
      expect(claimed._tag).toBe("Claimed")
      const ran: Array<string> = []
      const { fiber } = yield* start([{
        name: "report",
        schedule: "@daily",
        retry: { base: "1 second", max: "1 minute", maxAttempts: 3 },
        run: stamp(ran)
      }], { instance: "b", sweepInterval: "5 seconds", lease: "30 seconds" }, store)
      yield* TestClock.adjust("30 seconds")
      expect(ran).toEqual([])
      yield* TestClock.adjust("5 seconds")
      expect(ran).toEqual(["2026-01-01T00:00:35.000Z"])
      const runs = yield* history(store, "report")
      expect(runs.map((r) => [r.attempt, r.instance, r.outcome])).toEqual([[1, "dead", "interrupted"], [2, "b", "succeeded"]])
      expect(runs[0]!.error).toContain("lease expired")
      yield* stop(fiber)
    })))

  test("a run keeps its lease while it runs longer than the lease", () =>
    runTest(Effect.gen(function*() {
      yield* TestClock.setTime(T0)
      const store = yield* MemoryStore.make()
      const jobs = [{ name: "long", schedule: "@every 1h", retry: { base: 1000, max: 1000, maxAttempts: 3 }, run: Effect.sleep("5 minutes") }]
      const a = yield* start(jobs, { instance: "a", lease: "30 seconds", sweepInterval: "5 seconds" }, store)
      const b = yield* start(jobs, { instance: "b", lease: "30 seconds", sweepInterval: "5 seconds" }, store)
      yield* TestClock.adjust("1 hour")
      yield* TestClock.adjust("6 minutes")
      const runs = yield* history(store, "long")
      expect(runs.map((r) => [r.attempt, r.outcome])).toEqual([[1, "succeeded"]])
      expect(Option.isNone(Option.fromNullishOr(runs[0]!.retryAt))).toBe(true)
      yield* stop(a.fiber)
      yield* stop(b.fiber)
    })))
})
