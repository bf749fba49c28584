/**
 * The session queue contract on the SQL backend over embedded PGlite.
 */
import * as Layer from "effect/Layer"
import * as PgliteSql from "../../layers/pglite/sql.ts"
import { SqlDatabase } from "../../src/capabilities/SqlDatabase.ts"
import * as Sql from "../../src/sessions/sql.ts"
import * as SqlSessionQueue from "../../src/sessions/sqlQueue.ts"
import { sessionQueueContract } from "../contract/sessionQueue.ts"

sessionQueueContract(
  "PostgreSQL backend on PGlite",
  () => SqlSessionQueue.layer({ maxDeliveryCount: 3 }).pipe(Layer.provideMerge(PgliteSql.layer())),
  {
    maxDeliveryCount: 3,
    loseLock: (queue, sessionId) => SqlDatabase.use((db) => db.query(Sql.expireLease, [queue, sessionId]))
  }
)
