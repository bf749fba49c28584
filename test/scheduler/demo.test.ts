/**
 * The scheduler demo under TestClock on the memory store: its checks pass, and the history
 * holds what it prints — ticks each second, the flaky job's first attempt failed and its retry
 * succeeded 300 ms later, overlapping slow runs skipped, the manual tick — with nothing left
 * running after the stop.
 */
import { expect, test } from "bun:test"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Logger from "effect/Logger"
import * as Metric from "effect/Metric"
import { TestClock } from "effect/testing"
import * as MemoryStore from "../../layers/memory/schedulerStore.ts"
import { schedulerDemo } from "../../src/scheduler/demo.ts"

test("the demo's history: ticks, a failed first attempt retried, overlaps skipped, a manual run; no problems", async () => {
  const result = await Effect.runPromise(Effect.gen(function*() {
    yield* TestClock.setTime(Date.parse("2026-01-01T00:00:00Z"))
    const fiber = yield* Effect.forkChild(schedulerDemo({ duration: Duration.millis(4500) }), { startImmediately: true })
    yield* TestClock.adjust("10 seconds")
    return yield* Fiber.join(fiber)
  }).pipe(
    Effect.provide(MemoryStore.layer()),
    Effect.provide(TestClock.layer()),
    Effect.provide(Logger.layer([])),
    Effect.provideService(Metric.MetricRegistry, new Map())
  ))
  expect(result.problems).toEqual([])
  const at = (job: string) =>
    result.runs.filter((r) => r.job === job).map((r) => `${r.scheduledAt.toISOString().slice(17, 23)} ${r.trigger} #${r.attempt} ${r.outcome}`)
  expect(at("tick")).toEqual([
    "01.000 schedule #1 succeeded",
    "02.000 schedule #1 succeeded",
    "02.250 manual #1 succeeded",
    "03.000 schedule #1 succeeded",
    "04.000 schedule #1 succeeded"
  ])
  expect(at("flaky")).toEqual([
    "02.000 schedule #1 failed",
    "02.000 schedule #2 succeeded",
    "04.000 schedule #1 failed",
    "04.000 schedule #2 succeeded"
  ])
  // 1.5 s of work each second: every other occurrence finds the previous run still going.
  expect(at("slow")).toEqual([
    "01.000 schedule #1 succeeded",
    "02.000 schedule #1 skipped",
    "03.000 schedule #1 succeeded",
    "04.000 schedule #1 skipped"
  ])
  expect(result.runs.some((r) => r.outcome === "running")).toBe(false)
  const retry = result.runs.find((r) => r.job === "flaky" && r.attempt === 2)!
  expect(retry.startedAt.getTime() - retry.scheduledAt.getTime()).toBe(300)
  expect(result.outcomes.flaky).toEqual({ failed: 2, succeeded: 2 })
})
