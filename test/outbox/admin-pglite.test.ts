/**
 * The outbox admin's operations on PGlite: the failed listing and what each failed row holds
 * back, requeue (and the relay picking the requeued event up on its NOTIFY, in order), the
 * errors of a requeue that names the wrong thing, the batched purge that keeps what must be
 * kept (including each aggregate's sequence), and the expiry of idempotency keys.
 */
import { afterAll, describe, expect, test } from "bun:test"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Metric from "effect/Metric"
import * as PgliteSql from "../../layers/pglite/sql.ts"
import { SqlDatabase } from "../../src/capabilities/SqlDatabase.ts"
import * as Admin from "../../src/outbox/admin.ts"
import { makeRelay } from "../../src/outbox/relay.ts"
import { type Claims, config, countingClaims, events, insertEvent, migrated, recorder, recordingPublisher, until, valueOf } from "./support.ts"

// One PGlite for the file (starting one is the slow part); each test starts from empty tables.
const runtime = ManagedRuntime.make(PgliteSql.layer())
afterAll(() => runtime.dispose())
let ready: Promise<void> | undefined

const run = <A, E>(body: Effect.Effect<A, E, SqlDatabase>) => {
  ready ??= runtime.runPromise(migrated)
  return ready.then(() =>
    runtime.runPromise(
      Effect.gen(function*() {
        yield* sql(`truncate outbox_events, outbox_aggregate_seqs, idempotency_keys`)
        return yield* body
      }).pipe(Effect.provideService(Metric.MetricRegistry, new Map())) as Effect.Effect<A, E, SqlDatabase>
    )
  )
}

const sql = (text: string, params: ReadonlyArray<unknown> = []) => SqlDatabase.use((db) => db.query(text, params))

/** What the relay leaves after the last attempt: failed, attempts counted, the error kept. */
const markFailed = (id: string, error = "broker said no") =>
  sql(`update outbox_events set status = 'failed', attempts = 4, last_error = $2 where id = $1::uuid`, [id, error])

const markPublished = (id: string, daysAgo: number) =>
  sql(`update outbox_events set status = 'published', published_at = now() - make_interval(days => $2::int4) where id = $1::uuid`, [id, daysAgo])

const byId = (id: string) => Effect.map(events, (rows) => rows.find((row) => row.id === id)!)

const seqOf = (id: string) => Effect.map(byId(id), (row) => row.aggregate_seq)

