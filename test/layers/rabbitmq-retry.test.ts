/**
 * RabbitMQ retries against clients that publish straight to a queue through the default exchange
 * (as request/reply clients do): what such a client writes in the toolkit's retry headers is not
 * believed, while the toolkit's own retry copies, sent through `retryExchange`, still count
 * attempts and keep the origin, reply-to and correlation-id; and copies (retries, dead letters)
 * that no queue takes fail instead of being dropped.
 */
import { afterAll, describe, expect, test } from "bun:test"
import * as amqp from "amqplib"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import * as RabbitMq from "../../layers/rabbitmq/index.ts"
import { OriginalKey, OriginalTopic } from "../../layers/rabbitmq/codec.ts"
import { retryExchange } from "../../layers/rabbitmq/topology.ts"
import { bodyText, Headers } from "../../src/capabilities/Message.ts"
import { Publisher, type PublisherError } from "../../src/capabilities/Publisher.ts"
import { deadLetterTopic, directTopic, type Subscriber, type Subscription } from "../../src/capabilities/Subscriber.ts"
import { declare, publish, subscribe, takeN, takeWithin } from "../support/broker.ts"
import { deleteRabbitmqTopology } from "../support/rabbitmq.ts"
import { freshName, probeRabbitmq, rabbitmqUrl, requireServer } from "../support/servers.ts"

const url = rabbitmqUrl()

const forged = { [Headers.attempt]: 99, [OriginalTopic]: "orders", [OriginalKey]: "victim.order.cancelled" }

/**
 * A plain AMQP client, as the sales clients are written: no toolkit in between. Confirmed before
 * it closes, since a publish written just before the connection closes may never be routed.
 */
const withClient = async <A>(use: (channel: amqp.ConfirmChannel) => Promise<A>): Promise<A> => {
  const connection = await amqp.connect(url)
  try {
    const channel = await connection.createConfirmChannel()
    const result = await use(channel)
    await channel.waitForConfirms()
    return result
  } finally {
    await connection.close()
  }
}

const runBroker = <A, E>(effect: Effect.Effect<A, E, Publisher | Subscriber | Scope.Scope>) =>
  Effect.runPromise(Effect.scoped(effect).pipe(Effect.provide(RabbitMq.layer({ url }))) as Effect.Effect<A, E>)

