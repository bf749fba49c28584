/**
 * Scheduler replicas against a real PostgreSQL, in one process on the live clock: each replica
 * has a pool of its own, so the database sees three clients racing for every occurrence.
 * (Separate processes, and one killed with SIGKILL, are the program tests' part.)
 */
import { afterAll, describe, expect, test } from "bun:test"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Logger from "effect/Logger"
import * as Scope from "effect/Scope"
import * as PostgresSql from "../../layers/postgres/sql.ts"
import { SchedulerStore, type SchedulerStoreShape } from "../../src/capabilities/SchedulerStore.ts"
import { SqlDatabase } from "../../src/capabilities/SqlDatabase.ts"
import { type JobDefinition, register } from "../../src/scheduler/job.ts"
import { CurrentRun, makeScheduler } from "../../src/scheduler/scheduler.ts"
import * as SqlStore from "../../src/scheduler/sqlStore.ts"
import { dropPostgresSchema, freshSchema, postgresUrl, probePostgres, requireServer } from "../support/servers.ts"

const url = postgresUrl()

const openStore = (schema: string) =>
  Effect.flatMap(PostgresSql.make({ url, schema, max: 3 }), (db) => SqlStore.make.pipe(Effect.provideService(SqlDatabase, db)))

const replica = (store: SchedulerStoreShape, instance: string, definitions: ReadonlyArray<JobDefinition<any, never>>) =>
  Effect.gen(function*() {
    const jobs = yield* register(definitions, { timeZone: "UTC", timeout: Duration.seconds(30) })
    const scheduler = yield* makeScheduler(jobs, {
      instance,
      maxConcurrent: 10,
      shutdownTimeout: "5 seconds",
      retention: "7 days",
      lease: "1 second",
      sweepInterval: "200 millis"
    }).pipe(Effect.provideService(SchedulerStore, store))
    return yield* Effect.forkChild(scheduler.run, { startImmediately: true })
  })

/** Polls `check` on the live clock until it holds (the runs come at their own pace). */
const eventually = <A>(what: string, read: Effect.Effect<A, unknown>, check: (a: A) => boolean, within = 30_000) =>
  Effect.gen(function*() {
    const deadline = Date.now() + within
    while (true) {
      const value = yield* read
      if (check(value)) return value
      if (Date.now() > deadline) return yield* Effect.die(new Error(`timed out waiting for ${what}`))
      yield* Effect.sleep("50 millis")
    }
  })

if (await requireServer("PostgreSQL", probePostgres(url))) {
  const schemas: Array<string> = []
  afterAll(() => Promise.all(schemas.map((schema) => dropPostgresSchema(url, schema))))
  const run = <A, E>(body: (schema: string) => Effect.Effect<A, E, Scope.Scope>) => {
    const schema = freshSchema()
    schemas.push(schema)
    return Effect.runPromise(Effect.scoped(body(schema)).pipe(Effect.provide(Logger.layer([]))))
  }

  describe("scheduler replicas on PostgreSQL", () => {
    test("three replicas with the same @every job run each occurrence exactly once", () =>
      run((schema) =>
        Effect.gen(function*() {
          const executed: Array<string> = []
          const tick: JobDefinition<never, never> = {
            name: "tick",
            schedule: "@every 200ms",
            overlap: "allow",
            run: Effect.flatMap(CurrentRun, (r) => Effect.sync(() => executed.push(`${r!.scheduledAt.toISOString()} by ${r!.instance}`)))
          }
          const stores = [yield* openStore(schema), yield* openStore(schema), yield* openStore(schema)]
          const fibers = yield* Effect.forEach(stores, (store, i) => replica(store, `replica-${i + 1}`, [tick]))
          yield* eventually("20 runs", Effect.sync(() => executed.length), (n) => n >= 20)
          yield* Effect.forEach(fibers, Fiber.interrupt, { discard: true })
          const runs = yield* stores[0]!.recentRuns("tick", 10_000)
          const occurrences = runs.map((r) => r.scheduledAt.toISOString())
          expect(new Set(occurrences).size).toBe(runs.length) // no occurrence twice in the history
          expect(runs.every((r) => r.attempt === 1 && r.outcome === "succeeded")).toBe(true)
          const times = executed.map((line) => line.split(" by ")[0]!)
          expect(new Set(times).size).toBe(executed.length) // no occurrence executed twice
          expect([...times].sort()).toEqual([...occurrences].sort())
        })
      ), 60_000)

    test("a run whose replica died is taken over once its lease lapses, and retried as attempt 2", () =>
      run((schema) =>
        Effect.gen(function*() {
          const a = yield* openStore(schema)
          const b = yield* openStore(schema)
          const now = Date.now()
          const claimed = yield* a.claim(
            { job: "report", scheduledAt: new Date(now - 60_000), trigger: "schedule" },
            { instance: "killed", now: new Date(now), until: new Date(now + 1000) },
            { overlap: "skip" }
          )
          expect(claimed._tag).toBe("Claimed")
          const ran: Array<number> = []
          const report: JobDefinition<never, never> = {
            name: "report",
            schedule: "@daily",
            retry: { base: "100 millis", max: "1 second", maxAttempts: 3 },
            run: Effect.flatMap(CurrentRun, (r) => Effect.sync(() => ran.push(r!.attempt)))
          }
          const fibers = [yield* replica(b, "survivor-1", [report]), yield* replica(a, "survivor-2", [report])]
          const runs = yield* eventually(
            "the retry",
            a.recentRuns("report", 10),
            (runs) => runs.some((r) => r.attempt === 2 && r.outcome === "succeeded")
          )
          yield* Effect.forEach(fibers, Fiber.interrupt, { discard: true })
          expect(ran).toEqual([2])
          const byAttempt = [...runs].sort((x, y) => x.attempt - y.attempt)
          expect(byAttempt.map((r) => [r.attempt, r.outcome])).toEqual([[1, "interrupted"], [2, "succeeded"]])
          expect(byAttempt[0]!.instance).toBe("killed")
          expect(byAttempt[0]!.error).toContain("lease expired")
          expect(["survivor-1", "survivor-2"]).toContain(byAttempt[1]!.instance)
        })
      ), 60_000)
  })
}