describe("outbox admin on PGlite", () => {
  test("failed lists failed events oldest first with their error and how many later events each holds back; filter and limit", () =>
    run(Effect.gen(function*() {
      const a1 = yield* insertEvent("a")
      yield* insertEvent("a")
      yield* insertEvent("a")
      const b1 = yield* insertEvent("b")
      yield* insertEvent("c")
      yield* markFailed(a1, "message too large\nsecond line")
      yield* markFailed(b1)

      const all = yield* Admin.listFailed()
      expect(all.total).toBe(2)
      expect(all.events.map((e) => [e.id, e.aggregateId, e.aggregateSeq, e.heldBack, e.attempts])).toEqual([
        [a1, "a", 1, 2, 4],
        [b1, "b", 1, 0, 4]
      ])
      expect(all.events[0]).toMatchObject({ aggregateType: "order", eventType: "OrderCreated", lastError: "message too large\nsecond line" })
      expect(all.events[0]!.createdAt).toBeInstanceOf(Date)

      const onlyB = yield* Admin.listFailed({ aggregateId: "b" })
      expect(onlyB.total).toBe(1)
      expect(onlyB.events.map((e) => e.id)).toEqual([b1])

      const first = yield* Admin.listFailed({ limit: 1 })
      expect(first.total).toBe(2)
      expect(first.events.map((e) => e.id)).toEqual([a1])

      expect(yield* Admin.listFailed({ aggregateId: "c" })).toEqual({ total: 0, events: [] })
    })), 30_000)

  test("requeue sets a failed event pending with attempts 0, due now, its error kept; the relay, woken by NOTIFY, publishes it and then what it held back, in order", () =>
    run(Effect.gen(function*() {
      const r = recorder()
      const claims: Claims = { count: 0 }
      const a1 = yield* insertEvent("a", { n: 1 })
      const a2 = yield* insertEvent("a", { n: 2 })
      const a3 = yield* insertEvent("a", { n: 3 })
      yield* insertEvent("b", { n: 1 })
      yield* markFailed(a1)

      // An hour's poll: once idle, only a NOTIFY can wake the relay.
      const db = yield* SqlDatabase
      const relay = yield* makeRelay(config({ poolSize: 1, pollInterval: Duration.hours(1) }))
      const fiber = yield* Effect.forkChild(relay.run.pipe(
        Effect.provide(Layer.mergeAll(recordingPublisher(r), countingClaims(claims).pipe(Layer.provide(Layer.succeed(SqlDatabase, db)))))
      ))
      yield* until("b published", Effect.sync(() => r.accepted.some((m) => m.key === "b")))
      // The claim that took b, then the empty one after it (it may already have run): idle now.
      yield* until("the relay's claim after b", Effect.sync(() => claims.count >= 2))
      // a's later events wait behind the failed one
      expect((yield* events).filter((row) => row.aggregate_id === "a").map((row) => row.status)).toEqual(["failed", "pending", "pending"])

      const before = Date.now()
      const requeued = yield* Admin.requeue({ _tag: "Event", id: a1 })
      expect(requeued).toEqual([{ id: a1, aggregateType: "order", aggregateId: "a", aggregateSeq: 1 }])

      yield* until("a published", Effect.map(events, (rows) => rows.every((row) => row.status === "published")))
      yield* Fiber.interrupt(fiber)
      expect(r.accepted.filter((m) => m.key === "a").map((m) => valueOf(m).id)).toEqual([a1, a2, a3])
      const row = yield* byId(a1)
      expect(row.attempts).toBe(0)
      expect(row.last_error).toBeNull()
      expect(row.next_attempt_at.getTime()).toBeGreaterThanOrEqual(before - 1000)
    })), 30_000)

  test("requeue keeps the last error until the relay publishes, and resets attempts so the event gets all its retries", () =>
    run(Effect.gen(function*() {
      const a1 = yield* insertEvent("a")
      yield* markFailed(a1, "too large")
      yield* Admin.requeue({ _tag: "Event", id: a1 })
      const row = yield* byId(a1)
      expect([row.status, row.attempts, row.last_error]).toEqual(["pending", 0, "too large"])
    })), 30_000)

  test("requeue of an event that is not failed, missing, or not an id fails and changes nothing", () =>
    run(Effect.gen(function*() {
      const published = yield* insertEvent("a")
      yield* markPublished(published, 0)
      const pending = yield* insertEvent("b")
      const failed = yield* insertEvent("c")
      yield* markFailed(failed)
      const before = yield* events

      const notFailed = yield* Effect.flip(Admin.requeue({ _tag: "Event", id: published }))
      expect(notFailed).toBeInstanceOf(Admin.EventNotFailed)
      expect(notFailed.message).toBe(`outbox event ${published} is published, not failed: only failed events can be requeued`)
      const stillPending = yield* Effect.flip(Admin.requeue({ _tag: "Event", id: pending }))
      expect(stillPending).toMatchObject({ _tag: "EventNotFailed", status: "pending" })
      const missing = crypto.randomUUID()
      expect(yield* Effect.flip(Admin.requeue({ _tag: "Event", id: missing }))).toMatchObject({ _tag: "EventNotFound", id: missing })
      expect(yield* Effect.flip(Admin.requeue({ _tag: "Event", id: "not-an-id" }))).toMatchObject({ _tag: "EventNotFound" })
      expect(yield* Effect.flip(Admin.requeue({ _tag: "Aggregate", aggregateId: "a" }))).toMatchObject({ _tag: "NoFailedEvents", aggregateId: "a" })

      expect(yield* events).toEqual(before)
    })), 30_000)

  test("requeue by aggregate takes only that aggregate's failed events; --all-failed takes every one, and none is an empty result", () =>
    run(Effect.gen(function*() {
      const a1 = yield* insertEvent("a")
      const b1 = yield* insertEvent("b")
      const c1 = yield* insertEvent("c")
      for (const id of [a1, b1, c1]) yield* markFailed(id)

      const forB = yield* Admin.requeue({ _tag: "Aggregate", aggregateId: "b" })
      expect(forB.map((e) => e.id)).toEqual([b1])
      expect((yield* events).map((row) => row.status)).toEqual(["failed", "pending", "failed"])

      const all = yield* Admin.requeue({ _tag: "AllFailed" })
      expect(all.map((e) => e.id).sort()).toEqual([a1, c1].sort())
      expect((yield* events).map((row) => row.status)).toEqual(["pending", "pending", "pending"])
      expect(yield* Admin.requeue({ _tag: "AllFailed" })).toEqual([])
    })), 30_000)

  test("purge deletes published events older than the retention in batches, keeps recent, pending and failed ones, and keeps each aggregate's sequence", () =>
    run(Effect.gen(function*() {
      // p: three old published; q: one old published then a failed one; r: published yesterday;
      // s: old but pending (never published, never purged)
      const p = [yield* insertEvent("p"), yield* insertEvent("p"), yield* insertEvent("p")]
      const q1 = yield* insertEvent("q")
      const q2 = yield* insertEvent("q")
      const r1 = yield* insertEvent("r")
      const s1 = yield* insertEvent("s")
      for (const id of [...p, q1]) yield* markPublished(id, 8)
      yield* markPublished(r1, 1)
      yield* markFailed(q2)
      yield* sql(`update outbox_events set created_at = now() - interval '30 days' where id = $1::uuid`, [s1])

      const result = yield* Admin.purgePublished({ retention: Duration.days(7), batchSize: 2 })
      // 4 rows in batches of 2: two full batches, then one that finds nothing left
      expect([result.deleted, result.batches]).toEqual([4, 3])
      expect(Date.now() - 7 * 86_400_000 - result.cutoff.getTime()).toBeLessThan(60_000)
      expect((yield* events).map((row) => [row.id, row.status])).toEqual([[q2, "failed"], [r1, "published"], [s1, "pending"]])

      // p's rows are all gone: its next event is seq 4, not 1; q continues after its failed seq 2
      expect(yield* seqOf(yield* insertEvent("p"))).toBe(4)
      expect(yield* seqOf(yield* insertEvent("q"))).toBe(3)
      expect(yield* seqOf(yield* insertEvent("new"))).toBe(1)
      const marks = yield* sql(`select aggregate_id, last_seq::int4 as last_seq from outbox_aggregate_seqs order by 1`)
      expect(marks).toEqual([{ aggregate_id: "p", last_seq: 3 }, { aggregate_id: "q", last_seq: 1 }])

      // nothing old enough left: one batch, nothing deleted
      expect(yield* Admin.purgePublished({ retention: Duration.days(7) })).toMatchObject({ deleted: 0, batches: 1 })
    })), 30_000)

  test("purging again keeps an aggregate's sequence moving forward, never back", () =>
    run(Effect.gen(function*() {
      const ids = [yield* insertEvent("p"), yield* insertEvent("p"), yield* insertEvent("p")]
      yield* markPublished(ids[2]!, 8)
      yield* markPublished(ids[0]!, 8)
      // the first purge sees only seq 1 and 3 (2 is still pending); then seq 2 goes too
      expect((yield* Admin.purgePublished({ retention: Duration.days(7), batchSize: 1 })).deleted).toBe(2)
      yield* markPublished(ids[1]!, 8)
      expect((yield* Admin.purgePublished({ retention: Duration.days(7) })).deleted).toBe(1)
      const [mark] = yield* sql(`select last_seq::int4 as last_seq from outbox_aggregate_seqs where aggregate_id = 'p'`)
      expect(mark).toEqual({ last_seq: 3 })
      expect(yield* seqOf(yield* insertEvent("p"))).toBe(4)
    })), 30_000)

  test("expire-keys deletes idempotency keys older than the retention in batches and keeps newer ones", () =>
    run(Effect.gen(function*() {
      for (let i = 0; i < 5; i++) {
        yield* sql(
          `insert into idempotency_keys (key, request_hash, response_status, response_body, created_at)
           values ($1, 'h', 201, '{}', now() - make_interval(hours => $2::int4))`,
          [`old-${i}`, 25 + i]
        )
      }
      yield* sql(`insert into idempotency_keys (key, request_hash, response_status, response_body, created_at) values ('new', 'h', 201, '{}', now() - interval '23 hours')`)
      const result = yield* Admin.expireKeys({ retention: Duration.hours(24), batchSize: 2 })
      expect([result.deleted, result.batches]).toEqual([5, 3])
      expect(yield* sql(`select key from idempotency_keys`)).toEqual([{ key: "new" }])
    })), 30_000)
})
