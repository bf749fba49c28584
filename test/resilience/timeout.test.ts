import { describe, expect, test } from "bun:test"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import { TestClock } from "effect/testing"
import type { Received } from "../../src/capabilities/Delivery.ts"
import { encodeBody } from "../../src/capabilities/Message.ts"
import * as Outcome from "../../src/messaging/Outcome.ts"
import { HandlerTimeoutError, timeout } from "../../src/resilience/timeout.ts"

const runTest = <A, E>(effect: Effect.Effect<A, E>) => Effect.runPromise(effect.pipe(Effect.provide(TestClock.layer())))

const received: Received = { message: { id: "m1", key: "k", headers: {}, body: encodeBody("x") }, topic: "orders", attempt: 1 }

describe("timeout middleware", () => {
  test("a handler that never ends is interrupted exactly at the duration, its finalizer run, with a typed error", () =>
    runTest(Effect.gen(function*() {
      const events: Array<string> = []
      const hung = timeout("5 seconds")(() =>
        Effect.never.pipe(Effect.onInterrupt(() =>
          Effect.flatMap(Clock.currentTimeMillis, (t) => Effect.sync(() => events.push(`released at ${t}`)))
        ))
      )
      const fiber = yield* Effect.forkChild(Effect.flip(hung(received)), { startImmediately: true })
      yield* TestClock.adjust("4999 millis")
      expect(fiber.pollUnsafe()).toBeUndefined()
      expect(events).toEqual([])
      yield* TestClock.adjust("1 millis")
      const error = yield* Fiber.join(fiber)
      expect(error).toBeInstanceOf(HandlerTimeoutError)
      expect(error._tag).toBe("HandlerTimeoutError")
      expect(Duration.toMillis(error.timeout)).toBe(5000)
      expect(error.message).toContain("m1")
      expect(events).toEqual(["released at 5000"])
    })))

  test("a handler that finishes in time keeps its outcome and its failure", () =>
    runTest(Effect.gen(function*() {
      const fast = timeout("5 seconds")(() => Effect.as(Effect.sleep("4 seconds"), Outcome.deadLetter("bad input")))
      const failing = timeout("5 seconds")(() => Effect.andThen(Effect.sleep("1 second"), Effect.fail("db down" as const)))
      const fiber = yield* Effect.forkChild(Effect.all([fast(received), Effect.flip(failing(received))]))
      yield* TestClock.adjust("1 minute")
      const [outcome, error] = yield* Fiber.join(fiber)
      expect(outcome).toEqual(Outcome.deadLetter("bad input"))
      expect(error).toBe("db down")
    })))

  test("the deadline is per call: each message gets the full duration", () =>
    runTest(Effect.gen(function*() {
      const handler = timeout("3 seconds")(() => Effect.as(Effect.sleep("2 seconds"), Outcome.ack))
      const fiber = yield* Effect.forkChild(Effect.forEach([1, 2, 3], () => handler(received)))
      yield* TestClock.adjust("6 seconds")
      expect(yield* Fiber.join(fiber)).toEqual([Outcome.ack, Outcome.ack, Outcome.ack])
    })))
})
