/**
 * The orders migrations on a backend: up creates what the API and the relay rely on (checks,
 * the claim index, the NOTIFY trigger), down removes all of it.
 */
import { expect, test } from "bun:test"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import type * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import { SqlDatabase, type SqlError } from "../../src/capabilities/SqlDatabase.ts"
import * as Orders from "../../src/orders/sql.ts"
import { migrate } from "../../src/sql/migrations.ts"

const tables = ["idempotency_keys", "order_items", "orders", "outbox_aggregate_seqs", "outbox_events"]

const existing = SqlDatabase.use((db) =>
  db.query<{ name: string }>(
    `select table_name as name from information_schema.tables
     where table_schema = current_schema() and table_name = any($1::text[]) order by 1`,
    [tables]
  )
).pipe(Effect.map((rows) => rows.map((row) => row.name)))

const insertEvent = (status = "pending") =>
  SqlDatabase.use((db) =>
    db.query(
      `insert into outbox_events (aggregate_type, aggregate_id, aggregate_seq, event_type, payload, status)
       values ('order', $1, 1, 'OrderCreated', '{}'::jsonb, $2)`,
      [crypto.randomUUID(), status]
    )
  )

export const migrationsSuite = (layer: () => Layer.Layer<SqlDatabase, SqlError>) => {
  const run = <A, E>(effect: Effect.Effect<A, E, SqlDatabase>) => Effect.runPromise(Effect.provide(effect, layer()))
  const options = { table: Orders.migrationsTable }

  test("up creates the tables, the status check and a trigger that NOTIFYs the relay; down removes them", () =>
    run(Effect.gen(function*() {
      const applied = yield* migrate(Orders.migrations, { ...options, direction: "up" })
      expect(applied.map((m) => m.name)).toEqual(["orders-tables", "outbox-events", "outbox-retention", "outbox-claim-indexes", "outbox-position-unindexed"])
      expect(yield* existing).toEqual(tables)

      const bad = yield* Effect.flip(insertEvent("sent"))
      expect(bad.code).toBe("23514")
      // The claim takes a seq 1 row without looking for earlier ones: none may come before it.
      const beforeFirst = yield* Effect.flip(SqlDatabase.use((db) =>
        db.query(
          `insert into outbox_events (aggregate_type, aggregate_id, aggregate_seq, event_type, payload)
           values ('order', $1, 0, 'OrderCreated', '{}'::jsonb)`,
          [crypto.randomUUID()]
        )
      ))
      expect(beforeFirst.code).toBe("23514")

      const db = yield* SqlDatabase
      const ready = yield* Deferred.make<void>()
      const heard = yield* db.listen(Orders.outboxChannel).pipe(
        Stream.tap((payload) => payload === "ready" ? Deferred.succeed(ready, undefined) : Effect.void),
        Stream.filter((payload) => payload !== "ready"),
        Stream.take(1),
        Stream.runCollect,
        Effect.forkChild
      )
      // The subscription starts in the background; ping until it hears one instead of guessing a delay.
      const pinger = yield* db.notify(Orders.outboxChannel, "ready").pipe(
        Effect.andThen(Effect.sleep("25 millis")),
        Effect.forever,
        Effect.forkChild
      )
      yield* Deferred.await(ready).pipe(Effect.timeout("10 seconds"))
      yield* Fiber.interrupt(pinger)
      yield* insertEvent()
      expect(yield* Fiber.join(heard).pipe(Effect.timeout("10 seconds"))).toEqual([""])

      const [plan] = yield* db.query<{ indexdef: string }>(
        "select indexdef from pg_indexes where indexname = 'outbox_events_pending' and schemaname = current_schema()"
      )
      expect(plan!.indexdef).toContain("WHERE (status = 'pending'::text)")
      const claimIndexes = yield* db.query<{ indexname: string; indexdef: string }>(
        `select indexname, indexdef from pg_indexes
         where indexname in ('outbox_events_claim', 'outbox_events_unpublished') and schemaname = current_schema() order by 1`
      )
      expect(claimIndexes.map((i) => i.indexname)).toEqual(["outbox_events_claim", "outbox_events_unpublished"])
      expect(claimIndexes[0]!.indexdef).toContain("(\"position\") WHERE (status = 'pending'::text)")
      expect(claimIndexes[1]!.indexdef).toContain("WHERE (status <> 'published'::text)")
      // The claim index is the only one on `position`: a unique one would cost every write.
      const onPosition = yield* db.query<{ indexname: string }>(
        `select indexname from pg_indexes
         where tablename = 'outbox_events' and schemaname = current_schema() and indexdef like '%("position")%' order by 1`
      )
      expect(onPosition.map((i) => i.indexname)).toEqual(["outbox_events_claim"])

      const [keys] = yield* db.query<{ indexdef: string }>(
        "select indexdef from pg_indexes where indexname = 'idempotency_keys_created' and schemaname = current_schema()"
      )
      expect(keys!.indexdef).toContain("(created_at)")

      const reverted = yield* migrate(Orders.migrations, { ...options, direction: "down", steps: 5 })
      expect(reverted.map((m) => m.name)).toEqual(["outbox-position-unindexed", "outbox-claim-indexes", "outbox-retention", "outbox-events", "orders-tables"])
      expect(yield* existing).toEqual([])
      // In this schema only: other suites sharing the server have the function in theirs.
      const [fn] = yield* db.query<{ n: number }>(
        "select count(*)::int as n from pg_proc where proname = 'outbox_events_notify' and pronamespace = current_schema()::regnamespace"
      )
      expect(fn!.n).toBe(0)

      // And up again: down left nothing behind that would stop it.
      yield* migrate(Orders.migrations, { ...options, direction: "up" })
      expect(yield* existing).toEqual(tables)
    })), 30_000)
}
