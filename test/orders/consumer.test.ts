/**
 * The order-events handler in process on PGlite and the memory broker: each event applied once
 * through the inbox, malformed events dead-lettered with their reasons, a database that fails
 * for now retried.
 */
import { describe, expect, test } from "bun:test"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"
import * as MemoryBrokerLayer from "../../layers/memory/broker.ts"
import * as PgliteSql from "../../layers/pglite/sql.ts"
import { Headers, type OutgoingMessage } from "../../src/capabilities/Message.ts"
import { Publisher } from "../../src/capabilities/Publisher.ts"
import { SqlDatabase, SqlError, type SqlDatabaseShape } from "../../src/capabilities/SqlDatabase.ts"
import { deadLetterTopic, Subscriber } from "../../src/capabilities/Subscriber.ts"
import { consume } from "../../src/messaging/consume.ts"
import type { Outcome } from "../../src/messaging/Outcome.ts"
import { applyOrderEvents, customerOrders } from "../../src/orders/readModel.ts"
import * as ReadModel from "../../src/orders/readModelSql.ts"
import type { BackoffPolicy } from "../../src/resilience/backoff.ts"
import { migrate } from "../../src/sql/migrations.ts"

type Env = Publisher | Subscriber | SqlDatabase | Scope.Scope

const run = <A, E>(effect: Effect.Effect<A, E, Env>, db: Layer.Layer<SqlDatabase, unknown> = PgliteSql.layer()) =>
  Effect.runPromise(
    Effect.scoped(Effect.andThen(migrate(ReadModel.migrations, { direction: "up", table: ReadModel.migrationsTable }), effect)).pipe(
      Effect.provide(Layer.mergeAll(MemoryBrokerLayer.layer, db)),
      Effect.provide(Logger.layer([]))
    ) as Effect.Effect<A, never>
  )

let n = 0
const names = () => ({ topic: `events${++n}`, group: `readmodel${n}` })

/** An event as the relay publishes it; `headers` replace the relay's. */
const event = (id: string, customerId: string, total: number, headers?: Record<string, string>): OutgoingMessage => {
  const orderId = crypto.randomUUID()
  return {
    key: orderId,
    headers: headers ?? { "event-id": id, "event-type": "OrderCreated" },
    body: JSON.stringify({
      id,
      type: "OrderCreated",
      aggregateId: orderId,
      occurredAt: new Date().toISOString(),
      data: { id: orderId, customerId, items: [], total, createdAt: new Date().toISOString() }
    })
  }
}

/** Runs the consumer; `handled` yields one outcome per handler call, so a test awaits them. */
const startConsumer = (sub: { topic: string; group: string }, backoff: BackoffPolicy = { base: "1 millis", max: "5 millis" }) =>
  Effect.gen(function*() {
    const handled = yield* Queue.unbounded<Outcome>()
    const handler = applyOrderEvents(backoff)
    const fiber = yield* Effect.forkChild(consume(sub, (received) => Effect.tap(handler(received), (outcome) => Queue.offer(handled, outcome)), { concurrency: 1 }))
    const calls = (count: number) => Effect.forEach(Array.from({ length: count }), () => Queue.take(handled))
    return { fiber, calls }
  })

const publish = (topic: string, messages: ReadonlyArray<OutgoingMessage>) => Publisher.use((p) => p.publish(topic, messages))

const inboxSize = SqlDatabase.use((db) => db.query<{ n: number }>("select count(*)::int as n from inbox")).pipe(Effect.map((rows) => rows[0]!.n))

