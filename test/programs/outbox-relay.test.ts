/**
 * programs/outbox-relay.ts as a process against a fresh PostgreSQL database and a fresh Kafka
 * topic: it migrates, publishes rows written before and after it started, reports database,
 * kafka and breaker on /readyz, exposes the txstream_ metrics, and exits 0 on SIGTERM.
 */
import { afterAll, describe, expect, test } from "bun:test"
import postgres from "postgres"
import { createTopic, deleteTopic, readAll } from "../outbox/kafka.ts"
import { opsUrl, startProgram } from "../support/program.ts"
import { freshName, kafkaBrokers, postgresUrl, probeKafka, probePostgres, requireServer } from "../support/servers.ts"
import { freshDatabases } from "../support/databases.ts"

const url = postgresUrl()
const brokers = kafkaBrokers()

const insert = (sql: postgres.Sql, aggregate: string, n: number) => {
  const id = crypto.randomUUID()
  const payload = JSON.stringify({ id, type: "OrderCreated", aggregateId: aggregate, occurredAt: new Date().toISOString(), data: { n } })
  return sql.unsafe(
    `insert into outbox_events (id, aggregate_type, aggregate_id, aggregate_seq, event_type, payload)
     select $1::uuid, 'order', $2, coalesce(max(aggregate_seq), 0) + 1, 'OrderCreated', $3::text::jsonb
     from outbox_events where aggregate_id = $2`,
    [id, aggregate, payload]
  ).then(() => id)
}

test("on embedded defaults (PGlite, BROKER=memory) it migrates, is ready, exposes its pool size, and SIGTERM exits 0", async () => {
  const program = startProgram("outbox-relay.ts", { DATABASE_URL: "", BROKER: "memory" })
  try {
    await program.waitFor(/outbox relay publishing to txstream\.events with 3 workers/, 60_000)
    const ops = await opsUrl(program)
    const ready = await fetch(`${ops}/readyz`)
    expect(ready.status).toBe(200)
    expect(((await ready.json()) as { checks: Record<string, boolean> }).checks).toEqual({ database: true, memory: true, breaker: true })
    expect(await (await fetch(`${ops}/metrics`)).text()).toMatch(/txstream_worker_pool_size(\{[^}]*\})? 3/)
  } finally {
    program.kill("SIGTERM")
  }
  expect(await program.exited).toBe(0)
}, 90_000)

if (await requireServer("PostgreSQL", probePostgres(url)) && await requireServer("Kafka", probeKafka(brokers))) {
  const topic = freshName("outbox")
  const databases = freshDatabases()
  afterAll(async () => {
    await databases.dropAll()
    await deleteTopic(brokers, topic)
  })

  describe("programs/outbox-relay.ts", () => {
    test("publishes outbox rows to KAFKA_TOPIC_EVENTS, reports a KAFKA_REQUIRED_ACKS it does not use, is ready with database and breaker, and SIGTERM exits 0", async () => {
      const dbUrl = await databases.create("relay")
      await createTopic(brokers, topic)
      const program = startProgram("outbox-relay.ts", {
        DATABASE_URL: dbUrl,
        BROKER: "kafka",
        KAFKA_BROKERS: brokers.join(","),
        KAFKA_TOPIC_EVENTS: topic,
        WORKER_INTERVAL: "1h",
        // The original's default: accepted, reported, not used (acks=all stays).
        KAFKA_REQUIRED_ACKS: "1"
      })
      const sql = postgres(dbUrl, { max: 2, onnotice: () => {} })
      try {
        await program.waitFor(/KAFKA_REQUIRED_ACKS=1 is not used/, 60_000)
        await program.waitFor(/outbox relay publishing to/, 60_000)
        const ids = [await insert(sql, "a", 1), await insert(sql, "a", 2), await insert(sql, "b", 1)]
        // WORKER_INTERVAL is an hour: only the NOTIFY can have woken it.
        const records = await readAll(brokers, topic, 3, 30_000)
        expect(records.map((r) => r.eventId).sort()).toEqual([...ids].sort())
        expect(records.filter((r) => r.key === "a").map((r) => (JSON.parse(r.value) as { data: { n: number } }).data.n)).toEqual([1, 2])
        const deadline = Date.now() + 10_000
        let statuses: Array<string> = []
        while (Date.now() < deadline) {
          statuses = (await sql`select status from outbox_events`).map((row) => row.status as string)
          if (statuses.every((s) => s === "published")) break
          await new Promise((resolve) => setTimeout(resolve, 50))
        }
        expect(statuses).toEqual(["published", "published", "published"])
        const ops = await opsUrl(program)
        const ready = await fetch(`${ops}/readyz`)
        expect(ready.status).toBe(200)
        const checks = ((await ready.json()) as { checks: Record<string, boolean> }).checks
        expect(checks).toEqual({ database: true, kafka: true, breaker: true })
        const metrics = await (await fetch(`${ops}/metrics`)).text()
        expect(metrics).toMatch(/txstream_events_published_total(\{[^}]*\})? 3/)
        expect(metrics).toMatch(/txstream_worker_pool_size(\{[^}]*\})? 3/)
        expect(metrics).toContain("txstream_circuit_breaker_state")
      } finally {
        await sql.end()
        program.kill("SIGTERM")
      }
      expect(await program.exited).toBe(0)
    }, 120_000)
  })
}
