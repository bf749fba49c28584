/**
 * The example jobs against real servers: `database-cleanup` on a PostgreSQL table (batches, the
 * cut-off from the run's scheduled time, live rows and rows deleted recently kept), and
 * `weekly-report` aggregating the orders tables of a real PostgreSQL for the week before its
 * scheduled time in its zone (a DST week) and publishing it through the RabbitMQ Publisher, where
 * a consumer written against AMQP directly receives it.
 */
import { afterAll, describe, expect, test } from "bun:test"
import * as amqp from "amqplib"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as PostgresSql from "../../layers/postgres/sql.ts"
import * as RabbitMq from "../../layers/rabbitmq/index.ts"
import type { Run } from "../../src/capabilities/SchedulerStore.ts"
import { SqlDatabase } from "../../src/capabilities/SqlDatabase.ts"
import { load } from "../../src/runtime/config.ts"
import * as Orders from "../../src/orders/sql.ts"
import { migrate } from "../../src/sql/migrations.ts"
import { cleanupConfig, databaseCleanup, parseTarget } from "../../src/scheduler/jobs/databaseCleanup.ts"
import { previousWeek, weeklyReport } from "../../src/scheduler/jobs/weeklyReport.ts"
import { CurrentRun } from "../../src/scheduler/scheduler.ts"
import * as ConfigProvider from "effect/ConfigProvider"
import {
  dropPostgresSchema,
  freshName,
  freshSchema,
  postgresUrl,
  probePostgres,
  probeRabbitmq,
  rabbitmqUrl,
  requireServer
} from "../support/servers.ts"

const url = postgresUrl()
const rabbit = rabbitmqUrl()
const hasPostgres = await requireServer("PostgreSQL", probePostgres(url))
const hasRabbitmq = await requireServer("RabbitMQ", probeRabbitmq(rabbit))
const schemas: Array<string> = []
afterAll(() => Promise.all(schemas.map((schema) => dropPostgresSchema(url, schema))))

const database = () => {
  const schema = freshSchema()
  schemas.push(schema)
  return PostgresSql.layer({ url, schema, max: 2 })
}

/** A run of `job` scheduled at `at`, as the scheduler hands it to the job's effect. */
const runAt = (job: string, at: string): Run => ({
  id: "1",
  job,
  scheduledAt: new Date(at),
  trigger: "schedule",
  attempt: 1,
  instance: "test",
  startedAt: new Date(at),
  endedAt: null,
  leaseUntil: null,
  outcome: "running",
  error: null,
  errorStack: null,
  retryAt: null
})

const quiet = <A, E>(effect: Effect.Effect<A, E>) => Effect.runPromise(effect.pipe(Effect.provide(Logger.layer([]))))

