import { afterAll, describe, expect, test } from "bun:test"
import postgres from "postgres"
import { mkdtempSync, readFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { startProgram } from "../support/program.ts"
import { freshName, postgresUrl, probePostgres, requireServer } from "../support/servers.ts"

describe("demo program (README's first command)", () => {
  test("runs on embedded defaults, prints the counts and says they match", async () => {
    const dir = mkdtempSync(join(tmpdir(), "demo-"))
    const demo = startProgram("demo.ts", { OUTPUT_DIR: dir, RABBITMQ_URL: "amqp://nobody:none@127.0.0.1:1", DATABASE_URL: "" })
    expect(await demo.exited).toBe(0)
    expect(demo.stdout()).toContain("counts match the generator's expectation")
    expect(demo.stdout()).toContain("dead-lettered: 10")
    const created = JSON.parse(readFileSync(join(dir, "created.json"), "utf8")) as Record<string, number>
    expect(Object.values(created).reduce((a, b) => a + b, 0)).toBeGreaterThan(0)
  })
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
    expect(up.stdout()).toContain("orders: applied 2001 orders-tables, 2002 outbox-events, 2004 outbox-claim-indexes")
    expect(up.stdout()).toContain("order-events: applied 3001 inbox-and-customer-orders")
    expect(await tables()).toEqual([
      "counter_counts", "counter_migrations", "counter_seen", "customer_orders", "idempotency_keys", "inbox",
      "order_events_migrations", "order_items", "orders", "orders_migrations", "outbox_events"
    ])

    const again = startProgram("migrate.ts", { DATABASE_URL: url.toString() }, ["up"])
    expect(await again.exited).toBe(0)
    expect(again.stdout()).toContain("counter: nothing to do")
    expect(again.stdout()).toContain("orders: nothing to do")
    expect(again.stdout()).toContain("order-events: nothing to do")

    const down = startProgram("migrate.ts", { DATABASE_URL: url.toString() }, ["down", "--system", "counter"])
    expect(await down.exited).toBe(0)
    expect(down.stdout()).toContain("counter: reverted 1001 counter-tables")
    // The other systems' tables stay: each system rolls back on its own.
    expect(await tables()).toEqual([
      "counter_migrations", "customer_orders", "idempotency_keys", "inbox", "order_events_migrations", "order_items", "orders",
      "orders_migrations", "outbox_events"
    ])
  })

  test("an unknown system is a configuration error naming SYSTEM", async () => {
    const bad = startProgram("migrate.ts", { DATABASE_URL: url.toString() }, ["up", "--system", "nope"])
    expect(await bad.exited).toBe(2)
    expect(bad.stderr()).toContain("SYSTEM: expected one of counter")
  })
})
