/**
 * One request body in, one reply out: every failure becomes an error reply with its code, so a
 * request is answered once and never goes back to the queue to fail again.
 */
import * as Effect from "effect/Effect"
import * as Result from "effect/Result"
import type { SqliteDatabaseShape } from "../capabilities/SqliteDatabase.ts"
import { makeQuerySales } from "./query.ts"
import { errorReply, okReply, parseRequest, type SalesReply } from "./request.ts"

export type Answer = (body: Uint8Array) => Effect.Effect<SalesReply>

/** Answers from `db`, the query's plan chosen once for all the requests it answers. */
export const makeAnswer = (db: SqliteDatabaseShape): Answer => {
  const query = makeQuerySales(db)
  return (body) => {
    const request = parseRequest(body)
    if (Result.isFailure(request)) return Effect.succeed(errorReply(request.failure))
    return query(request.success).pipe(
      Effect.map(okReply),
      Effect.catch((error) =>
        "code" in error
          ? Effect.succeed(errorReply(error))
          // The cause goes to the log, not to the client: it may name the file and the schema.
          : Effect.logError(`sales query failed: ${error.message}`).pipe(
            Effect.as(errorReply({ code: "internal", message: "the query failed" }))
          )
      )
    )
  }
}

/** One answer on its own: for a caller that asks once (a test, a comparison). */
export const answer = (db: SqliteDatabaseShape, body: Uint8Array): Effect.Effect<SalesReply> => makeAnswer(db)(body)
