import { describe, expect, test } from "bun:test"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Logger from "effect/Logger"
import * as Metric from "effect/Metric"
import type * as Scope from "effect/Scope"
import { TestClock } from "effect/testing"
import * as MemoryBrokerLayer from "../../layers/memory/broker.ts"
import { MemoryBroker } from "../../layers/memory/broker.ts"
import type { Received } from "../../src/capabilities/Delivery.ts"
import { Headers } from "../../src/capabilities/Message.ts"
import { Publisher } from "../../src/capabilities/Publisher.ts"
import { deadLetterTopic, Subscriber } from "../../src/capabilities/Subscriber.ts"
import { consume } from "../../src/messaging/consume.ts"
import { stack } from "../../src/messaging/Handler.ts"
import type { BackoffPolicy } from "../../src/resilience/backoff.ts"
import { CircuitBreaker, circuitBreaker } from "../../src/resilience/circuitBreaker.ts"
import { retryLater } from "../../src/resilience/retry.ts"
import { timeout } from "../../src/resilience/timeout.ts"

const runTest = <A, E>(effect: Effect.Effect<A, E, Publisher | Subscriber | MemoryBroker | Scope.Scope>) =>
  Effect.runPromise(Effect.scoped(effect).pipe(
    Effect.provide(MemoryBrokerLayer.layer),
    Effect.provide(TestClock.layer()),
    Effect.provideService(Metric.MetricRegistry, new Map()),
    Effect.provide(Logger.layer([]))
  ))

const policy: BackoffPolicy = { base: "1 second", factor: 2, max: "30 seconds", jitter: 0 }

const handledCount = (group: string, outcome: string) =>
  Effect.map(Metric.snapshot, (all) => {
    const found = all.find((m) =>
      m.id === "messages_handled" && m.attributes?.["subscription"] === group && m.attributes?.["outcome"] === outcome
    )
    return found?.type === "Counter" ? found.state.count : 0
  })

const publishOne = (sub: { topic: string; group: string }) =>
  Effect.gen(function*() {
    yield* Subscriber.use((s) => s.declare(sub))
    yield* Publisher.use((p) => p.publish(sub.topic, [{ id: "order-1", key: "k", body: "{}" }]))
  })

describe("resilience middleware through the consume runner", () => {
  test("a hung downstream: timed out, retried with backoff, the breaker opens and holds the message, a probe acks it", () =>
    runTest(Effect.gen(function*() {
      const sub = { topic: "compose-hung", group: "compose-hung" }
      yield* publishOne(sub)
      const breaker = yield* CircuitBreaker.make({ name: "downstream", failureThreshold: 2, resetTimeout: "10 seconds", successThreshold: 1 })
      const calls: Array<string> = []
      // The downstream hangs until t = 12 s, then answers at once.
      const handler = (received: Received) =>
        Effect.gen(function*() {
          const now = yield* Clock.currentTimeMillis
          calls.push(`attempt ${received.attempt} at ${now}`)
          if (now < 12_000) {
            yield* Effect.never.pipe(Effect.onInterrupt(() =>
              Effect.flatMap(Clock.currentTimeMillis, (t) => Effect.sync(() => calls.push(`interrupted at ${t}`)))
            ))
          }
        })
      // Outermost first: the breaker sees what retryLater makes of a timeout (a retry, so a
      // failure of the downstream), and the timeout bounds only the call to the handler.
      const resilient = stack(handler, circuitBreaker(breaker), retryLater(policy), timeout("2 seconds"))
      const runner = yield* Effect.forkChild(consume(sub, resilient, { maxAttempts: 10, concurrency: 1 }))

      // t=0 hangs, timed out at 2 s, back 1 s later; t=3 hangs, timed out at 5 s: the second
      // failure in a row opens the breaker.
      yield* TestClock.adjust("6 seconds")
      expect(calls).toEqual(["attempt 1 at 0", "interrupted at 2000", "attempt 2 at 3000", "interrupted at 5000"])
      expect(yield* breaker.state).toBe("open")

      // Attempt 3 arrives at t=7 while open: refused without calling the handler and held, as
      // the same attempt, until the breaker half-opens (t=15); it is the probe, the downstream
      // is back, it acks.
      yield* TestClock.adjust("14 seconds")
      expect(calls.slice(4)).toEqual(["attempt 3 at 15000"])
      expect(yield* breaker.state).toBe("closed")
      yield* Fiber.interrupt(runner)

      expect(yield* handledCount(sub.group, "retry")).toBe(2)
      expect(yield* handledCount(sub.group, "ack")).toBe(1)
      expect(yield* handledCount(sub.group, "dead_letter")).toBe(0)
      const broker = yield* MemoryBroker
      expect(yield* broker.depth(sub.group)).toBe(0)
      expect(yield* broker.inFlight(sub.group)).toBe(0)
    })))

  test("a message that never succeeds is retried with backoff and dead-lettered by the runner after maxAttempts", () =>
    runTest(Effect.gen(function*() {
      const sub = { topic: "compose-poison", group: "compose-poison" }
      yield* publishOne(sub)
      const dlq = yield* Subscriber.use((s) => s.subscribe({ topic: deadLetterTopic(sub.group), group: deadLetterTopic(sub.group) }))
      const breaker = yield* CircuitBreaker.make({ name: "poison", failureThreshold: 100, resetTimeout: "10 seconds", successThreshold: 1 })
      const tries: Array<number> = []
      const handler = () =>
        Effect.flatMap(Clock.currentTimeMillis, (now) => {
          tries.push(now)
          return Effect.fail(new Error("constraint violated"))
        })
      const runner = yield* Effect.forkChild(
        consume(sub, stack(handler, timeout("2 seconds"), circuitBreaker(breaker), retryLater(policy)), { maxAttempts: 4 })
      )
      yield* TestClock.adjust("1 minute")
      const dead = yield* dlq.take
      yield* Fiber.interrupt(runner)
      // Waits of 1, 2 and 4 s between the four deliveries; the fourth is the last.
      expect(tries).toEqual([0, 1000, 3000, 7000])
      expect(dead.message.id).toBe("order-1")
      expect(dead.message.headers[Headers.deadLetterReason]).toBe("constraint violated (after 4 attempts)")
      expect(yield* handledCount(sub.group, "retry")).toBe(3)
      expect(yield* handledCount(sub.group, "dead_letter")).toBe(1)
    })))
})
