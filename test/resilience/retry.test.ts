import { describe, expect, test } from "bun:test"
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Logger from "effect/Logger"
import { TestClock } from "effect/testing"
import * as MemoryBrokerLayer from "../../layers/memory/broker.ts"
import { MemoryBroker } from "../../layers/memory/broker.ts"
import type { Received } from "../../src/capabilities/Delivery.ts"
import { encodeBody } from "../../src/capabilities/Message.ts"
import { Publisher } from "../../src/capabilities/Publisher.ts"
import { deadLetterTopic, Subscriber } from "../../src/capabilities/Subscriber.ts"
import { consume } from "../../src/messaging/consume.ts"
import * as Outcome from "../../src/messaging/Outcome.ts"
import { backoff, type BackoffPolicy } from "../../src/resilience/backoff.ts"
import { retry, retryLater } from "../../src/resilience/retry.ts"

const runTest = <A, E>(effect: Effect.Effect<A, E, Publisher | Subscriber | MemoryBroker>) =>
  Effect.runPromise(effect.pipe(
    Effect.provide(MemoryBrokerLayer.layer),
    Effect.provide(TestClock.layer()),
    Effect.provide(Logger.layer([]))
  ))

const policy: BackoffPolicy = { base: "1 second", factor: 2, max: "30 seconds", jitter: 0 }

const receivedAt = (attempt: number): Received => ({
  message: { id: "m1", key: "k", headers: {}, body: encodeBody("x") },
  topic: "orders",
  attempt
})

/** A handler failing with "down <n>" on its first `failures` calls, recording when each call started. */
const flaky = (failures: number) => {
  const calls: Array<number> = []
  const handler = (_: Received) =>
    Effect.gen(function*() {
      calls.push(yield* Clock.currentTimeMillis)
      if (calls.length <= failures) return yield* Effect.fail(`down ${calls.length}`)
    })
  return { calls, handler }
}

describe("retry middleware (in process)", () => {
  test("success after 2 failures acks, the tries spaced by the schedule", () =>
    runTest(Effect.gen(function*() {
      const { calls, handler } = flaky(2)
      const fiber = yield* Effect.forkChild(retry(backoff(policy))(handler)(receivedAt(1)))
      yield* TestClock.adjust("1 minute")
      const outcome = yield* Fiber.join(fiber)
      expect(outcome ?? Outcome.ack).toEqual(Outcome.ack)
      expect(calls).toEqual([0, 1000, 3000])
    })))

  test("when the schedule ends, the last failure goes through to the runner", () =>
    runTest(Effect.gen(function*() {
      const { calls, handler } = flaky(10)
      const fiber = yield* Effect.forkChild(Effect.flip(retry(backoff({ ...policy, maxAttempts: 3 }))(handler)(receivedAt(1))))
      yield* TestClock.adjust("1 minute")
      expect(yield* Fiber.join(fiber)).toBe("down 3")
      expect(calls).toEqual([0, 1000, 3000])
    })))

  test("a defect is not retried in process", () =>
    runTest(Effect.gen(function*() {
      let calls = 0
      const dying = retry(backoff(policy))(() => Effect.sync(() => calls++).pipe(Effect.andThen(Effect.die(new Error("bug")))))
      const fiber = yield* Effect.forkChild(Effect.exit(dying(receivedAt(1))))
      yield* TestClock.adjust("1 minute")
      const exit = yield* Fiber.join(fiber)
      expect(Exit.isFailure(exit)).toBe(true)
      expect(calls).toBe(1)
    })))
})

describe("retryLater middleware (across deliveries)", () => {
  test("a failure becomes a retry after the policy's wait for this attempt; the last allowed attempt dead-letters", () =>
    runTest(Effect.gen(function*() {
      const failing = retryLater({ ...policy, maxAttempts: 4 })(() => Effect.fail(new Error("kafka down")))
      const outcomes = yield* Effect.forEach([1, 2, 3, 4], (n) => failing(receivedAt(n)))
      expect(outcomes.slice(0, 3)).toEqual([
        Outcome.retry("kafka down", { after: "1 second" }),
        Outcome.retry("kafka down", { after: "2 seconds" }),
        Outcome.retry("kafka down", { after: "4 seconds" })
      ])
      expect(outcomes[3]).toEqual(Outcome.deadLetter("kafka down (after 4 attempts)"))
    })))

  test("a handler's own retry gets the wait unless it chose one; acks, dead letters and defects are handled", () =>
    runTest(Effect.gen(function*() {
      const withPolicy = retryLater(policy)
      const own = yield* withPolicy(() => Effect.succeed(Outcome.retry("busy")))(receivedAt(3))
      const chosen = yield* withPolicy(() => Effect.succeed(Outcome.retry("busy", { after: "42 millis" })))(receivedAt(3))
      const acked = yield* withPolicy(() => Effect.void)(receivedAt(3))
      const rejected = yield* withPolicy(() => Effect.succeed(Outcome.deadLetter("malformed")))(receivedAt(3))
      const died = yield* withPolicy(() => Effect.die(new Error("kaboom")))(receivedAt(2))
      expect(own).toEqual(Outcome.retry("busy", { after: "4 seconds" }))
      expect(chosen).toEqual(Outcome.retry("busy", { after: "42 millis" }))
      expect(acked).toBeUndefined()
      expect(rejected).toEqual(Outcome.deadLetter("malformed"))
      expect(died?._tag).toBe("Retry")
      expect(died?._tag === "Retry" && died.reason).toContain("kaboom")
      expect(died?._tag === "Retry" && died.after !== undefined && Duration.toMillis(died.after)).toBe(2000)
    })))

  test("an interruption goes through, not turned into a retry", () =>
    runTest(Effect.gen(function*() {
      const exit = yield* Effect.exit(retryLater(policy)(() => Effect.interrupt)(receivedAt(1)))
      expect(Exit.hasInterrupts(exit)).toBe(true)
    })))

  test("through the runner: deliveries come back 1 s, 2 s, 4 s apart, and success on the 4th acks", () =>
    runTest(Effect.gen(function*() {
      const sub = { topic: "retry-later", group: "retry-later" }
      yield* Subscriber.use((s) => s.declare(sub))
      yield* Publisher.use((p) => p.publish(sub.topic, [{ id: "m", key: "k", body: "x" }]))
      const tries: Array<string> = []
      const done = yield* Deferred.make<void>()
      const handler = retryLater(policy)((received) =>
        Effect.gen(function*() {
          tries.push(`${received.attempt}@${yield* Clock.currentTimeMillis}`)
          if (received.attempt < 4) return yield* Effect.fail(new Error("downstream down"))
          yield* Deferred.succeed(done, undefined)
        }))
      const runner = yield* Effect.forkChild(consume(sub, handler, { maxAttempts: 5 }))
      yield* TestClock.adjust("6999 millis")
      expect(tries).toEqual(["1@0", "2@1000", "3@3000"])
      yield* TestClock.adjust("1 millis")
      yield* Deferred.await(done)
      yield* Fiber.interrupt(runner)
      expect(tries).toEqual(["1@0", "2@1000", "3@3000", "4@7000"])
      const broker = yield* MemoryBroker
      expect(yield* broker.depth(sub.group)).toBe(0)
      expect(yield* broker.inFlight(sub.group)).toBe(0)
      expect(yield* broker.depth(deadLetterTopic(sub.group))).toBe(0)
    })))
})
