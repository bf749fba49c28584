import { afterAll } from "bun:test"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Scope from "effect/Scope"
import * as PgliteSql from "../../layers/pglite/sql.ts"
import { SqlDatabase } from "../../src/capabilities/SqlDatabase.ts"
import * as SqlStore from "../../src/scheduler/sqlStore.ts"
import { schedulerStoreContract } from "../contract/schedulerStore.ts"

// Booting PGlite takes seconds on a busy machine, so the cases share one and each gets a schema
// of its own (PGlite is one session and the cases run one after another, so `search_path` holds
// for the case). Its clients are one store, raced by concurrent fibers.
const scope = Scope.makeUnsafe()
afterAll(() => Effect.runPromise(Scope.close(scope, Exit.void)))
const db = await Effect.runPromise(PgliteSql.make().pipe(Scope.provide(scope)))
let cases = 0

schedulerStoreContract(
  "pglite",
  Effect.gen(function*() {
    const schema = `case_${++cases}`
    yield* db.query(`create schema ${schema}; set search_path to ${schema}`)
    const store = yield* SqlStore.make.pipe(Effect.provideService(SqlDatabase, db))
    return () => Effect.succeed(store)
  })
)