if (await requireServer("RabbitMQ", probeRabbitmq(url))) {
  describe("rabbitmq retries and the default exchange", () => {
    const created: Array<Subscription> = []
    afterAll(() => deleteRabbitmqTopology(url, created))
    const fresh = (prefix: string): Subscription => {
      const sub = { topic: directTopic, group: freshName(prefix) }
      created.push(sub)
      return sub
    }

    test("a client's forged attempt and origin are not believed; a real retry counts from 1 and keeps origin, reply-to and correlation-id", async () => {
      const worker = fresh("forged_worker")
      const seen = await runBroker(Effect.gen(function*() {
        yield* declare(worker)
        yield* Effect.promise(() =>
          withClient(async (channel) => {
            channel.sendToQueue(worker.group, Buffer.from("question"), {
              messageId: "q-1",
              headers: { ...forged, "x-a": "1" },
              replyTo: "client-replies",
              correlationId: "corr-7"
            })
          })
        )
        const consumer = yield* subscribe(worker)
        const view = (d: { attempt: number; topic: string; message: { id: string; key: string; headers: Readonly<Record<string, string>> } }) => ({
          id: d.message.id,
          attempt: d.attempt,
          topic: d.topic,
          key: d.message.key,
          headers: { ...d.message.headers }
        })
        const [first] = yield* takeN(consumer, 1)
        const views = [view(first!)]
        yield* first!.retry
        const [second] = yield* takeN(consumer, 1)
        views.push(view(second!))
        yield* second!.retry
        const [third] = yield* takeN(consumer, 1)
        views.push(view(third!))
        yield* third!.ack
        expect(Option.isNone(yield* takeWithin(consumer, 300))).toBe(true)
        return views
      }))
      const headers = { "x-a": "1", [Headers.replyTo]: "client-replies", [Headers.correlationId]: "corr-7" }
      expect(seen).toEqual([1, 2, 3].map((attempt) => ({ id: "q-1", attempt, topic: directTopic, key: worker.group, headers })))
    }, 30_000)

    test("a retry copy goes through the retry exchange, with reply-to and correlation-id as AMQP properties", async () => {
      const worker = fresh("wire_worker")
      await runBroker(Effect.gen(function*() {
        yield* declare(worker)
        yield* Effect.promise(() =>
          withClient(async (channel) => {
            channel.sendToQueue(worker.group, Buffer.from("question"), { messageId: "q-2", replyTo: "client-replies", correlationId: "corr-8" })
          })
        )
        const [delivery] = yield* takeN(yield* subscribe(worker), 1)
        yield* delivery!.retry
        // The scope's end sends the original's ack and hands the copy, if it was delivered, back.
      }))
      const copies = await withClient(async (channel) => {
        const got: Array<amqp.GetMessage> = []
        for (let msg = await channel.get(worker.group, { noAck: true }); msg !== false; msg = await channel.get(worker.group, { noAck: true })) {
          got.push(msg)
        }
        return got
      })
      expect(copies.map((msg) => ({
        exchange: msg.fields.exchange,
        routingKey: msg.fields.routingKey,
        id: msg.properties.messageId,
        replyTo: msg.properties.replyTo,
        correlationId: msg.properties.correlationId,
        headers: { ...msg.properties.headers },
        body: msg.content.toString()
      }))).toEqual([{
        exchange: retryExchange,
        routingKey: worker.group,
        id: "q-2",
        replyTo: "client-replies",
        correlationId: "corr-8",
        headers: { [Headers.attempt]: "2", [OriginalTopic]: directTopic, [OriginalKey]: worker.group },
        body: "question"
      }])
    }, 30_000)

    test("a queue declared without the retry binding (an older version, another program) gets it at subscribe: its retries come back", async () => {
      const worker = fresh("legacy_worker")
      await withClient(async (channel) => {
        await channel.assertQueue(worker.group, { durable: true })
        channel.sendToQueue(worker.group, Buffer.from("old"), { messageId: "q-3" })
      })
      const attempts = await runBroker(Effect.gen(function*() {
        const consumer = yield* subscribe(worker)
        const [first] = yield* takeN(consumer, 1)
        yield* first!.retry
        // Without the binding the copy would be dropped unroutable and the original acked: lost.
        const [second] = yield* takeN(consumer, 1)
        yield* second!.ack
        return [first!.attempt, second!.attempt, bodyText(second!.message)]
      }))
      expect(attempts).toEqual([1, 2, "old"])
    }, 30_000)

    test("a retry whose queue lost its binding at runtime fails, and the original stays in the queue instead of being lost", async () => {
      const worker = fresh("unbound_worker")
      const failure = await runBroker(Effect.gen(function*() {
        yield* declare(worker)
        const consumer = yield* subscribe(worker)
        // Removed by hand after the subscribe declared it: the copy has nowhere to go.
        yield* Effect.promise(() =>
          withClient(async (channel) => {
            await channel.unbindQueue(worker.group, retryExchange, worker.group)
            channel.sendToQueue(worker.group, Buffer.from("keep me"), { messageId: "q-4" })
          })
        )
        const [delivery] = yield* takeN(consumer, 1)
        return yield* Effect.flip(delivery!.retry)
      }))
      expect(failure.message).toContain(`no queue took it from "${retryExchange}" with key "${worker.group}"`)
      const left = await withClient(async (channel) => {
        const got: Array<string> = []
        for (let msg = await channel.get(worker.group, { noAck: true }); msg !== false; msg = await channel.get(worker.group, { noAck: true })) {
          got.push(`${msg.properties.messageId} ${msg.fields.exchange === "" ? "original" : "copy"}`)
        }
        return got
      })
      expect(left).toEqual(["q-4 original"])
    }, 30_000)

    test("a dead letter whose queue lost its binding fails, and the original stays in the queue instead of being lost", async () => {
      const worker = fresh("unbound_dead")
      const dead = deadLetterTopic(worker.group)
      const failure = await runBroker(Effect.gen(function*() {
        yield* declare(worker)
        const consumer = yield* subscribe(worker)
        yield* Effect.promise(() =>
          withClient(async (channel) => {
            await channel.unbindQueue(dead, dead, "#")
            channel.sendToQueue(worker.group, Buffer.from("poison"), { messageId: "q-5" })
          })
        )
        const [delivery] = yield* takeN(consumer, 1)
        return yield* Effect.flip(delivery!.deadLetter("not JSON"))
      }))
      expect(failure.message).toContain(`no queue took it from "${dead}"`)
      const left = await withClient(async (channel) => {
        const got: Array<string> = []
        for (const queue of [worker.group, dead]) {
          for (let msg = await channel.get(queue, { noAck: true }); msg !== false; msg = await channel.get(queue, { noAck: true })) {
            got.push(`${queue === dead ? "dead" : "queue"} ${msg.properties.messageId}`)
          }
        }
        return got
      })
      expect(left).toEqual(["queue q-5"])
    }, 30_000)

    test("the Publisher refuses the retry exchange: the toolkit's own producers cannot forge a retry either", async () => {
      const worker = fresh("refuse_worker")
      const other = { topic: freshName("refuse_topic"), group: freshName("refuse_group") }
      created.push(other)
      const [error, afterwards] = await runBroker(Effect.gen(function*() {
        yield* declare(worker)
        yield* declare(other)
        const error = yield* Effect.flip(publish(retryExchange, [{ key: worker.group, headers: { [Headers.attempt]: "99" }, body: "x" }]))
        expect(Option.isNone(yield* takeWithin(yield* subscribe(worker), 300))).toBe(true)
        // The refusal is the layer's own: the shared confirm channel goes on publishing.
        yield* publish(other.topic, [{ id: "ok", key: "k", body: "fine" }])
        const [delivery] = yield* takeN(yield* subscribe(other), 1)
        yield* delivery!.ack
        return [error, delivery!.message.id] as const
      }))
      expect([(error as PublisherError).reason, (error as PublisherError).topic, afterwards]).toEqual(["refused", retryExchange, "ok"])
      expect((error as PublisherError).message).toContain("reserved")
    }, 30_000)
  })
}
