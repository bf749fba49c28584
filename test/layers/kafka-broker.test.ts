import { describe, expect, test } from "bun:test"
import { Kafka as KafkaClient, logLevel } from "kafkajs"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Scope from "effect/Scope"
import * as Kafka from "../../layers/kafka/index.ts"
import { BrokerError } from "../../src/capabilities/BrokerError.ts"
import { Publisher } from "../../src/capabilities/Publisher.ts"
import { type Consumer, deadLetterTopic, type Delivery, Subscriber, type Subscription } from "../../src/capabilities/Subscriber.ts"
import { brokerContract } from "../contract/broker.ts"
import { closedPort } from "../support/ports.ts"
import { freshName, kafkaBrokers, probeKafka, requireServer } from "../support/servers.ts"
import { declare, publish, subscribe, takeN } from "../support/broker.ts"

const brokers = kafkaBrokers()

describe("kafka unreachable", () => {
  test("every variant of the layer fails with a BrokerError naming the brokers", async () => {
    const port = await closedPort()
    const options = { brokers: [`127.0.0.1:${port}`], connectTimeout: "1 second" } as const
    const variants: ReadonlyArray<Layer.Layer<never, BrokerError>> = [Kafka.layer(options), Kafka.publisherLayer(options), Kafka.subscriberLayer(options)]
    const errors = await Promise.all(variants.map((variant) =>
      Effect.runPromise(Effect.scoped(Layer.build(variant)).pipe(Effect.flip))
    ))
    for (const error of errors) {
      expect(error).toBeInstanceOf(BrokerError)
      expect(error.operation).toBe("producer.connect")
      expect(error.broker).toBe(`127.0.0.1:${port}`)
      expect(error.message).toContain(`127.0.0.1:${port}`)
      // kafkajs's own error only says it gave up; the reason comes from its log.
      expect(error.message).toContain("ECONNREFUSED")
    }
  })
})

/** A client hook that counts what a layer makes from its kafkajs client. */
const countingHook = () => {
  const made = { producer: 0, admin: 0, consumer: 0 }
  const hook = (kafka: KafkaClient) => {
    const producer = kafka.producer.bind(kafka)
    const admin = kafka.admin.bind(kafka)
    const consumer = kafka.consumer.bind(kafka)
    kafka.producer = (options) => (made.producer++, producer(options))
    kafka.admin = (options) => (made.admin++, admin(options))
    kafka.consumer = (options) => (made.consumer++, consumer(options))
    return kafka
  }
  return { made, hook }
}

// A rebalance is noticed at the next heartbeat or when a fetch returns, so both are short here;
// 6 s is the broker's smallest allowed session timeout (group.min.session.timeout.ms).
const makeLayer = () =>
  Kafka.layer({
    brokers,
    clientId: "contract",
    heartbeatInterval: "500 millis",
    sessionTimeout: "6 seconds",
    rebalanceTimeout: "10 seconds",
    maxWaitTime: "250 millis"
  })

