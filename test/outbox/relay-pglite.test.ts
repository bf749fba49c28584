/**
 * The relay in process on PGlite with a recording publisher, under TestClock: what it
 * publishes, the NOTIFY wake-up, per-aggregate order, retries and failure, the breaker.
 */
import { describe, expect, test } from "bun:test"
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import { TestClock } from "effect/testing"
import * as PgliteSql from "../../layers/pglite/sql.ts"
import { SqlDatabase } from "../../src/capabilities/SqlDatabase.ts"
import { makeRelay, refreshQueueGauge } from "../../src/outbox/relay.ts"
import { Publisher } from "../../src/capabilities/Publisher.ts"
import type { RelayConfig } from "../../src/outbox/config.ts"
import { createOrder } from "../../src/orders/orders.ts"
import { type Claims, config, countingClaims, events, insertEvent, migrated, type Recorder, recorder, recordingPublisher, until, valueOf } from "./support.ts"

// The relay compares next_attempt_at with its Clock: start the test clock an hour past the
// wall clock so rows written now (by the database's now()) are due.
const run = <A, E>(body: (r: Recorder, claims: Claims) => Effect.Effect<A, E, SqlDatabase>) => {
  const r = recorder()
  const claims: Claims = { count: 0 }
  const db = countingClaims(claims).pipe(Layer.provideMerge(PgliteSql.layer()))
  return Effect.runPromise(
    Effect.gen(function*() {
      yield* TestClock.setTime(Date.now() + 3_600_000)
      yield* migrated
      return yield* body(r, claims)
    }).pipe(
      Effect.provide(Layer.mergeAll(db, recordingPublisher(r), TestClock.layer())),
      Effect.provideService(Metric.MetricRegistry, new Map())
    ) as Effect.Effect<A, E>
  )
}

const startRelay = (overrides: Partial<RelayConfig>, r: Recorder) =>
  Effect.gen(function*() {
    const relay = yield* makeRelay(config(overrides))
    const fiber = yield* Effect.forkChild(relay.run.pipe(Effect.provide(recordingPublisher(r))))
    return { relay, fiber }
  })

const statuses = Effect.map(events, (rows) => rows.map((row) => row.status))
const allPublished = Effect.map(statuses, (s) => s.length > 0 && s.every((x) => x === "published"))

