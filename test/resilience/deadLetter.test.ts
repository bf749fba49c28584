import { describe, expect, test } from "bun:test"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import * as MemoryBrokerLayer from "../../layers/memory/broker.ts"
import { MemoryBroker } from "../../layers/memory/broker.ts"
import type { Received } from "../../src/capabilities/Delivery.ts"
import { bodyText, encodeBody, Headers } from "../../src/capabilities/Message.ts"
import { Publisher, PublisherError } from "../../src/capabilities/Publisher.ts"
import { Subscriber } from "../../src/capabilities/Subscriber.ts"
import * as Outcome from "../../src/messaging/Outcome.ts"
import { deadLetterMessage, deadLetterTo } from "../../src/resilience/deadLetter.ts"

const run = <A, E>(effect: Effect.Effect<A, E, Publisher | Subscriber | MemoryBroker | Scope.Scope>) =>
  Effect.runPromise(Effect.scoped(effect).pipe(Effect.provide(MemoryBrokerLayer.layer)))

const dead = { topic: "orders.dead", group: "orders.dead" }

const receivedAt = (attempt: number): Received => ({
  message: { id: "m1", key: "order-7", headers: { "event-type": "OrderCreated" }, body: encodeBody(`{"id":7}`) },
  topic: "orders",
  attempt
})

/** Subscribes to the dead-letter topic before anything is published, and reads what arrived. */
const deadLetters = Effect.gen(function*() {
  const consumer = yield* Subscriber.use((s) => s.subscribe(dead))
  const broker = yield* MemoryBroker
  return {
    take: consumer.take,
    // Queued or handed to this consumer: whatever reached the topic and was not taken yet.
    arrived: Effect.andThen(Effect.yieldNow, Effect.zipWith(broker.depth(dead.group), broker.inFlight(dead.group), (a, b) => a + b))
  }
})

describe("deadLetterTo middleware", () => {
  test("a dead-lettered message is published to the topic with its reason and source, then acked", () =>
    run(Effect.gen(function*() {
      const dlq = yield* deadLetters
      const handler = deadLetterTo(dead.topic)(() => Effect.succeed(Outcome.deadLetter("unknown sku")))
      expect(yield* handler(receivedAt(1))).toEqual(Outcome.ack)
      const delivery = yield* dlq.take
      expect(delivery.message.id).toBe("m1")
      expect(delivery.message.key).toBe("order-7")
      expect(bodyText(delivery.message)).toBe(`{"id":7}`)
      expect(delivery.message.headers["event-type"]).toBe("OrderCreated")
      expect(delivery.message.headers[Headers.deadLetterReason]).toBe("unknown sku")
      expect(delivery.message.headers[Headers.deadLetterSource]).toBe("orders")
      expect(delivery.message.headers).toMatchObject(deadLetterMessage(receivedAt(1).message, "unknown sku", "orders").headers)
    })))

  test("acks, retries and failures pass through untouched when no maxAttempts is given", () =>
    run(Effect.gen(function*() {
      const dlq = yield* deadLetters
      const wrap = deadLetterTo(dead.topic)
      expect(yield* wrap(() => Effect.void)(receivedAt(9))).toBeUndefined()
      expect(yield* wrap(() => Effect.succeed(Outcome.retry("busy")))(receivedAt(9))).toEqual(Outcome.retry("busy"))
      expect(yield* Effect.flip(wrap(() => Effect.fail("down"))(receivedAt(9)))).toBe("down")
      expect(yield* dlq.arrived).toBe(0)
    })))

  test("with maxAttempts, a failure or retry on the last attempt is dead-lettered here, an earlier one is not", () =>
    run(Effect.gen(function*() {
      const dlq = yield* deadLetters
      const wrap = deadLetterTo(dead.topic, { maxAttempts: 3 })
      const failing = wrap(() => Effect.fail(new Error("db down")))
      expect(yield* Effect.flip(failing(receivedAt(2)))).toBeInstanceOf(Error)
      expect(yield* dlq.arrived).toBe(0)
      expect(yield* failing(receivedAt(3))).toEqual(Outcome.ack)
      expect(yield* wrap(() => Effect.succeed(Outcome.retry("busy")))(receivedAt(3))).toEqual(Outcome.ack)
      const first = yield* dlq.take
      const second = yield* dlq.take
      expect(first.message.headers[Headers.deadLetterReason]).toBe("db down (after 3 attempts)")
      expect(second.message.headers[Headers.deadLetterReason]).toBe("busy (after 3 attempts)")
      // Interruption is a shutdown, not a verdict on the message.
      const interrupted = yield* Effect.exit(wrap(() => Effect.interrupt)(receivedAt(3)))
      expect(Exit.hasInterrupts(interrupted)).toBe(true)
    })))

  test("if the dead-letter publish fails, the message is retried, never acked", () =>
    Effect.runPromise(Effect.gen(function*() {
      const handler = deadLetterTo(dead.topic)(() => Effect.succeed(Outcome.deadLetter("unknown sku")))
      const outcome = yield* handler(receivedAt(1))
      expect(outcome?._tag).toBe("Retry")
      expect(outcome?._tag === "Retry" && outcome.reason).toContain(`dead-lettering to "orders.dead" failed`)
      expect(outcome?._tag === "Retry" && outcome.reason).toContain("broker unreachable")
    }).pipe(Effect.provide(Layer.succeed(
      Publisher,
      Publisher.make("down", (topic) => Effect.fail(new PublisherError({ operation: "publish", topic, cause: new Error("broker unreachable") })))
    )))))
})
