/**
 * The Kafka publisher after the broker refused part of a send: a batch spread over every
 * partition with one record over the topic's `max.message.bytes` fails, the broker keeps the
 * records of the other partitions, and the next sends to those partitions must still succeed
 * (kafkajs alone leaves its idempotence sequences behind the broker's there, and they fail with
 * OUT_OF_ORDER_SEQUENCE_NUMBER: the layer renews the producer).
 */
import { afterAll, describe, expect, test } from "bun:test"
import * as Effect from "effect/Effect"
import * as Kafka from "../../layers/kafka/index.ts"
import { Publisher } from "../../src/capabilities/Publisher.ts"
import { createTopic, deleteTopic, readAll } from "../outbox/kafka.ts"
import { freshName, kafkaBrokers, probeKafka, requireServer } from "../support/servers.ts"

const brokers = kafkaBrokers()

if (await requireServer("Kafka", probeKafka(brokers))) {
  const topic = freshName("refused")
  afterAll(() => deleteTopic(brokers, topic))

  describe("kafka publisher after a refused send", () => {
    test("a record too large fails its send; later sends to every partition succeed, one by one and in batches", async () => {
      await createTopic(brokers, topic, 3, { "max.message.bytes": "4096" })
      // Twelve keys: every one of the three partitions gets some.
      const keys = Array.from({ length: 12 }, (_, i) => `key-${i}`)
      const message = (key: string, round: number) => ({ id: `${key}-${round}`, key, body: JSON.stringify({ key, round }) })
      const outcome = await Effect.runPromise(Effect.gen(function*() {
        const publisher = yield* Publisher
        const refused = yield* Effect.flip(publisher.publish(topic, [
          ...keys.map((key) => message(key, 1)),
          { id: "huge", key: "huge", body: "x".repeat(8000) }
        ]))
        for (const key of keys) yield* publisher.publish(topic, [message(key, 2)])
        yield* publisher.publish(topic, keys.map((key) => message(key, 3)))
        return refused
      }).pipe(Effect.scoped, Effect.provide(Kafka.publisherLayer({ brokers, clientId: "refused-send", publishTimeout: "20 seconds" }))))
      expect(outcome.message).toContain("larger than the max message size")

      const records = await readAll(brokers, topic, 24, 30_000)
      const bodies = records.map((r) => JSON.parse(r.value) as { key: string; round: number })
      for (const round of [2, 3]) {
        expect(bodies.filter((b) => b.round === round).map((b) => b.key).sort()).toEqual([...keys].sort())
      }
      expect(records.some((r) => r.key === "huge")).toBe(false)
    }, 90_000)
  })
}
