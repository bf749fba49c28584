/**
 * End to end on a real PostgreSQL and a real Kafka: orders created by the orders service, relayed
 * by the outbox relay, applied by programs/order-events-consumer.ts (a process) to its own fresh
 * database. A second consumer in a new group reads every event again; the inbox keeps the read
 * model as it was. SIGTERM exits 0; on embedded defaults too, with the default topic and group.
 */
import { afterAll, describe, expect, test } from "bun:test"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import postgres from "postgres"
import * as Kafka from "../../layers/kafka/index.ts"
import * as PostgresSql from "../../layers/postgres/sql.ts"
import { createOrder } from "../../src/orders/orders.ts"
import * as Orders from "../../src/orders/sql.ts"
import { makeRelay } from "../../src/outbox/relay.ts"
import { migrate } from "../../src/sql/migrations.ts"
import { createTopic, deleteTopic } from "../outbox/kafka.ts"
import { config } from "../outbox/support.ts"
import { opsUrl, type RunningProgram, startProgram } from "../support/program.ts"
import { freshName, kafkaBrokers, postgresUrl, probeKafka, probePostgres, requireServer } from "../support/servers.ts"
import { freshDatabases } from "../support/databases.ts"
import { until } from "../support/until.ts"

const url = postgresUrl()
const brokers = kafkaBrokers()

/** How many messages the program acked, from its /metrics. */
const acked = async (program: RunningProgram) => {
  const metrics = await (await fetch(`${await opsUrl(program)}/metrics`)).text()
  const line = metrics.split("\n").find((l) => l.startsWith("messages_handled") && l.includes(`outcome="ack"`))
  return line === undefined ? 0 : Number(line.split(" ").at(-1))
}

test("on embedded defaults (PGlite, BROKER=memory) it migrates, is ready with database and broker, and SIGTERM exits 0", async () => {
  const program = startProgram("order-events-consumer.ts", { DATABASE_URL: "", BROKER: "memory" })
  try {
    await program.waitFor(/order-events consumer reading txstream\.events as txstream-consumer-group/, 60_000)
    const ready = await fetch(`${await opsUrl(program)}/readyz`)
    expect(ready.status).toBe(200)
    expect(((await ready.json()) as { checks: Record<string, boolean> }).checks).toMatchObject({ database: true, broker: true })
  } finally {
    program.kill("SIGTERM")
  }
  expect(await program.exited).toBe(0)
}, 90_000)

if (await requireServer("PostgreSQL", probePostgres(url)) && await requireServer("Kafka", probeKafka(brokers))) {
  const topic = freshName("events")
  const databases = freshDatabases()
  afterAll(async () => {
    await databases.dropAll()
    await deleteTopic(brokers, topic)
  })

  describe("programs/order-events-consumer.ts", () => {
    test("the read model equals the orders created; every event delivered again to a new group changes nothing", async () => {
      const ordersUrl = await databases.create("orders")
      const readUrl = await databases.create("readmodel")
      await createTopic(brokers, topic)

      // Orders through the orders service, relayed in process.
      const orders = PostgresSql.layer({ url: ordersUrl, max: 4 })
      const customers = ["alice", "bob", "carol"]
      const requests = Array.from({ length: 12 }, (_, i) => ({
        customerId: customers[i % 3]!,
        items: [{ sku: `sku-${i}`, quantity: 1 + (i % 4), unitPrice: 0.1 + i * 1.35 }]
      }))
      const created = await Effect.runPromise(Effect.gen(function*() {
        yield* migrate(Orders.migrations, { direction: "up", table: Orders.migrationsTable })
        return yield* Effect.forEach(requests, (request) =>
          Effect.map(createOrder(request), (response) => JSON.parse(response.body) as { customerId: string; total: number }))
      }).pipe(Effect.provide(orders)))
      const relay = Effect.runFork(Effect.gen(function*() {
        const relay = yield* makeRelay(config({ topic, poolSize: 2 }))
        return yield* relay.run
      }).pipe(Effect.provide(Layer.mergeAll(orders, Kafka.publisherLayer({ brokers, clientId: "consumer-test-relay" })))))

      const expected = customers.map((customer) => {
        const mine = created.filter((order) => order.customerId === customer)
        return { customer_id: customer, orders: mine.length, total_cents: String(mine.reduce((sum, order) => sum + Math.round(order.total * 100), 0)) }
      })
      const sql = postgres(readUrl, { max: 1, onnotice: () => {} })
      const readModel = async () =>
        (await sql`select customer_id, orders::int as orders, total_cents::text as total_cents from customer_orders order by customer_id`)
          .map((row) => ({ ...row }))
      const inbox = async () => Number((await sql`select count(*)::int as n from inbox`)[0]!.n)
      const env = (group: string) => ({
        DATABASE_URL: readUrl,
        BROKER: "kafka",
        KAFKA_BROKERS: brokers.join(","),
        KAFKA_TOPIC_EVENTS: topic,
        KAFKA_GROUP_ID: group,
        KAFKA_CLIENT_ID: group
      })

      try {
        const first = startProgram("order-events-consumer.ts", env(freshName("group")))
        try {
          await first.waitFor(/order-events consumer reading/, 60_000)
          await until("every event applied", async () => (await acked(first)) >= requests.length, 60_000)
          expect(await readModel()).toEqual(expected)
          expect(await inbox()).toBe(requests.length)
          const ready = await fetch(`${await opsUrl(first)}/readyz`)
          expect(ready.status).toBe(200)
          expect(((await ready.json()) as { checks: Record<string, boolean> }).checks).toMatchObject({ database: true, broker: true })
        } finally {
          first.kill("SIGTERM")
        }
        expect(await first.exited).toBe(0)

        // A new group starts at the beginning: every event is delivered again.
        const second = startProgram("order-events-consumer.ts", env(freshName("group")))
        try {
          await second.waitFor(/order-events consumer reading/, 60_000)
          await until("every event delivered again", async () => (await acked(second)) >= requests.length, 60_000)
          expect(await readModel()).toEqual(expected)
          expect(await inbox()).toBe(requests.length)
        } finally {
          second.kill("SIGTERM")
        }
        expect(await second.exited).toBe(0)
      } finally {
        await sql.end()
        await Effect.runPromise(Fiber.interrupt(relay))
      }
    }, 180_000)
  })
}