describe("database-cleanup", () => {
  test("CLEANUP_TABLES names tables (and columns); a bad entry stops the start naming the variable", async () => {
    expect(parseTarget("sessions")).toEqual({ table: "sessions", column: "deleted_at" })
    expect(parseTarget(" audit.events:removed_at ")).toEqual({ table: "audit.events", column: "removed_at" })
    for (const bad of ["", "a.b.c", "x;drop table y", "t:c:d", "t:\"c\""]) expect(parseTarget(bad)).toBeUndefined()
    const read = (env: Record<string, string>) =>
      Effect.runPromise(Effect.result(load(cleanupConfig)).pipe(Effect.provide(ConfigProvider.layer(ConfigProvider.fromEnv({ env })))))
    expect(await read({})).toMatchObject({ _tag: "Success", success: undefined })
    const ok = await read({ CLEANUP_TABLES: "sessions, audit.events:removed_at", CLEANUP_RETENTION: "30d", CLEANUP_BATCH_SIZE: "50" })
    expect(ok._tag).toBe("Success")
    if (ok._tag === "Success") {
      expect(ok.success?.targets).toEqual([{ table: "sessions", column: "deleted_at" }, { table: "audit.events", column: "removed_at" }])
      expect(Duration.toMillis(ok.success!.retention)).toBe(30 * 86_400_000)
      expect(ok.success?.batchSize).toBe(50)
    }
    const bad = await read({ CLEANUP_TABLES: "sessions,drop table x" })
    expect(bad._tag).toBe("Failure")
    expect(String(bad._tag === "Failure" ? bad.failure.message : "")).toContain("CLEANUP_TABLES")
  })

  if (hasPostgres) {
    test("deletes, in batches, the rows soft-deleted more than 90 days before the run's scheduled time, and reports how many", () =>
      quiet(Effect.gen(function*() {
        const db = yield* SqlDatabase
        yield* db.query(`create table sessions (id int primary key, deleted_at timestamptz)`)
        yield* db.query(`create table notes (id int primary key, removed_at timestamptz)`)
        const at = "2026-06-01T02:00:00.000Z"
        const day = 86_400_000
        const ago = (days: number) => new Date(Date.parse(at) - days * day)
        // 2 345 long gone, 7 deleted 89 days before (kept), 5 live (kept), 1 deleted exactly 90 days before (kept: not *more*).
        yield* db.query(`insert into sessions select g, $1::timestamptz - (g % 50) * interval '1 hour' from generate_series(1, 2345) g`, [ago(91)])
        yield* db.query(`insert into sessions select g, $1::timestamptz from generate_series(3001, 3007) g`, [ago(89)])
        yield* db.query(`insert into sessions select g, null from generate_series(4001, 4005) g`)
        yield* db.query(`insert into sessions values (5001, $1::timestamptz)`, [ago(90)])
        yield* db.query(`insert into notes select g, $1::timestamptz from generate_series(1, 3) g`, [ago(365)])
        yield* db.query(`insert into notes values (10, null)`)

        const job = databaseCleanup({
          targets: [{ table: "sessions", column: "deleted_at" }, { table: "notes", column: "removed_at" }],
          retention: Duration.days(90),
          batchSize: 1000
        })
        expect(job.name).toBe("database-cleanup")
        expect(job.schedule).toBe("0 2 * * *")
        const report = (yield* job.run.pipe(Effect.provideService(CurrentRun, runAt("database-cleanup", at)))) as any
        expect(report.cutoff.toISOString()).toBe(ago(90).toISOString())
        expect(report.deleted).toEqual([
          { table: "sessions", rows: 2345, batches: 3 },
          { table: "notes", rows: 3, batches: 1 }
        ])
        const left = yield* db.query<{ id: number }>(`select id from sessions order by id`)
        expect(left.map((r) => r.id)).toEqual([3001, 3002, 3003, 3004, 3005, 3006, 3007, 4001, 4002, 4003, 4004, 4005, 5001])
        expect((yield* db.query<{ id: number }>(`select id from notes`)).map((r) => r.id)).toEqual([10])

        // A second run (a retry of the same occurrence) finds nothing more.
        const again = (yield* job.run.pipe(Effect.provideService(CurrentRun, runAt("database-cleanup", at)))) as any
        expect(again.deleted).toEqual([{ table: "sessions", rows: 0, batches: 0 }, { table: "notes", rows: 0, batches: 0 }])
      }).pipe(Effect.provide(database()))), 60_000)

    test("a table that does not exist fails the run with the database's message", () =>
      quiet(Effect.gen(function*() {
        const job = databaseCleanup({ targets: [{ table: "missing", column: "deleted_at" }], retention: Duration.days(90), batchSize: 10 })
        const result = yield* Effect.result(job.run.pipe(Effect.provideService(CurrentRun, runAt("database-cleanup", "2026-06-01T02:00:00Z"))))
        expect(result._tag).toBe("Failure")
        expect(result._tag === "Failure" ? (result.failure as Error).message : "").toContain(`relation "missing" does not exist`)
      }).pipe(Effect.provide(database()))), 60_000)
  }
})

