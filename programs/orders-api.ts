/**
 * The orders API (SPEC §2): `POST /orders` and `GET /orders/:id` on SERVER_PORT [8080], each
 * order written with its OrderCreated outbox event in one transaction.
 *
 * Database: DATABASE_URL or DB_* → PostgreSQL, else embedded PGlite (PGLITE_DATA_DIR to keep
 * it). The orders migrations run at start on either (they take an advisory lock, so replicas
 * starting together apply them once).
 *
 *   bun run programs/orders-api.ts [--server-port 8080]
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Database from "../layers/database.ts"
import { serve } from "../layers/platform/httpServer.ts"
import { baseLayer, loadBaseConfig, withReadiness } from "../layers/platform/program.ts"
import { runMain } from "../layers/platform/runMain.ts"
import { makeOrdersApi } from "../src/orders/api.ts"
import { serverConfig } from "../src/orders/config.ts"
import * as Orders from "../src/orders/sql.ts"
import { load } from "../src/runtime/config.ts"
import { registerDatabaseReadiness } from "../src/sql/health.ts"
import { migrate } from "../src/sql/migrations.ts"

const program = Effect.gen(function*() {
  const base = yield* loadBaseConfig("orders-api")
  const server = yield* load(serverConfig)
  const database = yield* load(Database.config)
  const api = Effect.gen(function*() {
    yield* migrate(Orders.migrations, { direction: "up", table: Orders.migrationsTable })
    yield* registerDatabaseReadiness()
    const app = yield* makeOrdersApi()
    const bound = yield* serve(app.fetch, { port: server.port, hostname: server.hostname, drainTimeout: server.timeout })
    yield* Effect.log(`orders API listening on ${bound.url}`).pipe(Effect.annotateLogs({ bind: `${server.hostname}:${bound.port}` }))
    return yield* Effect.never
  }).pipe(Effect.scoped)
  yield* withReadiness(api).pipe(
    Effect.provide(Database.layer(database).pipe(Layer.provideMerge(baseLayer(base))))
  )
})

runMain(program, { name: "orders-api" })
