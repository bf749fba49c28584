/**
 * The session queue contract on the SQL backend over embedded PGlite. One database for the file
 * (each case has queues of its own), since starting PGlite costs seconds. Waiters poll once a
 * minute only, so the cases that wait pass only if LISTEN/NOTIFY wakes them.
 */
import { afterAll, beforeAll } from "bun:test"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Scope from "effect/Scope"
import * as PgliteSql from "../../layers/pglite/sql.ts"
import { SqlDatabase } from "../../src/capabilities/SqlDatabase.ts"
import * as Sql from "../../src/sessions/sql.ts"
import * as SqlSessionQueue from "../../src/sessions/sqlQueue.ts"
import { sessionQueueContract } from "../contract/sessionQueue.ts"

const scope = Effect.runSync(Scope.make())
let db: SqlDatabase["Service"]
beforeAll(async () => {
  db = await Effect.runPromise(PgliteSql.make().pipe(Scope.provide(scope)))
})
afterAll(() => Effect.runPromise(Scope.close(scope, Exit.void)))

sessionQueueContract(
  "PostgreSQL backend on PGlite",
  () => SqlSessionQueue.layer({ maxDeliveryCount: 3, pollInterval: "1 minute" }).pipe(Layer.provideMerge(Layer.succeed(SqlDatabase, db))),
  {
    maxDeliveryCount: 3,
    loseLock: (queue, sessionId) => SqlDatabase.use((db) => db.query(Sql.expireLease, [queue, sessionId]))
  }
)
