/**
 * What every SqlDatabase backend does the same way, whatever its driver: naming identifiers,
 * turning a driver's failure into an SqlError, refusing a COMMIT that rolled back, and refusing
 * statements after `commitAfter`.
 * Driver-free, so a backend needs only its own driver beside it.
 */
import * as Effect from "effect/Effect"
import { SqlError, sqlState } from "../capabilities/SqlDatabase.ts"

/** A double-quoted identifier: case and any character kept, quotes doubled. */
export const quoteIdent = (name: string): string => `"${name.replaceAll("\"", "\"\"")}"`

/** Maps a driver failure to an SqlError for `operation`, keeping the SQLSTATE when there is one. */
export const sqlError = (operation: string) => (cause: unknown): SqlError => {
  const code = sqlState(cause)
  return code === undefined ? new SqlError({ operation, cause }) : new SqlError({ operation, cause, code })
}

/**
 * Checks the command tag a COMMIT answered with. COMMIT of a transaction that already failed
 * (its body swallowed a statement's error) answers ROLLBACK without an error; the caller must
 * not believe its writes landed.
 */
export const checkCommitted = (command: string | undefined): Effect.Effect<void, SqlError> =>
  command === "ROLLBACK"
    ? Effect.fail(new SqlError({ operation: "commit", code: "25P02", cause: "the transaction had failed and was rolled back" }))
    : Effect.void

/** A statement sent on a transaction's client after `commitAfter` ended the transaction. */
export const transactionOver = (): Effect.Effect<never, SqlError> =>
  Effect.fail(new SqlError({ operation: "query", cause: "the transaction is over (commitAfter ended it)" }))
