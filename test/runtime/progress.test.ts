import { describe, expect, test } from "bun:test"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as References from "effect/References"
import { TestClock } from "effect/testing"
import { rate, reportProgress } from "../../src/runtime/progress.ts"

interface Line {
  readonly at: number
  readonly message: unknown
  readonly level: string
  readonly annotations: Record<string, unknown>
}

const capture = () => {
  const lines: Array<Line> = []
  const logger = Logger.make((options) => {
    lines.push({
      at: options.date.getTime(),
      message: Array.isArray(options.message) ? options.message[0] : options.message,
      level: options.logLevel,
      annotations: { ...options.fiber.getRef(References.CurrentLogAnnotations) }
    })
  })
  return { lines, layer: Logger.layer([logger]) }
}

const run = <A>(layer: Layer.Layer<never>, effect: Effect.Effect<A>) =>
  Effect.runPromise(effect.pipe(Effect.provide(Layer.mergeAll(TestClock.layer(), layer))))

describe("reportProgress", () => {
  test("logs every interval with the snapshot, only when it changed since the last line", async () => {
    const { lines, layer } = capture()
    let handled = 0
    await run(layer, Effect.gen(function*() {
      const fiber = yield* Effect.forkChild(reportProgress({
        interval: "10 seconds",
        message: "counting",
        snapshot: Effect.sync(() => ({ handled })),
        annotations: (s) => ({ handled: s.handled })
      }), { startImmediately: true })
      handled = 5
      yield* TestClock.adjust("9999 millis")
      expect(lines).toEqual([])
      yield* TestClock.adjust("1 milli")
      // Unchanged for two intervals: no line.
      yield* TestClock.adjust("20 seconds")
      handled = 8
      yield* TestClock.adjust("10 seconds")
      yield* Fiber.interrupt(fiber)
    }))
    expect(lines.map(({ at, message, level, annotations }) => ({ at, message, level, handled: annotations.handled }))).toEqual([
      { at: 10_000, message: "counting", level: "Info", handled: 5 },
      { at: 40_000, message: "counting", level: "Info", handled: 8 }
    ])
  })

  test("nothing done means no line at all; the equivalence decides what counts as a change", async () => {
    const { lines, layer } = capture()
    let state = { handled: 0, lastAt: 0 }
    await run(layer, Effect.gen(function*() {
      const fiber = yield* Effect.forkChild(reportProgress({
        interval: "1 second",
        message: "working",
        snapshot: Effect.sync(() => state),
        annotations: (s) => ({ handled: s.handled }),
        equivalence: (a, b) => a.handled === b.handled
      }), { startImmediately: true })
      yield* TestClock.adjust("5 seconds")
      state = { handled: 0, lastAt: 5_000 }
      yield* TestClock.adjust("5 seconds")
      yield* Fiber.interrupt(fiber)
    }))
    expect(lines).toEqual([])
  })
})

describe("rate", () => {
  test("messages over seconds, per second rounded; none is all zeros; a burst under 1 ms counts as 1 ms", () => {
    expect(rate(1000, 2_000, 6_000)).toEqual({ messages: 1000, seconds: 4, perSecond: 250 })
    expect(rate(10, 0, 3_000)).toEqual({ messages: 10, seconds: 3, perSecond: 3 })
    expect(rate(0, 0, 9_000)).toEqual({ messages: 0, seconds: 0, perSecond: 0 })
    expect(rate(7, 500, 500)).toEqual({ messages: 7, seconds: 0.001, perSecond: 7000 })
  })
})
