import { expect, test } from "bun:test"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as MemoryBroker from "../../layers/memory/broker.ts"
import { brokerContract } from "../contract/broker.ts"
import { declare, publish } from "../support/broker.ts"

// retryKeepsKeyOrder: like RabbitMQ, a retry goes to the tail of the group's queue.
brokerContract("memory", () => MemoryBroker.layer, { prefetch: true, countsAbandonedAttempts: true, retryKeepsKeyOrder: false, directQueues: true, countsConsumers: true, exclusiveGroups: true })

test("memory: the publisher-only and subscriber-only layers over one brokerLayer are one broker", () =>
  Effect.runPromise(Effect.gen(function*() {
    const sub = { topic: "orders", group: "billing" }
    yield* declare(sub)
    yield* publish(sub.topic, [{ key: "k", body: "a" }, { key: "k", body: "b" }])
    // Published on one end, waiting in the group the other end declared.
    expect(yield* MemoryBroker.MemoryBroker.use((broker) => broker.depth(sub.group))).toBe(2)
  }).pipe(Effect.provide(Layer.mergeAll(MemoryBroker.publisherLayer, MemoryBroker.subscriberLayer).pipe(
    Layer.provideMerge(MemoryBroker.brokerLayer)
  )))))
