/**
 * The toolkit's CPU cost per publish and per consumed message, against raw amqplib, in one run.
 *
 *   bun run bench/messagingOverhead.ts [--messages 20000] [--rounds 3] [--only memory|rabbitmq|rabbitmq-publish|rabbitmq-consume]
 *
 * CPU microseconds (user + system of this process) per unit of work, so a loaded machine
 * changes the figures less than it changes wall-clock rates:
 * - publish: one message per `Publisher.publish`, one after the other (each waits for its
 *   confirm on RabbitMQ); raw: `ConfirmChannel.publish` + its confirm callback, one at a time.
 * - consume: a queue holding the messages is drained by `consume` with an empty handler
 *   (prefetch 100); raw: an amqplib consumer acking every message itself.
 * The memory broker's figures are the toolkit's own overhead with no driver under it.
 * With BENCH_NO_TIMEOUT=1 the runner runs without its handler timeout, to see what that costs.
 */
import * as amqp from "amqplib"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Memory from "../layers/memory/broker.ts"
import * as RabbitMQ from "../layers/rabbitmq/index.ts"
import { Publisher } from "../src/capabilities/Publisher.ts"
import { Subscriber } from "../src/capabilities/Subscriber.ts"
import { consume } from "../src/messaging/consume.ts"

const text = (name: string, fallback: string) => {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 ? process.argv[i + 1]! : fallback
}
const messages = Number(text("messages", "20000"))
const rounds = Number(text("rounds", "3"))
const only = text("only", "")
const url = process.env.RABBITMQ_URL ?? "amqp://guest:guest@127.0.0.1:5672"
const tag = Date.now().toString(36)
const body = "x".repeat(100)

const cpu = () => {
  const { user, system } = process.cpuUsage()
  return user + system
}
/** CPU µs per unit of what `run` does with `n` units. */
const perUnit = async (n: number, run: () => Promise<unknown>) => {
  const start = cpu()
  await run()
  return (cpu() - start) / n
}

const toolkitPublish = (layer: Layer.Layer<Publisher, unknown>, topic: string, n: number) =>
  Effect.runPromise(Effect.gen(function*() {
    const publisher = yield* Publisher
    yield* publisher.publish(topic, [{ key: "k", body }]) // warm: topic asserted
    const start = cpu()
    for (let i = 0; i < n; i++) yield* publisher.publish(topic, [{ key: "k", body }])
    return (cpu() - start) / n
  }).pipe(Effect.provide(layer)))

const toolkitConsume = (
  layer: Layer.Layer<Publisher | Subscriber, unknown>,
  topic: string,
  group: string,
  n: number,
  fill: Effect.Effect<void, unknown, Publisher>
) =>
  Effect.runPromise(Effect.scoped(Effect.gen(function*() {
    const subscriber = yield* Subscriber
    yield* subscriber.declare({ topic, group })
    yield* fill
    const done = yield* Deferred.make<void>()
    let seen = 0
    const start = cpu()
    const fiber = yield* Effect.forkChild(consume({ topic, group, prefetch: 100 }, () =>
      Effect.sync(() => {
        if (++seen === n) Deferred.doneUnsafe(done, Effect.void)
      }), process.env.BENCH_NO_TIMEOUT ? { timeout: Duration.infinity } : {}))
    yield* Deferred.await(done)
    const used = (cpu() - start) / n
    yield* Fiber.interrupt(fiber)
    return used
  })).pipe(Effect.provide(layer)))

const fillWith = (topic: string, n: number) =>
  Effect.gen(function*() {
    const publisher = yield* Publisher
    for (let i = 0; i < n; i += 500) {
      yield* publisher.publish(topic, Array.from({ length: Math.min(500, n - i) }, () => ({ key: "k", body })))
    }
  })

const rawPublish = async (exchange: string, n: number) => {
  const connection = await amqp.connect(url)
  const channel = await connection.createConfirmChannel()
  await channel.assertExchange(exchange, "topic", { durable: true })
  const one = () =>
    new Promise<void>((resolve, reject) => {
      channel.publish(exchange, "k", Buffer.from(body), { persistent: true, messageId: crypto.randomUUID(), headers: {} }, (error) =>
        error ? reject(error) : resolve())
    })
  await one()
  const used = await perUnit(n, async () => {
    for (let i = 0; i < n; i++) await one()
  })
  await connection.close()
  return used
}

// Fills through amqplib, so a profile of the consume run shows little of the filling.
const rawFill = async (exchange: string, n: number) => {
  const connection = await amqp.connect(url)
  const channel = await connection.createConfirmChannel()
  for (let i = 0; i < n; i++) channel.publish(exchange, "k", Buffer.from(body), { persistent: true, messageId: crypto.randomUUID(), headers: {} })
  await channel.waitForConfirms()
  await connection.close()
}

const rawConsume = async (queue: string, n: number) => {
  const connection = await amqp.connect(url)
  const channel = await connection.createConfirmChannel()
  await channel.assertQueue(queue, { durable: true })
  for (let i = 0; i < n; i++) channel.sendToQueue(queue, Buffer.from(body), { persistent: true, messageId: crypto.randomUUID() })
  await channel.waitForConfirms()
  const consumer = await connection.createChannel()
  await consumer.prefetch(100)
  const used = await perUnit(n, () =>
    new Promise<void>((resolve) => {
      let seen = 0
      consumer.consume(queue, (msg) => {
        if (msg === null) return
        consumer.ack(msg)
        if (++seen === n) resolve()
      })
    }))
  await channel.deleteQueue(queue)
  await connection.close()
  return used
}

const rabbitLayer = RabbitMQ.layer({ url, prefetch: 100 })
const line = (label: string, figures: Array<number>) =>
  console.log(`${label.padEnd(28)} ${figures.map((f) => f.toFixed(1).padStart(7)).join(" ")}  µs CPU (median ${[...figures].sort((a, b) => a - b)[Math.floor(figures.length / 2)]!.toFixed(1)}, min ${Math.min(...figures).toFixed(1)})`)

const results: Record<string, Array<number>> = {}
const record = (label: string, value: number) => (results[label] ??= []).push(value)

for (let round = 0; round < rounds; round++) {
  if (only === "" || only === "memory") {
    record("memory publish", await toolkitPublish(Memory.layer, `bench_mem_${tag}`, messages * 5))
    record("memory consume", await toolkitConsume(Memory.layer, `bench_mem_c_${tag}_${round}`, `bench_mem_g_${tag}_${round}`, messages * 5, fillWith(`bench_mem_c_${tag}_${round}`, messages * 5)))
  }
  if (only !== "memory") {
    if (only !== "rabbitmq-consume") {
      record("raw amqplib publish+confirm", await rawPublish(`bench_raw_x_${tag}`, messages))
      record("rabbitmq publish", await toolkitPublish(rabbitLayer, `bench_tk_x_${tag}`, messages))
      if (only === "rabbitmq-publish") continue
      record("raw amqplib consume+ack", await rawConsume(`bench_raw_q_${tag}_${round}`, messages))
    }
    const topic = `bench_tk_c_${tag}_${round}`
    const group = `bench_tk_g_${tag}_${round}`
    record("rabbitmq consume", await toolkitConsume(rabbitLayer, topic, group, messages, Effect.promise(() => rawFill(topic, messages))))
    const connection = await amqp.connect(url)
    const channel = await connection.createChannel()
    await channel.deleteQueue(group)
    await channel.deleteQueue(`${group}.dlq`)
    await connection.close()
  }
}
for (const [label, figures] of Object.entries(results)) line(label, figures)
