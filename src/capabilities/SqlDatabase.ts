/**
 * SqlDatabase: a PostgreSQL-dialect database (postgres.js against a server, or embedded PGlite).
 *
 * Contract (`test/contract/sql.ts` checks it on both backends):
 * - `query` runs one statement with positional parameters (`$1`, `$2`, ...) and returns its rows.
 * - `transaction` runs `body` on one connection between BEGIN and COMMIT; a failure, defect or
 *   interruption of `body` rolls back. Statements outside `body` never join it.
 * - `listen` delivers NOTIFY payloads on a channel for as long as the stream is consumed.
 */
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import { describeCause } from "./Publisher.ts"

export type Row = Record<string, unknown>

export interface SqlClient {
  readonly query: <R extends object = Row>(text: string, params?: ReadonlyArray<unknown>) => Effect.Effect<ReadonlyArray<R>, SqlError>
}

export interface SqlDatabaseShape extends SqlClient {
  readonly transaction: <A, E, R>(body: (tx: SqlClient) => Effect.Effect<A, E, R>) => Effect.Effect<A, E | SqlError, R>
  readonly listen: (channel: string) => Stream.Stream<string, SqlError>
  readonly notify: (channel: string, payload: string) => Effect.Effect<void, SqlError>
}

export class SqlDatabase extends Context.Service<SqlDatabase, SqlDatabaseShape>()("queueworks/SqlDatabase") {}

export class SqlError extends Data.TaggedError("SqlError")<{
  readonly operation: string
  readonly cause: unknown
  /** The SQLSTATE code when the server sent one (e.g. 23505 unique violation). */
  readonly code?: string
}> {
  override get message() {
    return `${this.operation} failed: ${describeCause(this.cause)}`
  }
}

/** Pulls the SQLSTATE code off a driver error, when it carries one. */
export const sqlState = (cause: unknown): string | undefined => {
  const code = (cause as { code?: unknown } | null)?.code
  return typeof code === "string" ? code : undefined
}
