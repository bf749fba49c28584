import { afterAll, describe, expect, test } from "bun:test"
import postgres from "postgres"
import { mkdtempSync, readFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { startProgram } from "../support/program.ts"
import { freshName, postgresUrl, probePostgres, requireServer } from "../support/servers.ts"

describe("demo program (README's first command)", () => {
  test("runs on embedded defaults: the counter's counts match, the orders read model matches what the API created, every sales reply equals the direct query, every session in order, the scheduler's history as expected", async () => {
    const dir = mkdtempSync(join(tmpdir(), "demo-"))
    // Servers that cannot be reached: the demo must need none of them.
    const demo = startProgram("demo.ts", {
      OUTPUT_DIR: dir,
      RABBITMQ_URL: "amqp://nobody:none@127.0.0.1:1",
      KAFKA_BROKERS: "127.0.0.1:1",
      DATABASE_URL: ""
    })
    expect(await demo.exited).toBe(0)
    const out = demo.stdout()
    expect(out).toContain("counts match the generator's expectation")
    expect(out).toContain("dead-lettered: 10")
    const created = JSON.parse(readFileSync(join(dir, "created.json"), "utf8")) as Record<string, number>
    expect(Object.values(created).reduce((a, b) => a + b, 0)).toBeGreaterThan(0)

    // The orders part, with its default sizes: 200 orders over 6 customers, 20 replayed, 6 bad.
    expect(out).toContain("orders created: 200; replays answered without a new order: 20")
    expect(out).toContain("bad requests refused: 4 × 400, 2 × 415")
    expect(out).toContain("events published: 200 (pending 0, failed 0); applied to the read model: 200")
    expect(out).toContain("read model matches the orders the API created")
    expect(out).not.toContain("PROBLEM")
    // The read model's table: one row per customer, their orders adding up to the 200.
    const rows = [...out.matchAll(/│ (customer-\d+) +│ (\d+) +│ ([\d.]+) +│/g)]
    expect(rows.map((row) => row[1])).toEqual(["customer-01", "customer-02", "customer-03", "customer-04", "customer-05", "customer-06"])
    expect(rows.reduce((sum, row) => sum + Number(row[2]), 0)).toBe(200)
    // The counter's part comes first, as the README says.
    expect(out.indexOf("counts match")).toBeLessThan(out.indexOf("orders created"))

    // The sales part: 300 requests through the balancer, each reply checked, spread over 3 workers.
    expect(out).toContain("300 of 300 replies equal the query run directly")
    const workers = [...out.matchAll(/│ (mom-worker-\d) +│ (\d+) +│ (\d+) +│ (\d+) +│/g)]
    expect(workers.map((row) => row[1])).toEqual(["mom-worker-1", "mom-worker-2", "mom-worker-3"])
    expect(workers.reduce((sum, row) => sum + Number(row[3]), 0)).toBe(300)
    expect(workers.every((row) => Number(row[2]) > 0 && row[4] === "0")).toBe(true)
    expect(out.indexOf("orders created")).toBeLessThan(out.indexOf("replies equal the query"))

    // The session part: 20 sessions × 10 messages, each session seen whole and in order.
    expect(out).toContain("200 messages in 20 sessions")
    expect(out).toContain("every session's messages handled once each, in sequence order; queue left with 0 active, 0 dead-lettered")
    const sessions = [...out.matchAll(/│ +(session-\d+) │ (\d+) +│ (\w+) +│/g)]
    expect(sessions).toHaveLength(20)
    expect(sessions.every((row) => row[2] === "10" && row[3] === "true")).toBe(true)

    // The scheduler part: its history table, a retried failure, a skipped overlap, a manual run.
    expect(out).toContain("every tick ran, the flaky job's failed first attempts were retried, overlapping slow runs were skipped")
    expect(out).toMatch(/│ flaky │ [\d:.]+ │ schedule │ 2 +│ succeeded +│/)
    expect(out).toMatch(/│ slow +│ [\d:.]+ │ schedule │ 1 +│ skipped +│/)
    expect(out).toMatch(/│ tick +│ [\d:.]+ │ manual +│ 1 +│ succeeded +│/)
    expect(out.indexOf("every session's messages")).toBeLessThan(out.indexOf("every tick ran"))
  }, 240_000)

  test("the sizes of the orders, sales and session parts come from flags; a bad one stops the demo with exit 2 naming it", async () => {
    const small = startProgram("demo.ts", { OUTPUT_DIR: mkdtempSync(join(tmpdir(), "demo-")), DATABASE_URL: "" }, [
      "--count", "20", "--malformed", "0", "--orders", "40", "--customers", "3", "--replays", "4", "--bad-requests", "3",
      "--sales-requests", "30", "--session-count", "5", "--messages-per-session", "4"
    ])
    expect(await small.exited).toBe(0)
    expect(small.stdout()).toContain("orders created: 40; replays answered without a new order: 4")
    expect(small.stdout()).toContain("bad requests refused: 2 × 400, 1 × 415")
    expect(small.stdout()).toContain("read model matches the orders the API created")
    expect(small.stdout()).toContain("30 of 30 replies equal the query run directly")
    expect(small.stdout()).toContain("20 messages in 5 sessions")

    const bad = startProgram("demo.ts", { DATABASE_URL: "" }, ["--orders", "many"])
    expect(await bad.exited).toBe(2)
    expect(bad.stderr()).toContain("ORDERS: expected an integer")
  }, 180_000)
})

const postgresUp = await requireServer("PostgreSQL", probePostgres(postgresUrl()))

describe.if(postgresUp)("migrate program", () => {
  const database = freshName("migrate_db")
  const admin = postgres(postgresUrl(), { max: 1, onnotice: () => {} })
  const url = new URL(postgresUrl())
  url.pathname = `/${database}`
  afterAll(async () => {
    await admin.unsafe(`drop database if exists ${database} with (force)`)
    await admin.end()
  })

  const tables = async () => {
    const sql = postgres(url.toString(), { max: 1, onnotice: () => {} })
    try {
      const rows = await sql<{ table_name: string }[]>`select table_name from information_schema.tables where table_schema = 'public' order by 1`
      return rows.map((r) => r.table_name)
    } finally {
      await sql.end()
    }
  }

  test("up applies each system's migrations once; down reverts the last", async () => {
    await admin.unsafe(`create database ${database}`)
    const up = startProgram("migrate.ts", { DATABASE_URL: url.toString() }, ["up"])
    expect(await up.exited).toBe(0)
    expect(up.stdout()).toContain("counter: applied 1001 counter-tables")
    expect(up.stdout()).toContain("orders: applied 2001 orders-tables, 2002 outbox-events, 2003 outbox-retention, 2004 outbox-claim-indexes, 2005 outbox-position-unindexed")
    expect(up.stdout()).toContain("order-events: applied 3001 inbox-and-customer-orders")
    expect(up.stdout()).toContain("scheduler: applied 4001 scheduler-runs")
    expect(up.stdout()).toContain("sessions: applied 5001 session-queue-tables")
    expect(await tables()).toEqual([
      "counter_counts", "counter_migrations", "counter_seen", "customer_orders", "idempotency_keys", "inbox",
      "order_events_migrations", "order_items", "orders", "orders_migrations", "outbox_aggregate_seqs", "outbox_events",
      "scheduler_jobs", "scheduler_migrations", "scheduler_runs",
      "session_queue_dead_letters", "session_queue_messages", "session_queue_sessions", "sessions_migrations"
    ])

    const again = startProgram("migrate.ts", { DATABASE_URL: url.toString() }, ["up"])
    expect(await again.exited).toBe(0)
    expect(again.stdout()).toContain("counter: nothing to do")
    expect(again.stdout()).toContain("orders: nothing to do")
    expect(again.stdout()).toContain("order-events: nothing to do")
    expect(again.stdout()).toContain("scheduler: nothing to do")
    expect(again.stdout()).toContain("sessions: nothing to do")

    const down = startProgram("migrate.ts", { DATABASE_URL: url.toString() }, ["down", "--system", "counter"])
    expect(await down.exited).toBe(0)
    expect(down.stdout()).toContain("counter: reverted 1001 counter-tables")
    // The other systems' tables stay: each system rolls back on its own.
    expect(await tables()).toEqual([
      "counter_migrations", "customer_orders", "idempotency_keys", "inbox", "order_events_migrations", "order_items", "orders",
      "orders_migrations", "outbox_aggregate_seqs", "outbox_events", "scheduler_jobs", "scheduler_migrations", "scheduler_runs",
      "session_queue_dead_letters", "session_queue_messages", "session_queue_sessions", "sessions_migrations"
    ])
  })

  test("an unknown system is a configuration error naming SYSTEM", async () => {
    const bad = startProgram("migrate.ts", { DATABASE_URL: url.toString() }, ["up", "--system", "nope"])
    expect(await bad.exited).toBe(2)
    expect(bad.stderr()).toContain("SYSTEM: expected one of counter")
  })
})
