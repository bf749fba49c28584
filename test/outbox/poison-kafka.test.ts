/**
 * A poison event on a real PostgreSQL and a real Kafka: an event larger than the topic's
 * `max.message.bytes` is refused by the broker on every attempt. The relay marks it failed
 * after WORKER_MAX_RETRIES + 1 attempts with the broker's error, publishes every other
 * aggregate's events, and holds back the poison's later event (order before progress). Once
 * the topic takes larger records, the admin's requeue lets the relay publish the poison and
 * then its later event, in that order.
 */
import { afterAll, describe, expect, test } from "bun:test"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Kafka from "../../layers/kafka/index.ts"
import * as PostgresSql from "../../layers/postgres/sql.ts"
import * as Admin from "../../src/outbox/admin.ts"
import { makeRelay } from "../../src/outbox/relay.ts"
import { dropPostgresSchema, freshName, freshSchema, kafkaBrokers, postgresUrl, probeKafka, probePostgres, requireServer } from "../support/servers.ts"
import { alterTopic, createTopic, deleteTopic, readAll, topicConfig } from "./kafka.ts"
import { config, events, insertEvent, migrated, until } from "./support.ts"

const url = postgresUrl()
const brokers = kafkaBrokers()

if (await requireServer("PostgreSQL", probePostgres(url)) && await requireServer("Kafka", probeKafka(brokers))) {
  const schema = freshSchema()
  const topic = freshName("poison")
  afterAll(async () => {
    await dropPostgresSchema(url, schema)
    await deleteTopic(brokers, topic)
  })

  describe("a poison event on PostgreSQL and Kafka", () => {
    test("fails alone after its retries with the broker's error, blocks only its aggregate, and after a requeue goes out before its later event", async () => {
      // Small records fit (a normal event is ~250 bytes, ten of them in one partition's batch
      // under 4 KiB); the poison, ~8 KiB, never does.
      await createTopic(brokers, topic, 3, { "max.message.bytes": "4096" })
      const db = PostgresSql.layer({ url, schema, max: 4 })
      const maxRetries = 3
      const others = Array.from({ length: 8 }, (_, i) => `other-${i}`)
      const written = await Effect.runPromise(Effect.gen(function*() {
        yield* migrated
        const first = yield* insertEvent(others[0]!, { n: 0 })
        const poison = yield* insertEvent("poisoned", { n: 1, blob: "x".repeat(8000) })
        const rest: Array<string> = [first]
        for (let i = 1; i < others.length; i++) rest.push(yield* insertEvent(others[i]!, { n: i }))
        const later = yield* insertEvent("poisoned", { n: 2 })
        return { poison, later, others: rest }
      }).pipe(Effect.provide(db)))

      const relay = await Effect.runPromise(makeRelay(config({
        topic,
        poolSize: 2,
        batchSize: 10,
        maxRetries,
        baseDelay: Duration.millis(50),
        maxDelay: Duration.millis(200),
        // Only NOTIFY and the backoff's end wake an idle worker: no poll covers for a lost wake-up.
        pollInterval: Duration.hours(1)
      })))
      const fiber = Effect.runFork(relay.run.pipe(Effect.provide(Layer.mergeAll(
        PostgresSql.layer({ url, schema, max: 4 }),
        Kafka.publisherLayer({ brokers, clientId: "poison-relay" })
      ))))
      try {
        const rowOf = (id: string) => Effect.map(events, (rows) => rows.find((row) => row.id === id)!)
        const started = Date.now()
        await Effect.runPromise(until("the poison failed and the others published", Effect.map(events, (rows) =>
          rows.every((row) =>
            row.id === written.poison ? row.status === "failed" : row.id === written.later ? row.status === "pending" : row.status === "published"
          )), 60_000).pipe(Effect.provide(db)))
        const failedAfter = Date.now() - started
        // A new event of another aggregate wakes the relay (NOTIFY) after the failure; once it is
        // published, a claim has passed over the poison's later event, which is due and pending:
        // only the failed row in front of it keeps it back.
        const wake = await Effect.runPromise(insertEvent("after-failure", { n: 0 }).pipe(Effect.provide(db)))
        written.others.push(wake)
        await Effect.runPromise(until("the wake-up event published", Effect.map(rowOf(wake), (row) => row.status === "published")).pipe(Effect.provide(db)))

        const poison = await Effect.runPromise(rowOf(written.poison).pipe(Effect.provide(db)))
        expect(poison.status).toBe("failed")
        expect(poison.attempts).toBe(maxRetries + 1)
        expect(poison.last_error).toContain("larger than the max message size")
        const later = await Effect.runPromise(rowOf(written.later).pipe(Effect.provide(db)))
        expect([later.status, later.attempts]).toEqual(["pending", 0])
        expect(await Effect.runPromise(relay.breakerState)).toBe("closed")

        const listing = await Effect.runPromise(Admin.listFailed().pipe(Effect.provide(db)))
        expect(listing.events.map((e) => [e.id, e.heldBack])).toEqual([[written.poison, 1]])

        const before = await readAll(brokers, topic, written.others.length, 30_000)
        // Every other event reached Kafka (a batch the broker refused in part is published again
        // one event at a time, so some may be there twice: at-least-once); nothing of the poison's
        // aggregate did.
        expect(new Set(before.map((r) => r.eventId))).toEqual(new Set(written.others))
        expect(before.filter((r) => r.key === "poisoned")).toEqual([])
        const duplicates = before.length - written.others.length

        // The operator raises the topic's limit, then requeues the poison.
        await alterTopic(brokers, topic, { "max.message.bytes": "1048588" })
        await Effect.runPromise(until("the new limit in force", Effect.promise(async () =>
          (await topicConfig(brokers, topic, "max.message.bytes")) === "1048588"), 30_000))
        const requeuedAt = Date.now()
        const requeued = await Effect.runPromise(Admin.requeue({ _tag: "Event", id: written.poison }).pipe(Effect.provide(db)))
        expect(requeued.map((e) => e.id)).toEqual([written.poison])
        await Effect.runPromise(until("the poison and its later event published", Effect.map(events, (rows) =>
          rows.every((row) => row.status === "published")), 30_000).pipe(Effect.provide(db)))
        const drainedAfter = Date.now() - requeuedAt

        const after = await readAll(brokers, topic, before.length + 2, 30_000)
        const mine = after.filter((r) => r.key === "poisoned").sort((a, b) => Number(BigInt(a.offset) - BigInt(b.offset)))
        expect(new Set(mine.map((r) => r.partition)).size).toBe(1)
        expect(mine.map((r) => r.eventId)).toEqual([written.poison, written.later])
        expect((JSON.parse(mine[0]!.value) as { data: { blob: string } }).data.blob).toHaveLength(8000)
        expect(after.length - before.length).toBe(2)
        console.log(`poison: failed after ${failedAfter} ms (${maxRetries + 1} attempts), ${duplicates} duplicate(s) of other events, requeue → both published in ${drainedAfter} ms`)
      } finally {
        await Effect.runPromise(Fiber.interrupt(fiber))
      }
    }, 180_000)
  })
}
