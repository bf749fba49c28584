/**
 * layers/database.ts: which SQL backend a configuration picks, and the "database" readiness check.
 */
import { describe, expect, test } from "bun:test"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Database from "../../layers/database.ts"
import { makeClient, SqlDatabase, SqlError } from "../../src/capabilities/SqlDatabase.ts"
import { load, providerFrom } from "../../src/runtime/config.ts"
import { Readiness } from "../../src/runtime/Readiness.ts"
import { postgresUrl, probePostgres, requireServer } from "../support/servers.ts"

const withEnv = (env: Record<string, string>) => Effect.provideService(ConfigProvider.ConfigProvider, providerFrom([], env))

const choose = (env: Record<string, string>) => Effect.runPromise(Effect.result(load(Database.config)).pipe(withEnv(env)))

/** Which database the layer built from `env` talks to: PGlite has no server port. */
const whereAmI = (env: Record<string, string>) =>
  Effect.runPromise(
    SqlDatabase.use((db) => db.query<{ port: number | null; db: string }>("select inet_server_port() as port, current_database() as db")).pipe(
      Effect.map((rows) => rows[0]),
      Effect.provide(Database.layerConfig),
      withEnv(env)
    )
  )

// Booting PGlite takes seconds on a busy machine.
const slow = 30_000

