/**
 * SQLite on whatever runtime runs the program: `bun:sqlite` under Bun, `node:sqlite` elsewhere
 * (Deno, Node). The driver module is imported only once chosen: each runtime lacks the other's.
 *
 *   Effect.provide(Sqlite.layer({ path: "./database.db", readOnly: true }))   // SqliteDatabase
 *   Effect.provide(Sqlite.driverLayer)                                          // SqliteDriver
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import {
  SqliteDatabase,
  SqliteDriver,
  type SqliteDriverShape,
  type SqliteError,
  type SqliteOpenOptions
} from "../../src/capabilities/SqliteDatabase.ts"

const underBun = (globalThis as { readonly Bun?: unknown }).Bun !== undefined

export const loadDriver: Effect.Effect<SqliteDriverShape> = Effect.promise(async () =>
  underBun ? (await import("./bun.ts")).driver : (await import("./node.ts")).driver
)

export const driverLayer: Layer.Layer<SqliteDriver> = Layer.effect(SqliteDriver, loadDriver)

/** One database, open for the layer's life. */
export const layer = (options: SqliteOpenOptions): Layer.Layer<SqliteDatabase, SqliteError> =>
  Layer.effect(SqliteDatabase, Effect.flatMap(loadDriver, (driver) => driver.open(options)))
