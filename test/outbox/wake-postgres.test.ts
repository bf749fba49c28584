/**
 * The relay's NOTIFY wake-up on a real PostgreSQL, in a database of its own (NOTIFY reaches
 * every session of a database, so other tests' outboxes would wake this relay too).
 */
import { afterAll, describe, expect, test } from "bun:test"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import postgres from "postgres"
import * as PostgresSql from "../../layers/postgres/sql.ts"
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

  describe("outbox relay wake-up on PostgreSQL", () => {
    test("a NOTIFY wakes one waiting worker, not the pool: each event costs its claim and the claim after it, none from the other workers", async () => {
      const r = recorder()
      const counts = { claims: 0, waits: 0 }
      // Counts claims, and the workers done with their `nextDue` query, which then wait for a wake-up.
      const counted = Layer.effect(
        SqlDatabase,
        Effect.gen(function*() {
          const db = yield* SqlDatabase
          const wrapped: SqlDatabaseShape = {
            ...db,
            queryAs: (schema, text, params) =>
              text.includes("min(next_attempt_at)")
                ? Effect.tap(db.queryAs(schema, text, params), () => Effect.sync(() => counts.waits++))
                : db.queryAs(schema, text, params),
            transaction: (body) =>
              db.transaction((tx) =>
                body({
                  ...tx,
                  query: (text, params) => {
                    if (text.includes("skip locked")) counts.claims++
                    return tx.query(text, params)
                  }
                })
              )
          }
          return wrapped
        })
      ).pipe(Layer.provideMerge(PostgresSql.layer({ url: url.toString(), max: 6 })))
      const published = (n: number) => Effect.map(events, (rows) => rows.length === n && rows.every((row) => row.status === "published"))
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
  })
}