describe("outbox relay on PGlite", () => {
  test("an order's event is published with key, value and headers, and marked published; NOTIFY wakes the relay before the poll", () =>
    run((r, claims) =>
      Effect.gen(function*() {
        const { fiber } = yield* startRelay({ poolSize: 1, pollInterval: Duration.hours(1) }, r)
        // The worker made its first (empty) claim and now waits: only a NOTIFY can wake it.
        yield* until("the worker's first claim", Effect.sync(() => claims.count >= 1))
        const traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        const created = yield* createOrder({ customerId: "c1", items: [{ sku: "a", quantity: 2, unitPrice: 1.5 }] }).pipe(Effect.orDie)
        const order = JSON.parse(created.body) as { id: string }
        yield* until("the order's event published", allPublished)
        // Two events of one aggregate in one transaction: one NOTIFY. The second is claimable
        // only once the first is published, which nothing announces: the worker that published
        // the first must claim again before it sleeps.
        const db = yield* SqlDatabase
        const id = yield* db.transaction((tx) =>
          Effect.gen(function*() {
            const first = yield* insertEvent("agg-x", { n: 1 }, { traceparent }).pipe(Effect.provideService(SqlDatabase, { ...db, ...tx }))
            yield* insertEvent("agg-x", { n: 2 }).pipe(Effect.provideService(SqlDatabase, { ...db, ...tx }))
            return first
          }))
        yield* until("all published", allPublished)
        expect(r.accepted).toHaveLength(3)
        const fromOrder = r.accepted.find((m) => m.key !== "agg-x")
        const direct = r.accepted.find((m) => m.key === "agg-x")
        expect(fromOrder!.topic).toBe("txstream.events")
        expect(fromOrder!.key).toBe(order.id)
        const value = valueOf(fromOrder!)
        expect(value.aggregateId).toBe(order.id)
        expect((value.data as { total: number }).total).toBe(3)
        expect(fromOrder!.headers["event-id"]).toBe(value.id)
        expect(fromOrder!.headers["event-type"]).toBe("OrderCreated")
        expect(direct!.headers["event-id"]).toBe(id)
        expect(direct!.headers["traceparent"]).toBe(traceparent)
        expect(direct!.key).toBe("agg-x")
        const rows = yield* events
        expect(rows.map((row) => row.attempts)).toEqual([0, 0, 0])
        yield* Fiber.interrupt(fiber)
      })), 60_000)

  test("events of one aggregate reach the broker in seq order with 3 workers, many events over few aggregates", () =>
    run((r) =>
      Effect.gen(function*() {
        const aggregates = ["a", "b", "c", "d"]
        for (let i = 0; i < 40; i++) yield* insertEvent(aggregates[i % 4]!, { n: i })
        const { fiber } = yield* startRelay({ poolSize: 3, batchSize: 3 }, r)
        for (let i = 40; i < 80; i++) yield* insertEvent(aggregates[i % 4]!, { n: i })
        yield* until("all published", Effect.map(statuses, (s) => s.length === 80 && s.every((x) => x === "published")))
        expect(r.accepted).toHaveLength(80)
        for (const aggregate of aggregates) {
          const ns = r.accepted.filter((m) => m.key === aggregate).map((m) => (valueOf(m).data as { n: number }).n)
          expect(ns).toEqual([...ns].sort((x, y) => x - y))
          expect(ns).toHaveLength(20)
        }
        // one row per aggregate per claim: no publish call carries two of one aggregate
        for (const keys of r.batches) expect(new Set(keys).size).toBe(keys.length)
        expect(r.batches.some((keys) => keys.length > 1)).toBe(true)
        yield* Fiber.interrupt(fiber)
      })), 60_000)

  test("a failing event is retried with backoff, then failed with its last error; the others go on; later events of its aggregate wait until it is requeued", () =>
    run((r) =>
      Effect.gen(function*() {
        r.failing.add("bad")
        const firstBad = yield* insertEvent("bad", { n: 1 })
        yield* insertEvent("bad", { n: 2 })
        yield* insertEvent("good", { n: 1 })
        const { fiber } = yield* startRelay({ batchSize: 1, poolSize: 1, pollInterval: Duration.hours(1) }, r)
        const badRow = Effect.map(events, (rows) => rows.find((row) => row.id === firstBad)!)
        // attempt 1 fails: next attempt ≈ 1 s later (±20 % jitter)
        yield* until("first retry", Effect.map(badRow, (row) => row.attempts === 1))
        let now = yield* Clock.currentTimeMillis
        let row = yield* badRow
        expect(row.status).toBe("pending")
        expect(row.last_error).toContain("refused bad")
        const wait1 = row.next_attempt_at.getTime() - now
        expect(wait1).toBeGreaterThanOrEqual(800)
        expect(wait1).toBeLessThanOrEqual(1200)
        yield* until("good published", Effect.map(events, (rows) => rows.some((x) => x.aggregate_id === "good" && x.status === "published")))
        // nothing due yet: no new attempt without time passing
        expect((yield* badRow).attempts).toBe(1)
        for (const [attempt, low, high] of [[2, 1600, 2400], [3, 3200, 4800]] as const) {
          yield* TestClock.adjust(Duration.millis(row.next_attempt_at.getTime() - now))
          yield* until(`retry ${attempt}`, Effect.map(badRow, (x) => x.attempts === attempt))
          now = yield* Clock.currentTimeMillis
          row = yield* badRow
          const wait = row.next_attempt_at.getTime() - now
          expect(wait).toBeGreaterThanOrEqual(low)
          expect(wait).toBeLessThanOrEqual(high)
        }
        yield* TestClock.adjust(Duration.millis(row.next_attempt_at.getTime() - now))
        yield* until("failed", Effect.map(badRow, (x) => x.status === "failed"))
        row = yield* badRow
        expect(row.attempts).toBe(4)
        expect(row.last_error).toContain("refused bad")
        // The later event of the failed aggregate is blocked, however much time passes.
        yield* TestClock.adjust("1 hour")
        const rows = yield* events
        expect(rows.filter((x) => x.aggregate_id === "bad").map((x) => [x.aggregate_seq, x.status, x.attempts])).toEqual([
          [1, "failed", 4],
          [2, "pending", 0]
        ])
        expect(r.accepted.filter((m) => m.key === "bad")).toHaveLength(0)
        // Requeued (as the admin will): both published, in order.
        r.failing.clear()
        const db = yield* SqlDatabase
        yield* db.query(`update outbox_events set status = 'pending', attempts = 0, next_attempt_at = now() where id = $1::uuid`, [firstBad])
        yield* until("bad published", allPublished)
        expect(r.accepted.filter((m) => m.key === "bad").map((m) => (valueOf(m).data as { n: number }).n)).toEqual([1, 2])
        yield* Fiber.interrupt(fiber)
      })), 60_000)

  test("a broker that cannot be reached costs no attempt: the event waits out the backoff, is never failed, and is published once the broker is back", () =>
    run((r) =>
      Effect.gen(function*() {
        r.unreachable = true
        const id = yield* insertEvent("agg-u", { n: 1 })
        // No breaker, one retry allowed: counted attempts would fail the event at the second try.
        const { fiber } = yield* startRelay({ batchSize: 1, poolSize: 1, maxRetries: 1, circuitBreaker: false }, r)
        const row = Effect.map(events, (rows) => rows.find((x) => x.id === id)!)
        let previous = (yield* row).next_attempt_at.getTime()
        for (let tries = 1; tries <= 6; tries++) {
          // Each try moves next_attempt_at on (the clock only moves forward).
          yield* until(`try ${tries} settled`, Effect.map(row, (x) => x.next_attempt_at.getTime() > previous))
          expect(r.calls).toBe(tries)
          const now = yield* Clock.currentTimeMillis
          const current = yield* row
          previous = current.next_attempt_at.getTime()
          expect([current.status, current.attempts]).toEqual(["pending", 0])
          expect(current.last_error).toContain("ECONNREFUSED")
          // Back before the last wait ends, so the try it wakes is the one that gets through.
          if (tries === 6) r.unreachable = false
          yield* TestClock.adjust(Duration.millis(Math.max(0, current.next_attempt_at.getTime() - now)))
        }
        yield* until("published", allPublished)
        expect(r.accepted.map((m) => m.id)).toEqual([id])
        yield* Fiber.interrupt(fiber)
      })), 60_000)

  test("the breaker opens after the threshold, nothing is claimed while open, and it half-opens and closes after the reset timeout", () =>
    run((r, claims) =>
      Effect.gen(function*() {
        r.down = true
        for (let i = 0; i < 12; i++) yield* insertEvent(`agg-${i}`, { n: i })
        const { relay, fiber } = yield* startRelay({ batchSize: 1, poolSize: 1, maxRetries: 100, exponentialRetry: false, retryDelay: Duration.hours(2) }, r)
        yield* until("the breaker opens", Effect.map(relay.breakerState, (s) => s === "open"))
        expect(r.calls).toBe(5)
        const failedAttempts = Effect.map(events, (rows) => rows.reduce((sum, row) => sum + row.attempts, 0))
        expect(yield* failedAttempts).toBe(5)
        const claimsWhenOpened = claims.count
        r.down = false
        // 29 s later, still open: the worker looked every second and claimed nothing.
        for (let s = 0; s < 29; s++) yield* TestClock.adjust("1 second")
        expect(claims.count).toBe(claimsWhenOpened)
        expect(yield* relay.breakerState).toBe("open")
        yield* TestClock.adjust("1 second")
        // Half-open: probes go through; three successes close it; the seven untried events are published.
        yield* until("7 published", Effect.map(events, (rows) => rows.filter((x) => x.status === "published").length === 7))
        expect(yield* relay.breakerState).toBe("closed")
        expect(yield* failedAttempts).toBe(5)
        const trips = (yield* Metric.snapshot).find((m) => m.id === "txstream_circuit_breaker_trips")
        expect((trips?.state as { count: number } | undefined)?.count).toBe(1)
        yield* Fiber.interrupt(fiber)
      })), 60_000)
})

