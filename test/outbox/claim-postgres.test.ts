/**
 * The relay's claim statement on a real PostgreSQL, by itself: what two concurrent claims take
 * while one holds its rows, and that a claim reads about its batch, not the backlog.
 */
import { afterAll, describe, expect, test } from "bun:test"
import * as Effect from "effect/Effect"
import postgres from "postgres"
import * as PostgresSql from "../../layers/postgres/sql.ts"
import * as Orders from "../../src/orders/sql.ts"
import { claimBatch, claimSettings } from "../../src/outbox/sql.ts"
import { migrate } from "../../src/sql/migrations.ts"
import { dropPostgresSchema, freshSchema, postgresUrl, probePostgres, requireServer } from "../support/servers.ts"

const url = postgresUrl()

if (await requireServer("PostgreSQL", probePostgres(url))) {
  const schema = freshSchema()
  const sql = postgres(url, { max: 4, onnotice: () => {}, connection: { search_path: schema } })
  afterAll(async () => {
    await sql.end({ timeout: 5 })
    await dropPostgresSchema(url, schema)
  })
  const ready = Effect.runPromise(
    migrate(Orders.migrations, { direction: "up", table: Orders.migrationsTable }).pipe(Effect.provide(PostgresSql.layer({ url, schema, max: 1 })))
  )

  const insert = (aggregate: string, seq: number, status = "pending") =>
    sql.unsafe(
      `insert into outbox_events (aggregate_type, aggregate_id, aggregate_seq, event_type, payload, status)
       values ('order', $1, $2, 'OrderCreated', '{}'::jsonb, $3)`,
      [aggregate, seq, status]
    )
  const claimed = (rows: ReadonlyArray<unknown>) =>
    (rows as ReadonlyArray<{ aggregate_id: string; aggregate_seq: number }>).map((row) => `${row.aggregate_id}/${row.aggregate_seq}`).sort()
  const future = new Date(Date.now() + 3_600_000)

  describe("outbox claim on PostgreSQL", () => {
    test("a second claim skips the rows the first holds and everything behind them in their aggregates; each takes one row per aggregate", async () => {
      await ready
      await sql.unsafe("truncate outbox_events")
      for (const seq of [1, 2, 3]) await insert("a", seq)
      for (const seq of [1, 2]) await insert("b", seq)
      await insert("c", 1, "published")
      await insert("c", 2)
      await insert("d", 1, "failed")
      await insert("d", 2)
      const first = await sql.reserve()
      try {
        await first.unsafe("begin")
        const held = await first.unsafe(claimBatch, [future, 1])
        expect(claimed(held)).toEqual(["a/1"])
        // The second claim, while the first holds a/1: not a/1 (locked), not a/2 (behind it),
        // b/1 but not b/2 (one row per aggregate), c/2 (its earlier row is published), nothing of
        // d (behind a failed row).
        const second = await sql.begin((tx) => tx.unsafe(claimBatch, [future, 100]))
        expect(claimed(second)).toEqual(["b/1", "c/2"])
        // The first marks a/1 published and commits: a/2 is next, a/3 still waits.
        await first.unsafe("update outbox_events set status = 'published' where aggregate_id = 'a' and aggregate_seq = 1")
        await first.unsafe("commit")
      } finally {
        first.release()
      }
      const third = await sql.begin((tx) => tx.unsafe(claimBatch, [future, 100]))
      expect(claimed(third)).toEqual(["a/2", "b/1", "c/2"])
    })

    test("a row backing off holds its aggregate back until it is due", async () => {
      await ready
      await sql.unsafe("truncate outbox_events")
      await insert("e", 1)
      await insert("e", 2)
      await sql.unsafe("update outbox_events set next_attempt_at = $1 where aggregate_seq = 1", [future])
      expect(claimed(await sql.begin((tx) => tx.unsafe(claimBatch, [new Date(), 100])))).toEqual([])
      expect(claimed(await sql.begin((tx) => tx.unsafe(claimBatch, [new Date(future.getTime() + 1000), 100])))).toEqual(["e/1"])
    })

    test("with 20 000 pending rows a claim of 10 reads a few dozen rows, not the backlog", async () => {
      await ready
      await sql.unsafe("truncate outbox_events")
      // 5 000 aggregates with 4 events each, written round-robin, plus published history.
      await sql.unsafe(
        `insert into outbox_events (aggregate_type, aggregate_id, aggregate_seq, event_type, payload, status)
         select 'order', 'agg-' || (i % 5000), i / 5000 + 1, 'OrderCreated', '{}'::jsonb, 'pending'
         from generate_series(0, 19999) as i`
      )
      await sql.unsafe("analyze outbox_events")
      const plan = await sql.begin(async (tx) => {
        const [row] = await tx.unsafe<Array<{ "QUERY PLAN": unknown }>>(`explain (analyze, format json) ${claimBatch}`, [future, 10])
        return row!["QUERY PLAN"] as Array<{ Plan: PlanNode }>
      })
      const read = rowsRead(plan[0]!.Plan)
      expect(read).toBeGreaterThanOrEqual(10)
      // The first version sorted every unpublished row per claim: 20 000 here.
      expect(read).toBeLessThan(200)
    }, 30_000)

    test("an outbox that keeps up: with the statistics saying few rows are pending and 20 000 just published, the claim after the relay's settings walks in position order and reads about its batch", async () => {
      await ready
      await sql.unsafe("truncate outbox_events")
      // No VACUUM during the test: the published rows' old versions stay in the pending indexes.
      await sql.unsafe("alter table outbox_events set (autovacuum_enabled = false)")
      try {
        await sql.unsafe(
          `insert into outbox_events (aggregate_type, aggregate_id, aggregate_seq, event_type, payload, status)
           select 'order', 'old-' || i, 1, 'OrderCreated', '{}'::jsonb, case when i < 20 then 'pending' else 'published' end
           from generate_series(0, 19999) as i`
        )
        // What autovacuum would have seen: a large table, almost nothing pending.
        await sql.unsafe("analyze outbox_events")
        await sql.unsafe(
          `insert into outbox_events (aggregate_type, aggregate_id, aggregate_seq, event_type, payload)
           select 'order', 'new-' || i, 1, 'OrderCreated', '{}'::jsonb from generate_series(0, 19999) as i`
        )
        await sql.unsafe("update outbox_events set status = 'published' where aggregate_id like 'new-%' and aggregate_id not like 'new-1999_'")
        const plan = (settings: boolean) =>
          sql.begin(async (tx) => {
            if (settings) await tx.unsafe(claimSettings)
            const [row] = await tx.unsafe<Array<{ "QUERY PLAN": unknown }>>(`explain (analyze, format json) ${claimBatch}`, [future, 10])
            return (row!["QUERY PLAN"] as Array<{ Plan: PlanNode }>)[0]!.Plan
          })
        // Left to the statistics, the planner reads every entry the pending index still holds.
        expect(rowsRead(await plan(false))).toBeGreaterThan(20_000)
        const walked = await plan(true)
        expect(nodeTypes(walked)).not.toContain("Bitmap Index Scan")
        expect(nodeTypes(walked)).not.toContain("Sort")
        const read = rowsRead(walked)
        expect(read).toBeGreaterThanOrEqual(10)
        expect(read).toBeLessThan(200)
      } finally {
        await sql.unsafe("alter table outbox_events reset (autovacuum_enabled)")
      }
    }, 30_000)
  })
}

interface PlanNode {
  readonly "Node Type": string
  readonly "Actual Rows": number
  readonly "Actual Loops": number
  readonly Plans?: ReadonlyArray<PlanNode>
}

const nodeTypes = (node: PlanNode): Array<string> => [node["Node Type"], ...(node.Plans ?? []).flatMap(nodeTypes)]

/** Rows every scan of the plan produced, summed over its loops. */
const rowsRead = (node: PlanNode): number =>
  (node["Node Type"].includes("Scan") ? node["Actual Rows"] * node["Actual Loops"] : 0) +
  (node.Plans ?? []).reduce((sum, child) => sum + rowsRead(child), 0)
