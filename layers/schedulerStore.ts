/**
 * The SchedulerStore a program runs on, chosen from its database configuration (see
 * `database.ts`): on PostgreSQL when `DATABASE_URL` or `DB_*` is set, so replicas share claims and
 * history; on PGlite in `PGLITE_DATA_DIR` when that is set, so one embedded scheduler keeps its
 * history across restarts; in memory otherwise (the embedded default: one process, history gone
 * at exit). On a database, readiness gets the check "database".
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { SchedulerStore, type SchedulerStoreError } from "../src/capabilities/SchedulerStore.ts"
import type { SqlDatabase, SqlError } from "../src/capabilities/SqlDatabase.ts"
import type { Readiness } from "../src/runtime/Readiness.ts"
import * as SqlStore from "../src/scheduler/sqlStore.ts"
import { registerDatabaseReadiness } from "../src/sql/health.ts"
import * as Database from "./database.ts"
import * as MemoryStore from "./memory/schedulerStore.ts"

export type Backend = "postgres" | "pglite" | "memory"

export const backendOf = (database: Database.Options): Backend =>
  database.backend === "postgres" ? "postgres" : database.pglite.dataDir !== undefined ? "pglite" : "memory"

/**
 * `sql` is the database layer to use [`Database.layer(database)`]: pass the one the jobs use too,
 * and the store and the jobs share one pool (one layer value is built once).
 */
export const layer = (
  database: Database.Options,
  sql: Layer.Layer<SqlDatabase, SqlError> = Database.layer(database)
): Layer.Layer<SchedulerStore, SchedulerStoreError | SqlError, Readiness> =>
  backendOf(database) === "memory"
    ? MemoryStore.layer()
    : Layer.effect(SchedulerStore, Effect.tap(SqlStore.make, () => registerDatabaseReadiness())).pipe(Layer.provide(sql))
