import { afterAll, describe, expect, test } from "bun:test"
import * as amqp from "amqplib"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as RabbitMq from "../../layers/rabbitmq/index.ts"
import { BrokerError } from "../../src/capabilities/BrokerError.ts"
import { Publisher } from "../../src/capabilities/Publisher.ts"
import { Headers } from "../../src/capabilities/Message.ts"
import { directTopic, Subscriber } from "../../src/capabilities/Subscriber.ts"
import { deleteRabbitmqTopology } from "../support/rabbitmq.ts"
import { brokerContract } from "../contract/broker.ts"
import { closedPort } from "../support/ports.ts"
import { freshName, probeRabbitmq, rabbitmqUrl, requireServer } from "../support/servers.ts"
import { declare, publish, subscribe, takeN } from "../support/broker.ts"

describe("rabbitmq unreachable", () => {
  test("every variant of the layer fails with a BrokerError naming the address, never the password", async () => {
    const port = await closedPort()
    const options = { url: `amqp://guest:s3cret-pw@127.0.0.1:${port}`, connectTimeout: "1 second" } as const
    const variants: ReadonlyArray<Layer.Layer<never, BrokerError>> = [RabbitMq.layer(options), RabbitMq.publisherLayer(options), RabbitMq.subscriberLayer(options)]
    const errors = await Promise.all(variants.map((variant) =>
      Effect.runPromise(Effect.scoped(Layer.build(variant)).pipe(Effect.flip))
    ))
    for (const error of errors) {
      expect(error).toBeInstanceOf(BrokerError)
      expect(error.operation).toBe("connect")
      expect(error.broker).toBe(`amqp://guest:***@127.0.0.1:${port}`)
      expect(error.message).toContain(`127.0.0.1:${port}`)
      expect(error.message).toContain("ECONNREFUSED")
      expect(`${error.message} ${String(error)} ${JSON.stringify(error)}`).not.toContain("s3cret-pw")
    }
  })
})

const url = rabbitmqUrl()

