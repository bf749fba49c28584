/**
 * Two relays (3 workers each, their own connections and producers) on one outbox table in a
 * real PostgreSQL, publishing to a real Kafka: every event exactly once in normal operation,
 * each aggregate's events in the order written.
 */
import { afterAll, describe, expect, test } from "bun:test"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Kafka from "../../layers/kafka/index.ts"
import * as PostgresSql from "../../layers/postgres/sql.ts"
import { makeRelay } from "../../src/outbox/relay.ts"
import { dropPostgresSchema, freshName, freshSchema, kafkaBrokers, postgresUrl, probeKafka, probePostgres, requireServer } from "../support/servers.ts"
import { createTopic, deleteTopic, readAll } from "./kafka.ts"
import { config, events, insertEvent, migrated } from "./support.ts"

const url = postgresUrl()
const brokers = kafkaBrokers()

if (await requireServer("PostgreSQL", probePostgres(url)) && await requireServer("Kafka", probeKafka(brokers))) {
  const schema = freshSchema()
  const topic = freshName("outbox")
  afterAll(async () => {
    await dropPostgresSchema(url, schema)
    await deleteTopic(brokers, topic)
  })

  describe("outbox relay on PostgreSQL and Kafka", () => {
    test("two relays with three workers each publish every event exactly once, each aggregate in order", async () => {
      await createTopic(brokers, topic)
      const db = PostgresSql.layer({ url, schema, max: 4 })
      const total = 300
      const aggregates = Array.from({ length: 20 }, (_, i) => `agg-${i}`)
      const written = await Effect.runPromise(Effect.gen(function*() {
        yield* migrated
        const ids: Array<string> = []
        for (let i = 0; i < total / 2; i++) ids.push(yield* insertEvent(aggregates[i % 20]!, { n: i }))
        return ids
      }).pipe(Effect.provide(db)))

      const relayFiber = (name: string) =>
        Effect.runFork(Effect.gen(function*() {
          const relay = yield* makeRelay(config({ topic, poolSize: 3, batchSize: 10 }))
          return yield* relay.run
        }).pipe(Effect.provide(Layer.mergeAll(
          PostgresSql.layer({ url, schema, max: 5 }),
          Kafka.publisherLayer({ brokers, clientId: name })
        ))))
      const relays = [relayFiber("relay-1"), relayFiber("relay-2")]
      // Half written before the relays start, half while they run.
      await Effect.runPromise(Effect.gen(function*() {
        for (let i = total / 2; i < total; i++) written.push(yield* insertEvent(aggregates[i % 20]!, { n: i }))
        const deadline = Date.now() + 60_000
        while (Date.now() < deadline) {
          const rows = yield* events
          if (rows.every((row) => row.status === "published")) return
          yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 50)))
        }
      }).pipe(Effect.provide(db)))
      const rows = await Effect.runPromise(events.pipe(Effect.provide(db)))
      expect(rows.filter((row) => row.status === "published")).toHaveLength(total)
      expect(rows.every((row) => row.attempts === 0)).toBe(true)
      await Promise.all(relays.map((fiber) => Effect.runPromise(Fiber.interrupt(fiber))))

      const records = await readAll(brokers, topic, total)
      // exactly once: 300 records, 300 distinct event ids, the ones written
      expect(records).toHaveLength(total)
      expect(new Set(records.map((r) => r.eventId)).size).toBe(total)
      expect(new Set(records.map((r) => r.eventId))).toEqual(new Set(written))
      // per aggregate, in partition (offset) order, the n written to it ascend
      for (const aggregate of aggregates) {
        const mine = records.filter((r) => r.key === aggregate)
        expect(new Set(mine.map((r) => r.partition)).size).toBe(1)
        const ns = mine.sort((a, b) => Number(BigInt(a.offset) - BigInt(b.offset))).map((r) => (JSON.parse(r.value) as { data: { n: number } }).data.n)
        expect(ns).toHaveLength(total / 20)
        expect(ns).toEqual([...ns].sort((a, b) => a - b))
      }
    }, 120_000)
  })
}