if (await requireServer("Kafka", probeKafka(brokers))) {
  // countsAbandonedAttempts: redelivery is the group re-reading from the committed offset,
  // which carries no count. prefetch: hand-outs wait for credit, so the bound is exact.
  // retryKeepsKeyOrder: a retry goes back to the head of the consumer's own buffer.
  brokerContract("kafka", makeLayer, { prefetch: true, countsAbandonedAttempts: false, retryKeepsKeyOrder: true, directQueues: false, countsConsumers: false, exclusiveGroups: false }, {
    timeout: 60_000,
    cleanup: async (created) => {
      const admin = new KafkaClient({ clientId: "contract-cleanup", brokers: [...brokers], logLevel: logLevel.NOTHING }).admin()
      await admin.connect()
      try {
        const existing = new Set(await admin.listTopics())
        const topics = [...new Set(created.flatMap((sub) => [sub.topic, deadLetterTopic(sub.group)]))].filter((t) => existing.has(t))
        if (topics.length > 0) await admin.deleteTopics({ topics })
        const groups = new Set((await admin.listGroups()).groups.map((g) => g.groupId))
        const ours = created.map((sub) => sub.group).filter((g) => groups.has(g))
        if (ours.length > 0) await admin.deleteGroups(ours)
      } finally {
        await admin.disconnect()
      }
    }
  })

  describe("kafka publisher-only layer", () => {
    test("publishes with a producer alone: no admin client, no consumer", async () => {
      const sub = fresh()
      const admin = new KafkaClient({ clientId: "setup", brokers: [...brokers], logLevel: logLevel.NOTHING }).admin()
      await admin.connect()
      try {
        // A broker under load may still answer UNKNOWN_TOPIC_OR_PARTITION (retriable) while it
        // elects the new topic's leader; creating again finds the topic and waits for it.
        for (let tries = 1; ; tries++) {
          try {
            await admin.createTopics({ topics: [{ topic: sub.topic, numPartitions: 1 }], waitForLeaders: true, timeout: 30_000 })
            break
          } catch (error) {
            if (tries >= 5 || (error as { retriable?: unknown }).retriable !== true) throw error
          }
        }

        const publishing = countingHook()
        await Effect.runPromise(publish(sub.topic, [{ id: "m-1", key: "k", body: "x" }]).pipe(
          Effect.provide(Kafka.publisherLayer({ brokers, clientId: "publisher-only" })),
          Effect.provideService(Kafka.KafkaClientHook, publishing.hook)
        ))
        expect(publishing.made).toEqual({ producer: 1, admin: 0, consumer: 0 })

        // The record arrived; and the same count, on the subscriber layer, does see an admin
        // client and a consumer, so the zeros above are not the counter missing them.
        const consuming = countingHook()
        const ids = await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
          const consumer = yield* subscribe(sub)
          const got = yield* takeN(consumer, 1)
          yield* Effect.forEach(got, (d) => d.ack)
          return got.map((d) => d.message.id)
        })).pipe(
          Effect.provide(Kafka.subscriberLayer({ brokers, clientId: "subscriber-only" })),
          Effect.provideService(Kafka.KafkaClientHook, consuming.hook)
        ))
        expect(ids).toEqual(["m-1"])
        expect(consuming.made).toEqual({ producer: 1, admin: 1, consumer: 1 })
      } finally {
        await admin.deleteTopics({ topics: [sub.topic, deadLetterTopic(sub.group)] }).catch(() => {})
        await admin.deleteGroups([sub.group]).catch(() => {})
        await admin.disconnect()
      }
    }, 60_000)
  })

  describe("kafka offsets", () => {
    const run = <A, E>(effect: Effect.Effect<A, E, Publisher | Subscriber | Scope.Scope>): Promise<A> =>
      Effect.runPromise(Effect.scoped(effect).pipe(Effect.provide(makeLayer())) as Effect.Effect<A, E>)

    test("an unsettled record holds back the commit of the settled ones after it", () =>
      run(Effect.gen(function*() {
        const sub = fresh()
        yield* declare(sub)
        yield* publish(sub.topic, ["a", "b", "c"].map((id) => ({ id, key: "k", body: id })))
        yield* Effect.scoped(Effect.gen(function*() {
          const first = yield* subscribe(sub)
          const [, b, c] = yield* takeN(first, 3)
          yield* b!.ack
          yield* c!.ack
        }))
        const second = yield* subscribe(sub)
        const again = yield* takeN(second, 3)
        expect(again.map((d) => d.message.id)).toEqual(["a", "b", "c"])
        yield* Effect.forEach(again, (d) => d.ack)
      })), 60_000)

    test("a delivery in hand at stop can still be acked; the member leaves the group after it", () =>
      run(Effect.gen(function*() {
        const sub = fresh()
        yield* declare(sub)
        yield* publish(sub.topic, ["a", "b", "c"].map((id) => ({ id, key: "k", body: id })))
        const first = yield* subscribe(sub)
        const held = yield* first.take
        yield* first.stop
        yield* held.ack
        const second = yield* subscribe(sub)
        const rest = yield* takeN(second, 2)
        expect(rest.map((d) => d.message.id)).toEqual(["b", "c"])
        yield* Effect.forEach(rest, (d) => d.ack)
      })), 60_000)

    test("a rebalance drops the deliveries of the member; the group reads them again", () =>
      run(Effect.gen(function*() {
        const sub = fresh()
        yield* declare(sub)
        yield* publish(sub.topic, [{ id: "x", key: "k", body: "x" }])
        const first = yield* subscribe(sub)
        const held = yield* first.take
        // The second member's join makes the first give up its partitions before the join completes.
        const second = yield* subscribe(sub)
        yield* held.ack
        const [fromFirst, fromSecond] = yield* Effect.all([drain(first), drain(second)], { concurrency: 2 })
        expect([...fromFirst, ...fromSecond].map((d) => d.message.id)).toEqual(["x"])
      })), 60_000)
  })
}

const fresh = (): Subscription => {
  const id = freshName("kafka")
  return { topic: `offsets.${id}`, group: `offsets-${id}` }
}

/** Acks what arrives until nothing has for 2 s. */
const drain = (consumer: Consumer) =>
  Effect.gen(function*() {
    const got: Array<Delivery> = []
    while (true) {
      const next = yield* consumer.take.pipe(Effect.timeoutOption(2000), Effect.orElseSucceed(() => Option.none()))
      if (Option.isNone(next)) return got
      got.push(next.value)
      yield* next.value.ack
    }
  })