describe("weekly-report", () => {
  test("the previous week is Monday 00:00 to Monday 00:00 in the zone, 167 hours across the spring DST change", () => {
    // Monday 30 March 2026, 08:00 in Berlin (CEST) = 06:00 UTC; DST began on Sunday 29 March.
    const week = previousWeek(new Date("2026-03-30T06:00:00Z"), "Europe/Berlin")
    expect(week.start.toISOString()).toBe("2026-03-22T23:00:00.000Z")
    expect(week.end.toISOString()).toBe("2026-03-29T22:00:00.000Z")
    // At Monday 00:00 exactly, the week that just ended is the one reported.
    expect(previousWeek(new Date("2026-03-29T22:00:00Z"), "Europe/Berlin").end.toISOString()).toBe("2026-03-29T22:00:00.000Z")
    expect(previousWeek(new Date("2026-01-07T12:00:00Z"), "UTC")).toEqual({ start: new Date("2025-12-29T00:00:00Z"), end: new Date("2026-01-05T00:00:00Z") })
  })

  if (hasPostgres && hasRabbitmq) {
    test("aggregates last week's orders from PostgreSQL and publishes the report as JSON; an AMQP consumer receives it", async () => {
      const exchange = freshName("reports")
      const connection = await amqp.connect(rabbit)
      try {
        const channel = await connection.createChannel()
        await channel.assertExchange(exchange, "topic", { durable: true })
        const { queue } = await channel.assertQueue("", { exclusive: true })
        await channel.bindQueue(queue, exchange, "#")
        const received = new Promise<amqp.ConsumeMessage>((resolve) => {
          void channel.consume(queue, (message) => {
            if (message !== null) resolve(message)
          }, { noAck: true })
        })

        const job = weeklyReport({ topic: exchange, timeZone: "Europe/Berlin" })
        expect([job.name, job.schedule, job.timeZone]).toEqual(["weekly-report", "0 8 * * 1", "Europe/Berlin"])
        const published = await quiet(Effect.gen(function*() {
          yield* migrate(Orders.migrations, { direction: "up", table: Orders.migrationsTable })
          const db = yield* SqlDatabase
          const order = (id: number, customer: string, at: string, items: ReadonlyArray<[string, number, number]>) =>
            Effect.gen(function*() {
              const uuid = `00000000-0000-0000-0000-${String(id).padStart(12, "0")}`
              const total = items.reduce((sum, [, quantity, price]) => sum + quantity * price, 0)
              yield* db.query(`insert into orders (id, customer_id, total_cents, created_at) values ($1::uuid, $2, $3::int8, $4::timestamptz)`, [uuid, customer, total, new Date(at)])
              yield* db.query(Orders.insertItems, [uuid, JSON.stringify(items.map(([sku, quantity, unit_price_cents], i) => ({ line: i + 1, sku, quantity, unit_price_cents })))])
            })
          // Week: 2026-03-22T23:00Z (Mon 00:00 CET) to 2026-03-29T22:00Z (Mon 00:00 CEST).
          yield* order(1, "before", "2026-03-22T22:59:59Z", [["WIDGET", 100, 1]]) // Sunday 23:59:59 in Berlin: the week before
          yield* order(2, "ada", "2026-03-22T23:00:00Z", [["WIDGET", 2, 1250], ["GADGET", 1, 999]])
          yield* order(3, "bob", "2026-03-25T12:00:00Z", [["GADGET", 3, 999]])
          yield* order(4, "ada", "2026-03-29T21:59:59Z", [["BOLT", 10, 5]]) // Sunday 23:59:59 CEST: still in
          yield* order(5, "after", "2026-03-29T22:00:00Z", [["WIDGET", 50, 1]]) // Monday 00:00 CEST: next week
          return (yield* job.run.pipe(Effect.provideService(CurrentRun, runAt("weekly-report", "2026-03-30T06:00:00Z")))) as any
        }).pipe(Effect.provide(Layer.mergeAll(database(), RabbitMq.publisherLayer({ url: rabbit, connectionName: "weekly-report-test" })))))

        const expected = {
          report: "weekly-orders",
          weekStart: "2026-03-22T23:00:00.000Z",
          weekEnd: "2026-03-29T22:00:00.000Z",
          timeZone: "Europe/Berlin",
          orders: 3,
          customers: 2,
          items: 16,
          revenueCents: 2 * 1250 + 999 + 3 * 999 + 10 * 5,
          topSkus: [
            { sku: "GADGET", quantity: 4, revenueCents: 3996 },
            { sku: "WIDGET", quantity: 2, revenueCents: 2500 },
            { sku: "BOLT", quantity: 10, revenueCents: 50 }
          ]
        }
        expect(published).toEqual(expected)
        const message = await Promise.race([
          received,
          new Promise<never>((_, reject) => setTimeout(() => reject(new Error("no report within 10 s")), 10_000))
        ])
        expect(message.fields.exchange).toBe(exchange)
        expect(message.fields.routingKey).toBe("weekly-report")
        expect(message.properties.contentType ?? message.properties.headers?.["content-type"]).toBe("application/json")
        expect(JSON.parse(message.content.toString("utf8"))).toEqual(expected)
        await channel.deleteExchange(exchange)
      } finally {
        await connection.close()
      }
    }, 60_000)
  }
})