describe("order-events consumer on PGlite", () => {
  test("each event is applied once; the same event delivered twice changes the read model once", () =>
    run(Effect.gen(function*() {
      const sub = names()
      yield* Subscriber.use((s) => s.declare(sub))
      const first = event(crypto.randomUUID(), "c1", 10.5)
      yield* publish(sub.topic, [first, event(crypto.randomUUID(), "c1", 2.25), event(crypto.randomUUID(), "c2", 0.1)])
      // The relay's duplicate: the same event as a second record.
      yield* publish(sub.topic, [first])
      const consumer = yield* startConsumer(sub)
      const outcomes = yield* consumer.calls(4)
      yield* Fiber.interrupt(consumer.fiber)
      expect(outcomes.map((o) => o._tag)).toEqual(["Ack", "Ack", "Ack", "Ack"])
      expect(yield* customerOrders).toEqual([
        { customer_id: "c1", orders: 2, total_cents: "1275" },
        { customer_id: "c2", orders: 1, total_cents: "10" }
      ])
      expect(yield* inboxSize).toBe(3)
    })))

  test("a malformed value or a wrong event-id is dead-lettered with the reason; the rest are applied", () =>
    run(Effect.gen(function*() {
      const sub = names()
      yield* Subscriber.use((s) => s.declare(sub))
      const dlq = yield* Subscriber.use((s) => s.subscribe({ topic: deadLetterTopic(sub.group), group: deadLetterTopic(sub.group) }))
      const good = event(crypto.randomUUID(), "c1", 3)
      const id = crypto.randomUUID()
      const bad: Record<string, OutgoingMessage> = {
        utf8: { id: "utf8", key: "k", headers: { "event-id": id }, body: new Uint8Array([0x7b, 0xff, 0x7d]) },
        json: { id: "json", key: "k", headers: { "event-id": id }, body: "{not json" },
        schema: { ...event(id, "c1", -1), id: "schema" },
        mismatch: { ...event(id, "c1", 1, { "event-id": crypto.randomUUID() }), id: "mismatch" },
        missing: { ...event(id, "c1", 1, {}), id: "missing" }
      }
      yield* publish(sub.topic, [good, ...Object.values(bad), event(crypto.randomUUID(), "c1", 4)])
      const consumer = yield* startConsumer(sub)
      const outcomes = yield* consumer.calls(7)
      const dead = yield* Effect.forEach(Object.keys(bad), () => dlq.take)
      yield* Fiber.interrupt(consumer.fiber)
      expect(outcomes.filter((o) => o._tag === "DeadLetter")).toHaveLength(5)
      const reasons = Object.fromEntries(dead.map((d) => [d.message.id, d.message.headers[Headers.deadLetterReason]]))
      expect(reasons["utf8"]).toBe("the value is not valid UTF-8")
      expect(reasons["json"]).toStartWith("the value is not JSON")
      expect(reasons["schema"]).toStartWith("the value is not an OrderCreated event")
      expect(reasons["schema"]).toContain("total")
      expect(reasons["mismatch"]).toContain("does not match the value's id")
      expect(reasons["missing"]).toBe("the event-id header is missing")
      expect(yield* customerOrders).toEqual([{ customer_id: "c1", orders: 2, total_cents: "700" }])
      expect(yield* inboxSize).toBe(2)
    })))

  test("a value the database can never store (NUL in the customer id) is dead-lettered, not retried", () =>
    run(Effect.gen(function*() {
      const sub = names()
      yield* Subscriber.use((s) => s.declare(sub))
      const dlq = yield* Subscriber.use((s) => s.subscribe({ topic: deadLetterTopic(sub.group), group: deadLetterTopic(sub.group) }))
      yield* publish(sub.topic, [{ ...event(crypto.randomUUID(), "c\u0000x", 1), id: "nul" }, event(crypto.randomUUID(), "c1", 2)])
      const consumer = yield* startConsumer(sub)
      const outcomes = yield* consumer.calls(2)
      const dead = yield* dlq.take
      yield* Fiber.interrupt(consumer.fiber)
      expect(outcomes.map((o) => o._tag)).toEqual(["DeadLetter", "Ack"])
      expect(dead.message.id).toBe("nul")
      expect(dead.message.headers[Headers.deadLetterReason]).toContain("the read model refused")
      expect(yield* customerOrders).toEqual([{ customer_id: "c1", orders: 1, total_cents: "200" }])
      // The refused event's inbox row went with its transaction: nothing half-applied.
      expect(yield* inboxSize).toBe(1)
    })))

  test("a connection-like failure without SQLSTATE is retried, then the event is applied once", () => {
    // Armed after the migrations, which run in transactions of their own.
    const transactions = { armed: false, count: 0 }
    // The first transaction fails as a lost connection does: an SqlError without a code.
    const flaky = Layer.effect(SqlDatabase, Effect.gen(function*() {
      const db = yield* SqlDatabase
      const wrapped: SqlDatabaseShape = {
        ...db,
        transaction: (body) =>
          Effect.suspend(() =>
            transactions.armed && ++transactions.count === 1
              ? Effect.fail(new SqlError({ operation: "begin", cause: new Error("Connection terminated unexpectedly") }))
              : db.transaction(body)
          )
      }
      return wrapped
    })).pipe(Layer.provide(PgliteSql.layer()))
    return run(Effect.gen(function*() {
      const sub = names()
      yield* Subscriber.use((s) => s.declare(sub))
      yield* publish(sub.topic, [event(crypto.randomUUID(), "c9", 5)])
      transactions.armed = true
      const consumer = yield* startConsumer(sub)
      const outcomes = yield* consumer.calls(2)
      yield* Fiber.interrupt(consumer.fiber)
      expect(outcomes.map((o) => o._tag)).toEqual(["Retry", "Ack"])
      // The database's failure, not the event's: an outage must not use up its attempts.
      expect(outcomes[0]).toMatchObject({ countsAsAttempt: false })
      expect(transactions.count).toBe(2)
      expect(yield* customerOrders).toEqual([{ customer_id: "c9", orders: 1, total_cents: "500" }])
    }), flaky)
  })
})
