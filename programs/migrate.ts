/**
 * Versioned SQL migrations of every system (or one, with `--system`).
 *
 *   bun run programs/migrate.ts up [--system counter]
 *   bun run programs/migrate.ts down [--system counter] [--steps 1]
 *
 * Database: DATABASE_URL, or DB_HOST/DB_PORT/DB_USER/DB_PASSWORD/DB_NAME [txstream]/DB_SSL_MODE.
 */
import process from "node:process"
import * as Config from "effect/Config"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Postgres from "../layers/postgres/sql.ts"
import { load, oneOf, positiveInt } from "../src/runtime/config.ts"
import { runMain } from "../layers/platform/runMain.ts"
import { migrate } from "../src/sql/migrations.ts"
import { systems } from "../src/sql/systems.ts"

const program = Effect.gen(function*() {
  const direction = yield* load(oneOf("DIRECTION", ["up", "down"]).pipe(
    Config.withDefault((process.argv[2] === "down" ? "down" : "up") as "up" | "down")
  ))
  const only = yield* load(Config.option(oneOf("SYSTEM", Object.keys(systems))))
  const steps = yield* load(Config.option(positiveInt("STEPS")))
  const database = yield* load(Postgres.config)
  const chosen = only._tag === "Some" ? [only.value] : Object.keys(systems)
  yield* Effect.forEach(chosen, (name) =>
    Effect.gen(function*() {
      const system = systems[name]!
      const done = yield* migrate(system.migrations, {
        direction,
        table: system.table,
        ...(steps._tag === "Some" ? { steps: steps.value } : {})
      })
      yield* Console.log(
        done.length === 0
          ? `${name}: nothing to do`
          : `${name}: ${direction === "up" ? "applied" : "reverted"} ${done.map((m) => `${m.version} ${m.name}`).join(", ")}`
      )
    }).pipe(Effect.provide(Postgres.layer(database))), { discard: true })
})

runMain(program, { name: "migrate" })
