/**
 * The SQL backend a program runs on, chosen from its configuration, so programs carry no
 * ternary of their own: PostgreSQL when `DATABASE_URL` or any of the Go services' `DB_HOST`,
 * `DB_PORT`, `DB_USER`, `DB_PASSWORD`, `DB_NAME` is set (even to a bad value, which then stops the
 * program naming it; an empty one counts as unset), embedded PGlite otherwise: in memory, or
 * durable in `PGLITE_DATA_DIR`.
 *
 *   const database = yield* load(Database.config)     // exit 2 on a bad value, naming it
 *   Effect.provide(Database.layer(database))           // or Database.layerConfig
 *   yield* registerDatabaseReadiness()                 // readiness check "database"
 */
import * as Config from "effect/Config"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { SqlDatabase, type SqlError } from "../src/capabilities/SqlDatabase.ts"
import * as Pglite from "./pglite/sql.ts"
import * as Postgres from "./postgres/sql.ts"

export { healthCheck, registerDatabaseReadiness } from "../src/sql/health.ts"

export type Options =
  | { readonly backend: "postgres"; readonly postgres: Postgres.Options }
  | { readonly backend: "pglite"; readonly pglite: Pglite.Options }

/** Any of these present means a server is meant. */
export const serverVariables = ["DATABASE_URL", "DB_HOST", "DB_PORT", "DB_USER", "DB_PASSWORD", "DB_NAME"] as const

const present = (name: string) => Config.option(Config.String(name)).pipe(Config.map(Option.isSome))

export const config: Config.Config<Options> = Config.all(serverVariables.map(present)).pipe(
  Config.flatMap((found): Config.Config<Options> =>
    found.some(Boolean)
      ? Config.map(Postgres.config, (postgres) => ({ backend: "postgres", postgres }))
      : Config.map(Pglite.config, (pglite) => ({ backend: "pglite", pglite }))
  )
)

const make = (options: Options) => options.backend === "postgres" ? Postgres.make(options.postgres) : Pglite.make(options.pglite)

export const layer = (options: Options): Layer.Layer<SqlDatabase, SqlError> => Layer.effect(SqlDatabase, make(options))

export const layerConfig: Layer.Layer<SqlDatabase, SqlError | Config.ConfigError> = Layer.effect(
  SqlDatabase,
  Effect.flatMap(config, make)
)