if (await requireServer("RabbitMQ", probeRabbitmq(url))) {
  // countsAbandonedAttempts: the broker's `redelivered` flag makes an abandoned delivery's next
  // attempt 2; a classic queue cannot count further than that.
  // retryKeepsKeyOrder: a retry is a copy republished to the tail of the group's queue.
  brokerContract("rabbitmq", () => RabbitMq.layer({ url }), { prefetch: true, countsAbandonedAttempts: true, retryKeepsKeyOrder: false, directQueues: true, countsConsumers: true, exclusiveGroups: true }, {
    cleanup: (created) => deleteRabbitmqTopology(url, created)
  })

  describe("rabbitmq publisher-only and subscriber-only layers", () => {
    const created: Array<{ topic: string; group: string }> = []
    afterAll(() => deleteRabbitmqTopology(url, created))
    test("each on its own connection, one publishes what the other consumes", () =>
      Effect.runPromise(Effect.scoped(Effect.gen(function*() {
        const group = freshName("split")
        const sub = { topic: `${group}.topic`, group }
        created.push(sub)
        yield* declare(sub)
        const consumer = yield* subscribe(sub)
        yield* publish(sub.topic, [{ id: "m-1", key: "k", body: "x" }])
        const [delivery] = yield* takeN(consumer, 1)
        expect(delivery!.message.id).toBe("m-1")
        yield* delivery!.ack
      })).pipe(Effect.provide(Layer.mergeAll(
        RabbitMq.publisherLayer({ url, connectionName: "split-publisher" }),
        RabbitMq.subscriberLayer({ url, connectionName: "split-subscriber" })
      )))), 30_000)
  })

  describe("rabbitmq acks", () => {
    const created: Array<{ topic: string; group: string }> = []
    afterAll(() => deleteRabbitmqTopology(url, created))
    test("acks behind a delivery still being handled free prefetch credit: the consumer never stalls", () =>
      Effect.runPromise(Effect.scoped(Effect.gen(function*() {
        const group = freshName("acks")
        const sub = { topic: `${group}.topic`, group, prefetch: 4 }
        created.push(sub)
        yield* Subscriber.use((s) => s.declare(sub))
        const messages = Array.from({ length: 20 }, (_, i) => ({ id: `m-${i}`, key: "k", body: String(i) }))
        yield* Publisher.use((p) => p.publish(sub.topic, messages))
        const consumer = yield* Subscriber.use((s) => s.subscribe(sub))
        const slow = yield* consumer.take
        // The first delivery stays unsettled throughout; a multiple-ack could never pass it.
        for (let i = 1; i < 20; i++) {
          const next = yield* consumer.take.pipe(Effect.timeoutOption("5 seconds"))
          expect(Option.isSome(next)).toBe(true)
          if (Option.isSome(next)) yield* next.value.ack
        }
        yield* slow.ack
      })).pipe(Effect.provide(RabbitMq.layer({ url })))), 30_000)
  })

  describe("rabbitmq request/reply with a plain AMQP client", () => {
    const created: Array<{ topic: string; group: string }> = []
    afterAll(() => deleteRabbitmqTopology(url, created))
    test("ReplyTo and CorrelationId properties reach handlers as headers, and a reply carries them back as properties", async () => {
      const server = { topic: directTopic, group: freshName("rpc_server") }
      created.push(server)
      // The client as the original Go one is written: an exclusive, server-named reply queue and
      // a publish to the default exchange with the ReplyTo and CorrelationId properties.
      const connection = await amqp.connect(url)
      try {
        const channel = await connection.createChannel()
        const { queue: replyQueue } = await channel.assertQueue("", { exclusive: true })
        const received: Array<amqp.ConsumeMessage> = []
        const gotReply = new Promise<void>((resolve) => {
          void channel.consume(replyQueue, (msg) => {
            if (msg !== null) received.push(msg)
            resolve()
          }, { noAck: true })
        })
        const seen = await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
          yield* declare(server)
          channel.sendToQueue(server.group, Buffer.from("ping"), { replyTo: replyQueue, correlationId: "corr-42", headers: { "x-a": "1" } })
          const [request] = yield* takeN(yield* subscribe(server), 1)
          const headers = request!.message.headers
          yield* publish(directTopic, [{ key: headers[Headers.replyTo]!, headers: { [Headers.correlationId]: headers[Headers.correlationId]! }, body: "pong" }])
          yield* request!.ack
          return { ...headers }
        })).pipe(Effect.provide(RabbitMq.layer({ url }))))
        expect(seen[Headers.replyTo]).toBe(replyQueue)
        expect(seen[Headers.correlationId]).toBe("corr-42")
        expect(seen["x-a"]).toBe("1")
        await gotReply
        const reply = received[0]!
        expect(reply.content.toString()).toBe("pong")
        expect(reply.properties.correlationId).toBe("corr-42")
        expect(Object.keys(reply.properties.headers ?? {})).not.toContain(Headers.correlationId)
      } finally {
        await connection.close()
      }
    }, 30_000)

    test("directDelivery transient: what goes to the default exchange is non-persistent, topics stay persistent; the default keeps both persistent", async () => {
      const direct = { topic: directTopic, group: freshName("rpc_delivery") }
      const topic = { topic: freshName("delivery_topic"), group: freshName("delivery_group") }
      created.push(direct, topic)
      const connection = await amqp.connect(url)
      try {
        const channel = await connection.createChannel()
        const modes = (delivery: "persistent" | "transient" | undefined) =>
          Effect.runPromise(Effect.scoped(Effect.gen(function*() {
            yield* declare(direct)
            yield* declare(topic)
            yield* publish(directTopic, [{ key: direct.group, body: "request" }])
            yield* publish(topic.topic, [{ key: "k", body: "event" }])
          })).pipe(Effect.provide(RabbitMq.layer({ url, ...(delivery === undefined ? {} : { directDelivery: delivery }) }))))
            .then(async () => {
              const got = await Promise.all([direct.group, topic.group].map((queue) => channel.get(queue, { noAck: true })))
              return got.map((msg) => msg === false ? "none" : msg.properties.deliveryMode)
            })
        // AMQP delivery mode: 1 non-persistent, 2 persistent.
        expect(await modes("transient")).toEqual([1, 2])
        expect(await modes(undefined)).toEqual([2, 2])
      } finally {
        await connection.close()
      }
    }, 30_000)
  })
}