describe("database backend from configuration", () => {
  test("no server variable picks embedded PGlite, in memory", async () => {
    // DB_PATH is the sales service's SQLite file; an empty DATABASE_URL (a blank .env line) is unset.
    const chosen = await choose({ DB_PATH: "./database.db", DB_MAX_CONNECTIONS: "5", DATABASE_URL: "" })
    expect(chosen._tag === "Success" && chosen.success).toEqual({ backend: "pglite", pglite: {} })
    expect(await whereAmI({})).toEqual({ port: null, db: "postgres" })
  }, slow)

  test("DATABASE_URL picks PostgreSQL at that URL", async () => {
    const chosen = await choose({ DATABASE_URL: "postgres://app:secret@db.internal:6543/orders" })
    expect(chosen._tag === "Success" && chosen.success).toEqual({
      backend: "postgres",
      postgres: { url: "postgres://app:secret@db.internal:6543/orders", max: 25, maxLifetime: Duration.minutes(5) }
    })
  })

  test("any one of the Go services' DB_* variables picks PostgreSQL, the rest defaulting", async () => {
    for (const [name, value] of [["DB_HOST", "db.internal"], ["DB_PORT", "6543"], ["DB_USER", "app"], ["DB_PASSWORD", "s"], ["DB_NAME", "orders"]]) {
      const chosen = await choose({ [name!]: value! })
      expect(chosen._tag === "Success" && chosen.success && chosen.success.backend).toBe("postgres")
    }
    const chosen = await choose({ DB_HOST: "db.internal", DB_NAME: "orders", DB_PASSWORD: "p@ss" })
    expect(chosen._tag === "Success" && chosen.success).toEqual({
      backend: "postgres",
      postgres: { url: "postgres://postgres:p%40ss@db.internal:5432/orders?sslmode=disable", max: 25, maxLifetime: Duration.minutes(5) }
    })
    const defaults = await choose({ DB_HOST: "db.internal" })
    expect(defaults._tag === "Success" && defaults.success.backend === "postgres" && defaults.success.postgres.url)
      .toBe("postgres://postgres:postgres@db.internal:5432/txstream?sslmode=disable")
  })

  test("the original's DB_SSL_MODE, DB_MAX_OPEN_CONNS and DB_CONN_MAX_LIFETIME are read, and the other spellings too", async () => {
    const original = await choose({ DB_HOST: "h", DB_SSL_MODE: "require", DB_MAX_OPEN_CONNS: "7", DB_CONN_MAX_LIFETIME: "90s" })
    expect(original._tag === "Success" && original.success).toEqual({
      backend: "postgres",
      postgres: { url: "postgres://postgres:postgres@h:5432/txstream?sslmode=require", max: 7, maxLifetime: Duration.seconds(90) }
    })
    const other = await choose({ DB_HOST: "h", DB_SSLMODE: "verify-full", DB_MAX_CONNECTIONS: "3" })
    expect(other._tag === "Success" && other.success.backend === "postgres" && other.success.postgres)
      .toMatchObject({ url: "postgres://postgres:postgres@h:5432/txstream?sslmode=verify-full", max: 3 })
    // A bad value names its own variable; it never falls through to the other spelling.
    for (const [name, value] of [["DB_SSL_MODE", "sometimes"], ["DB_MAX_OPEN_CONNS", "0"], ["DB_CONN_MAX_LIFETIME", "soon"]] as const) {
      const bad = await choose({ DB_HOST: "h", [name]: value, DB_SSLMODE: "disable", DB_MAX_CONNECTIONS: "5" })
      expect(bad._tag === "Failure" && bad.failure.variable).toBe(name)
    }
  })

  test("a bad DATABASE_URL is a config error naming it, without its password", async () => {
    for (const bad of ["mysql://app:secret@db/orders", "postgres//app:secret@db/orders"]) {
      const chosen = await choose({ DATABASE_URL: bad })
      expect(chosen._tag).toBe("Failure")
      if (chosen._tag === "Failure") {
        expect(chosen.failure.variable).toBe("DATABASE_URL")
        expect(chosen.failure.message).toContain("DATABASE_URL: expected a URL starting with postgres://")
        expect(chosen.failure.message).not.toContain("secret")
      }
    }
    const port = await choose({ DB_HOST: "db.internal", DB_PORT: "http" })
    expect(port._tag === "Failure" && port.failure.variable).toBe("DB_PORT")
  })

  test("PGLITE_DATA_DIR keeps the embedded database across layers", async () => {
    const dir = mkdtempSync(join(tmpdir(), "queueworks-pglite-"))
    try {
      const env = { PGLITE_DATA_DIR: dir }
      const chosen = await choose(env)
      expect(chosen._tag === "Success" && chosen.success).toEqual({ backend: "pglite", pglite: { dataDir: dir } })
      const inLayer = <A>(effect: Effect.Effect<A, SqlError, SqlDatabase>) =>
        Effect.runPromise(effect.pipe(Effect.provide(Database.layerConfig), withEnv(env)))
      await inLayer(SqlDatabase.use((db) => db.query("create table kept (id int); insert into kept values (7)")))
      expect(await inLayer(SqlDatabase.use((db) => db.query("select id from kept")))).toEqual([{ id: 7 }])
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  }, slow)

  test("with DATABASE_URL the layer connects to the server, and says which one when it cannot", async () => {
    const error = await Effect.runPromise(
      SqlDatabase.use((db) => db.query("select 1")).pipe(
        Effect.provide(Database.layerConfig),
        withEnv({ DATABASE_URL: "postgres://app:secret@127.0.0.1:1/orders" }),
        Effect.flip
      )
    )
    expect(error).toBeInstanceOf(SqlError)
    expect((error as SqlError).operation).toBe("connect to app@127.0.0.1:1/orders")
    expect((error as SqlError).message).not.toContain("secret")
  })
})

const url = postgresUrl()
if (await requireServer("PostgreSQL", probePostgres(url))) {
  test("DATABASE_URL of a reachable server: statements run there", async () => {
    expect(await whereAmI({ DATABASE_URL: url })).toEqual({ port: Number(new URL(url).port || 5432), db: new URL(url).pathname.slice(1) })
  })
}

describe("database readiness", () => {
  test("healthCheck is true while the database answers, false (not a failure) while it cannot", () =>
    Effect.runPromise(Effect.gen(function*() {
      const db = yield* SqlDatabase
      expect(yield* Database.healthCheck(db)).toBe(true)

      // PGlite's single session is held by this open transaction, so `select 1` cannot answer.
      const opened = yield* Deferred.make<void>()
      const holder = yield* db.transaction(() => Deferred.succeed(opened, undefined).pipe(Effect.andThen(Effect.never))).pipe(
        Effect.forkChild
      )
      yield* Deferred.await(opened)
      const started = Date.now()
      expect(yield* Database.healthCheck(db, "200 millis")).toBe(false)
      expect(Date.now() - started).toBeLessThan(2_000)
      yield* Fiber.interrupt(holder)
      expect(yield* Database.healthCheck(db)).toBe(true)

      const down = makeClient(() => Effect.fail(new SqlError({ operation: "query", cause: "connection refused" })))
      expect(yield* Database.healthCheck(down)).toBe(false)
    }).pipe(Effect.provide(Database.layer({ backend: "pglite", pglite: {} })))), slow)

  test("registerDatabaseReadiness reports the check by the name \"database\"", () =>
    Effect.runPromise(Effect.gen(function*() {
      yield* Database.registerDatabaseReadiness()
      const report = yield* (yield* Readiness).report
      expect(report.checks).toEqual({ database: true })
      expect(report.ready).toBe(true)
    }).pipe(Effect.provide(Layer.mergeAll(Readiness.layer, Database.layer({ backend: "pglite", pglite: {} }))))), slow)
})
