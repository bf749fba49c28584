/**
 * The readiness check "database": the database answers a trivial statement within a short bound.
 *
 * A check that fails or hangs reports false instead of failing, so a database outage makes the
 * program not ready (the balancer stops sending it work) without stopping it.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { SqlDatabase, type SqlDatabaseShape } from "../capabilities/SqlDatabase.ts"
import { Readiness } from "../runtime/Readiness.ts"

/**
 * True when `select 1` comes back within `within` (1 s by default: shorter than the readiness
 * report's own bound, so a slow database shows as this check failing, by name). On PGlite the
 * statement waits for an open transaction to end, so a transaction held longer reads as not ready.
 */
export const healthCheck = (db: Pick<SqlDatabaseShape, "query">, within: Duration.Input = "1 second"): Effect.Effect<boolean> =>
  db.query("select 1 as ok").pipe(
    Effect.timeoutOption(within),
    Effect.map(Option.isSome),
    Effect.catchCause(() => Effect.succeed(false))
  )

/** Registers `healthCheck` of the provided SqlDatabase as the readiness check "database". */
export const registerDatabaseReadiness = (within?: Duration.Input): Effect.Effect<void, never, SqlDatabase | Readiness> =>
  Effect.gen(function*() {
    const db = yield* SqlDatabase
    const readiness = yield* Readiness
    yield* readiness.register("database", healthCheck(db, within))
  })
