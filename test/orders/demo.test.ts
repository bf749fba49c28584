/**
 * The orders part of the demo in process, on PGlite and the memory broker, served on an
 * ephemeral port: what it reports when all is well, and that its check fails when the read
 * model misses an event (the wait has a deadline; it never hangs).
 */
import { describe, expect, test } from "bun:test"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as MemoryBroker from "../../layers/memory/broker.ts"
import * as Pglite from "../../layers/pglite/sql.ts"
import { serve } from "../../layers/platform/httpServer.ts"
import { Publisher, type PublisherShape } from "../../src/capabilities/Publisher.ts"
import {
  defaultOrdersDemoOptions,
  demoSubscription,
  expectedTotals,
  ordersDemo,
  type OrdersDemoOptions,
  type OrdersDemoResult,
  readModelDifferences,
  summaryLines
} from "../../src/orders/demo.ts"
import type { Order } from "../../src/orders/orders.ts"

/** Runs the demo; `broker` may change what publishing does. */
const run = (options: Partial<OrdersDemoOptions>, broker: (publisher: PublisherShape) => PublisherShape = (p) => p) =>
  Effect.runPromise(
    ordersDemo({ ...defaultOrdersDemoOptions, ...options }, (fetch) => serve(fetch, { port: 0, hostname: "127.0.0.1" })).pipe(
      Effect.updateService(Publisher, broker),
      Effect.provide(Layer.mergeAll(MemoryBroker.layer, Pglite.layer())),
      Effect.provide(Logger.layer([]))
    )
  )

describe("orders demo", () => {
  test("orders over HTTP reach the read model through the outbox and the broker; replays and bad requests create nothing", async () => {
    const result = await run({ orders: 60, customers: 4, replays: 10, badRequests: 8 })
    expect(result.problems).toEqual([])
    expect(result.created).toBe(60)
    expect(result.replayed).toBe(10)
    // The six kinds of bad request in turn: no items, not JSON, text/plain, bad fields, bad UTF-8, XML.
    expect({ ...result.refused }).toEqual({ 400: 6, 415: 2 })
    expect(result.outbox).toEqual({ pending: 0, published: 60, failed: 0 })
    expect(result.applied).toBe(60)
    expect(result.readModel.map((line) => line.customerId)).toEqual(["customer-01", "customer-02", "customer-03", "customer-04"])
    expect(result.readModel.reduce((sum, line) => sum + line.orders, 0)).toBe(60)
    expect([...result.readModel]).toEqual([...result.expected])
    expect(summaryLines(result).at(-1)).toBe("read model matches the orders the API created")
  }, 180_000)

  test("an event lost on the way to the consumer is reported after the deadline, and the summary says the read model differs", async () => {
    let dropped = 0
    // A broker that loses the first event while telling the relay it took it.
    const losing = (publisher: PublisherShape): PublisherShape => ({
      healthy: publisher.healthy,
      publish: (topic, messages) => {
        if (topic !== demoSubscription.topic || dropped > 0) return publisher.publish(topic, messages)
        dropped++
        return publisher.publish(topic, messages.slice(1))
      }
    })
    const started = performance.now()
    const result = await run({ orders: 10, customers: 2, replays: 0, badRequests: 0, timeout: Duration.seconds(2) }, losing)
    expect(dropped).toBe(1)
    expect(performance.now() - started).toBeLessThan(120_000)
    expect(result.outbox).toEqual({ pending: 0, published: 10, failed: 0 })
    expect(result.applied).toBe(9)
    expect(result.problems).toContain("the relay and the read model had not caught up after 2s")
    expect(result.problems).toContain("the consumer applied 9 events; the API created 10 orders")
    expect(result.problems.filter((p) => p.startsWith("read model of customer-"))).toHaveLength(1)
    const lines = summaryLines(result)
    expect(lines.at(-1)).toBe("READ MODEL DIFFERS from the orders the API created")
    expect(lines.filter((line) => line.startsWith("PROBLEM: "))).toHaveLength(result.problems.length)
  }, 180_000)
})

describe("orders demo check", () => {
  const order = (customerId: string, total: number): Order => ({ id: crypto.randomUUID(), customerId, items: [], total, createdAt: "" })

  test("what the API created, per customer, in cents: no floating-point drift", () => {
    const expected = expectedTotals([order("b", 0.1), order("a", 0.2), order("b", 0.2), order("b", 79.9)])
    expect(expected).toEqual([
      { customerId: "a", orders: 1, totalCents: 20n },
      { customerId: "b", orders: 3, totalCents: 8020n }
    ])
  })

  test("a missing customer, an extra one, a wrong count or a wrong total each make a difference; equal lists none", () => {
    const expected = [
      { customerId: "a", orders: 1, totalCents: 20n },
      { customerId: "b", orders: 3, totalCents: 8020n },
      { customerId: "c", orders: 2, totalCents: 100n }
    ]
    expect(readModelDifferences(expected, expected)).toEqual([])
    expect(readModelDifferences(expected, [
      { customerId: "a", orders: 1, totalCents: 21n },
      { customerId: "b", orders: 2, totalCents: 8020n },
      { customerId: "d", orders: 1, totalCents: 5n }
    ])).toEqual([
      "read model of a: 1 orders, 21 cents, the API created 1 orders, 20 cents",
      "read model of b: 2 orders, 8020 cents, the API created 3 orders, 8020 cents",
      "read model of c: nothing, the API created 2 orders, 100 cents",
      "read model of d: 1 orders, 5 cents, the API created nothing"
    ])
  })

  test("the summary names refused requests by status", () => {
    const result: OrdersDemoResult = {
      created: 3,
      replayed: 1,
      refused: { 415: 1, 400: 2 },
      outbox: { pending: 0, published: 3, failed: 0 },
      applied: 3,
      readModel: [],
      expected: [],
      problems: []
    }
    expect(summaryLines(result)).toEqual([
      "orders created: 3; replays answered without a new order: 1",
      "bad requests refused: 2 × 400, 1 × 415",
      "events published: 3 (pending 0, failed 0); applied to the read model: 3",
      "read model matches the orders the API created"
    ])
  })
})