describe("outbox relay on PGlite: shutdown and the queue gauge", () => {
  test("interrupted while publishing, the relay finishes the batch and marks it published before it stops", () =>
    run((r) =>
      Effect.gen(function*() {
        const release = yield* Deferred.make<void>()
        const entered = yield* Deferred.make<void>()
        const slow = Layer.succeed(Publisher, Publisher.make("slow", (topic, messages) =>
          Deferred.succeed(entered, undefined).pipe(
            Effect.andThen(Deferred.await(release)),
            Effect.andThen(Effect.sync(() => { for (const m of messages) r.accepted.push({ ...m, topic }) }))
          )))
        yield* insertEvent("s", { n: 1 })
        const relay = yield* makeRelay(config({ poolSize: 1 }))
        const fiber = yield* Effect.forkChild(relay.run.pipe(Effect.provide(slow)))
        yield* Deferred.await(entered)
        const stopping = yield* Effect.forkChild(Fiber.interrupt(fiber))
        // (PGlite has one connection, held by the batch: the table cannot be read until it ends.)
        yield* Effect.yieldNow
        yield* Deferred.succeed(release, undefined)
        yield* Fiber.join(stopping)
        expect(yield* statuses).toEqual(["published"])
        expect(r.accepted).toHaveLength(1)
      })), 60_000)

  test("txstream_events_in_queue reports the table's rows by status", () =>
    run(() =>
      Effect.gen(function*() {
        yield* insertEvent("q1")
        yield* insertEvent("q2")
        const db = yield* SqlDatabase
        yield* db.query(`update outbox_events set status = 'failed' where aggregate_id = 'q2'`)
        yield* refreshQueueGauge(db)
        const gauge = (status: string) =>
          Effect.map(Metric.snapshot, (all) =>
            (all.find((m) => m.id === "txstream_events_in_queue" && m.attributes?.["status"] === status)?.state as { value: number } | undefined)?.value)
        expect([yield* gauge("pending"), yield* gauge("failed"), yield* gauge("published")]).toEqual([1, 1, 0])
      })), 60_000)
})

describe("outbox relay on PGlite: a poison event in a batch", () => {
  test("costs only itself an attempt: its batch's neighbours are published at their first attempt", () =>
    run((r) =>
      Effect.gen(function*() {
        r.failing.add("poison")
        for (let i = 0; i < 4; i++) yield* insertEvent(`ok-${i}`)
        yield* insertEvent("poison")
        for (let i = 4; i < 9; i++) yield* insertEvent(`ok-${i}`)
        const { relay, fiber } = yield* startRelay({ poolSize: 1, batchSize: 10, pollInterval: Duration.hours(1) }, r)
        yield* until("the neighbours published", Effect.map(events, (rows) => rows.filter((x) => x.status === "published").length === 9))
        const rows = yield* events
        expect(rows.filter((x) => x.aggregate_id !== "poison").every((x) => x.attempts === 0 && x.status === "published")).toBe(true)
        const poison = rows.find((x) => x.aggregate_id === "poison")!
        expect([poison.status, poison.attempts]).toEqual(["pending", 1])
        expect(r.accepted).toHaveLength(9)
        expect(yield* relay.breakerState).toBe("closed")
        yield* Fiber.interrupt(fiber)
      })), 60_000)
})
