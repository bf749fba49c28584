/**
 * What the README says about routing keys the counter's binding does not match: the topic
 * exchange drops them, and an `alternate-exchange` policy (not a declaration argument, which
 * would make every declaration without it fail) keeps them in the dead-letter queue, while the
 * counter's own declarations go on working.
 */
import { afterAll, describe, expect, test } from "bun:test"
import * as amqp from "amqplib"
import * as Effect from "effect/Effect"
import { execFile } from "node:child_process"
import { promisify } from "node:util"
import * as RabbitMq from "../../layers/rabbitmq/index.ts"
import { Headers } from "../../src/capabilities/Message.ts"
import { Publisher } from "../../src/capabilities/Publisher.ts"
import { deadLetterTopic, Subscriber } from "../../src/capabilities/Subscriber.ts"
import { bindingPattern } from "../../src/counter/events.ts"
import { deleteRabbitmqTopology } from "../support/rabbitmq.ts"
import { probeRabbitmqctl } from "../support/rabbitmqctl.ts"
import { freshName, probeRabbitmq, rabbitmqUrl, requireServer } from "../support/servers.ts"

const url = rabbitmqUrl()
const run = promisify(execFile)
const rabbitmqctl = (...args: Array<string>) => run(process.env.RABBITMQCTL ?? "rabbitmqctl", args, { timeout: 15_000 })

/** Everything in `queue`, taken off it: message id, routing key, dead-letter reason. */
const drain = async (queue: string) => {
  const connection = await amqp.connect(url)
  try {
    const channel = await connection.createChannel()
    const got: Array<{ id: string; key: string; reason: unknown }> = []
    for (let msg = await channel.get(queue, { noAck: true }); msg !== false; msg = await channel.get(queue, { noAck: true })) {
      got.push({ id: String(msg.properties.messageId), key: msg.fields.routingKey, reason: msg.properties.headers?.[Headers.deadLetterReason] })
    }
    return got.sort((a, b) => a.id.localeCompare(b.id))
  } finally {
    await connection.close()
  }
}

const cleanup: Array<() => Promise<unknown>> = []
afterAll(async () => {
  for (const step of cleanup.reverse()) await step().catch(() => {})
})

if ((await requireServer("RabbitMQ", probeRabbitmq(url))) && (await requireServer("rabbitmqctl", probeRabbitmqctl()))) {
  describe("rabbitmq: routing keys the binding does not match", () => {
    test("are dropped by the topic exchange; with an alternate-exchange policy they reach the dead-letter queue", async () => {
      const exchange = freshName("unroutable_x")
      const queue = freshName("unroutable_q")
      const policy = freshName("unroutable_policy")
      cleanup.push(() => deleteRabbitmqTopology(url, [{ topic: exchange, group: queue }]))
      const subscription = { topic: exchange, group: queue, filter: bindingPattern }
      const batch = (round: string) => [
        { id: `${round}-extra`, key: "u1.event.created.extra", body: `{"id":"${round}-extra"}` },
        { id: `${round}-dots`, key: "..event.created", body: `{"id":"${round}-dots"}` },
        { id: `${round}-good`, key: "u1.event.created", body: `{"id":"${round}-good"}` }
      ]
      const declareAndPublish = (round: string) =>
        Effect.runPromise(Effect.gen(function*() {
          yield* Subscriber.use((s) => s.declare(subscription))
          yield* Publisher.use((p) => p.publish(exchange, batch(round)))
        }).pipe(Effect.provide(RabbitMq.layer({ url }))))

      await declareAndPublish("a")
      expect((await drain(queue)).map((m) => m.id)).toEqual(["a-good"])
      expect(await drain(deadLetterTopic(queue))).toEqual([])

      // Only this test's exchange: the pattern is its whole name.
      await rabbitmqctl(
        "set_policy", "--apply-to", "exchanges", "--priority", "100",
        policy, `^${exchange}$`, JSON.stringify({ "alternate-exchange": deadLetterTopic(queue) })
      )
      cleanup.push(() => rabbitmqctl("clear_policy", policy))

      // The counter's declarations, without the argument, still succeed on the policed exchange.
      await declareAndPublish("b")
      expect((await drain(queue)).map((m) => m.id)).toEqual(["b-good"])
      // Kept as published, routing key included; no reason header, unlike the counter's own dead letters.
      expect(await drain(deadLetterTopic(queue))).toEqual([
        { id: "b-dots", key: "..event.created", reason: undefined },
        { id: "b-extra", key: "u1.event.created.extra", reason: undefined }
      ])
    }, 60_000)

    test("why not a declaration argument: an exchange declared with one refuses every declaration without it", async () => {
      const exchange = freshName("unroutable_arg_x")
      const connection = await amqp.connect(url)
      try {
        const channel = await connection.createChannel()
        await channel.assertExchange(exchange, "topic", { durable: true, arguments: { "alternate-exchange": `${exchange}.unroutable` } })
        // What the original challenge's programs, and ours, send.
        const plain = await connection.createChannel()
        plain.on("error", () => {})
        const refused = await plain.assertExchange(exchange, "topic", { durable: true }).then(() => "declared", (e: Error) => e.message)
        expect(refused).toContain("PRECONDITION_FAILED")
        await channel.deleteExchange(exchange)
      } finally {
        await connection.close()
      }
    }, 30_000)
  })
}
