/**
 * The relay's NOTIFY wake-up on a real PostgreSQL, in a database of its own (NOTIFY reaches
 * every session of a database, so other tests' outboxes would wake this relay too).
 */
import { afterAll, describe, expect, test } from "bun:test"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import postgres from "postgres"
import * as PostgresSql from "../../layers/postgres/sql.ts"
import { Publisher } from "../../src/capabilities/Publisher.ts"
import { SqlDatabase, type SqlDatabaseShape } from "../../src/capabilities/SqlDatabase.ts"
import { makeRelay } from "../../src/outbox/relay.ts"
import { config, events, insertEvent, migrated, recorder, recordingPublisher, until } from "./support.ts"
import { freshName, postgresUrl, probePostgres, requireServer } from "../support/servers.ts"

const adminUrl = postgresUrl()

if (await requireServer("PostgreSQL", probePostgres(adminUrl))) {
  const name = freshName("wake")
  const admin = postgres(adminUrl, { max: 1, onnotice: () => {} })
  await admin.unsafe(`create database ${name}`)
  const url = new URL(adminUrl)
  url.pathname = `/${name}`
  afterAll(async () => {
    await admin.unsafe(`drop database if exists ${name} with (force)`)
    await admin.end({ timeout: 5 })
  })

  /** This database on PostgreSQL, seen through `wrap`. */
  const onPostgres = (wrap: (db: SqlDatabaseShape) => SqlDatabaseShape) =>
    Layer.effect(SqlDatabase, SqlDatabase.use((db) => Effect.succeed(wrap(db)))).pipe(
      Layer.provideMerge(PostgresSql.layer({ url: url.toString(), max: 6 }))
    )
  const published = (n: number) => Effect.map(events, (rows) => rows.length === n && rows.every((row) => row.status === "published"))

  describe("outbox relay wake-up on PostgreSQL", () => {
    test("a NOTIFY wakes one waiting worker, not the pool: each event costs its claim and the claim after it, none from the other workers", async () => {
      const r = recorder()
      const counts = { claims: 0, waits: 0 }
      // Counts claims, and the workers done with their empty claim's `nextDue`, which then wait for a wake-up.
      const counted = onPostgres((db) => ({
        ...db,
        transaction: (body) =>
          db.transaction((tx) =>
            body({
              ...tx,
              query: (text, params) => {
                if (text.includes("skip locked")) counts.claims++
                return tx.query(text, params)
              },
              // An empty claim asks when the next row falls due as it commits, then waits.
              commitAfter: (text, params) =>
                text.includes("min(next_attempt_at)")
                  ? Effect.tap(tx.commitAfter(text, params), () => Effect.sync(() => counts.waits++))
                  : tx.commitAfter(text, params)
            })
          )
      }))
      await Effect.runPromise(
        Effect.gen(function*() {
          yield* migrated
          const relay = yield* makeRelay(config({ poolSize: 3, pollInterval: Duration.hours(1) }))
          const fiber = yield* Effect.forkChild(relay.run)
          yield* until("every worker waiting", Effect.sync(() => counts.waits >= 3))
          expect(counts.claims).toBe(3)
          for (const [i, aggregate] of ["one", "two", "three"].entries()) {
            yield* insertEvent(aggregate)
            yield* until(`event ${aggregate} published`, published(i + 1))
            // The worker that published it claims once more (empty) and waits again.
            yield* until(`the worker waiting after ${aggregate}`, Effect.sync(() => counts.waits >= 4 + i))
            // Waking the pool cost two more (empty) claims per event, one per other worker.
            expect(counts.claims).toBe(3 + 2 * (i + 1))
          }
          expect(r.accepted.map((m) => m.key)).toEqual(["one", "two", "three"])
          yield* Fiber.interrupt(fiber)
        }).pipe(
          Effect.provide(Layer.mergeAll(counted, recordingPublisher(r))),
          Effect.provideService(Metric.MetricRegistry, new Map())
        )
      )
    }, 60_000)

    test("with the worker busy, NOTIFYs turn the LISTEN off; when it finds nothing it turns it on and claims again, so a row committed in between is not left to the poll", async () => {
      const accepted: Array<string> = []
      const entered = { calls: 0 }
      const gate = Deferred.makeUnsafe<void>()
      // Holds every publish until the gate opens, so the workers stay busy.
      const gated = Layer.succeed(Publisher, Publisher.make("test", (_topic, messages) =>
        Effect.suspend(() => {
          entered.calls++
          return Effect.andThen(Deferred.await(gate), Effect.sync(() => accepted.push(...messages.map((m) => m.key))))
        })))
      const subscribes = { count: 0 }
      // The second LISTEN (after the relay turned the first off) is preceded by a commit of
      // "late": after the empty claim that made the worker listen, before the LISTEN, so no
      // NOTIFY announces it. Only the claim after the LISTEN can find it (the poll is an hour).
      const watched = onPostgres((db) => ({
        ...db,
        subscribe: (channel) =>
          Effect.suspend(() => {
            // Due before the worker's empty claim, as a row of a transaction that began
            // before it and committed after: `nextDue` (rows falling due later) misses it.
            const late = ++subscribes.count === 2
              ? insertEvent("late").pipe(
                Effect.andThen(db.query(`update outbox_events set next_attempt_at = now() - interval '1 hour' where aggregate_id = 'late'`)),
                Effect.provideService(SqlDatabase, db),
                Effect.asVoid
              )
              : Effect.void
            return Effect.andThen(late, db.subscribe(channel))
          })
      }))
      const probe = postgres(url.toString(), { max: 1, onnotice: () => {} })
      const unlistened = Effect.promise(() =>
        probe.unsafe(`select 1 from pg_stat_activity where datname = $1 and query ilike 'unlisten%'`, [name])
      ).pipe(Effect.map((rows) => rows.length > 0))
      try {
        await Effect.runPromise(
          Effect.gen(function*() {
            yield* migrated
            yield* SqlDatabase.use((db) => db.query("delete from outbox_events"))
            // One worker: no other could claim the late row by chance.
            const relay = yield* makeRelay(config({ poolSize: 1, pollInterval: Duration.hours(1) }))
            const fiber = yield* Effect.forkChild(relay.run)
            yield* until("the LISTEN on", Effect.sync(() => subscribes.count === 1))
            yield* insertEvent("a")
            yield* until("the worker publishing", Effect.sync(() => entered.calls === 1))
            for (let i = 0; i < 40; i++) yield* insertEvent(`c${i}`)
            yield* until("the LISTEN off after NOTIFYs that found nobody waiting", unlistened)
            expect(subscribes.count).toBe(1)
            yield* Deferred.succeed(gate, undefined)
            yield* until("every event published, the late one too", published(42), 20_000)
            expect(subscribes.count).toBe(2)
            expect(accepted).toContain("late")
            expect(accepted.length).toBe(42)
            yield* Fiber.interrupt(fiber)
          }).pipe(
            Effect.provide(Layer.mergeAll(watched, gated)),
            Effect.provideService(Metric.MetricRegistry, new Map())
          )
        )
      } finally {
        await probe.end({ timeout: 5 })
      }
    }, 60_000)
  })
}
