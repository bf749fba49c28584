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

    test("two relay processes with three workers each: every event published once, none claimed twice, each aggregate in order", async () => {
      const dbUrl = await databases.create("relays")
      const twoTopic = freshName("outbox_two")
      await createTopic(brokers, twoTopic)
      const env = {
        DATABASE_URL: dbUrl,
        BROKER: "kafka",
        KAFKA_BROKERS: brokers.join(","),
        KAFKA_TOPIC_EVENTS: twoTopic,
        WORKER_POOL_SIZE: "3",
        WORKER_BATCH_SIZE: "10"
      }
      const sql = postgres(dbUrl, { max: 4, onnotice: () => {} })
      const relays = [startProgram("outbox-relay.ts", env), startProgram("outbox-relay.ts", env)]
      try {
        for (const relay of relays) await relay.waitFor(/outbox relay publishing to/, 60_000)
        // 400 events over 20 aggregates, written by 4 writers at once while both relays claim.
        const aggregates = Array.from({ length: 20 }, (_, i) => `agg-${i}`)
        const written: Array<string> = []
        await Promise.all([0, 1, 2, 3].map(async (writer) => {
          for (let i = writer; i < 400; i += 4) {
            // One aggregate per writer at a time keeps each aggregate's seq the writing order.
            written.push(await insert(sql, aggregates[(writer * 5) + (i % 5)]!, i))
          }
        }))
        const deadline = Date.now() + 60_000
        let published = 0
        while (Date.now() < deadline) {
          published = (await sql`select count(*)::int as n from outbox_events where status = 'published'`)[0]!.n as number
          if (published === 400) break
          await new Promise((resolve) => setTimeout(resolve, 50))
        }
        expect(published).toBe(400)
        expect((await sql`select max(attempts)::int as most from outbox_events`)[0]!.most).toBe(0)
        const records = await readAll(brokers, twoTopic, 400, 60_000)
        // Once each: no event was claimed by both relays.
        expect(records).toHaveLength(400)
        expect(new Set(records.map((r) => r.eventId))).toEqual(new Set(written))
        // Each aggregate's events in its seq order, read back in offset order.
        const seqOf = new Map((await sql`select id::text as id, aggregate_seq::int as seq from outbox_events`).map((r) => [r.id as string, r.seq as number]))
        for (const aggregate of aggregates) {
          const mine = records.filter((r) => r.key === aggregate).sort((a, b) => Number(BigInt(a.offset) - BigInt(b.offset)))
          const seqs = mine.map((r) => seqOf.get(r.eventId)!)
          expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, i) => i + 1))
        }
        // Both took part.
        for (const relay of relays) {
          const text = await (await fetch(`${await opsUrl(relay)}/metrics`)).text()
          const count = Number(/txstream_events_published_total(?:\{[^}]*\})? (\d+)/.exec(text)?.[1] ?? "0")
          expect(count).toBeGreaterThan(0)
        }
      } finally {
        await sql.end()
        for (const relay of relays) relay.kill("SIGTERM")
        await deleteTopic(brokers, twoTopic)
      }
      for (const relay of relays) expect(await relay.exited).toBe(0)
    }, 180_000)
  })
}
