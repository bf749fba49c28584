/**
 * SqlDatabase: a PostgreSQL-dialect database (postgres.js against a server, or embedded PGlite).
 *
 * Contract (`test/contract/sql.ts` checks it on both backends):
 * - `query` runs one statement with positional parameters (`$1`, `$2`, ...) and returns its rows.
 *   `queryAs(schema, …)` does the same and decodes every row with an Effect Schema.
 * - `transaction` runs `body` on one connection between BEGIN and COMMIT; a failure, defect or
 *   interruption of `body` rolls back. Statements outside `body` never join it. The body may
 *   end with `commitAfter`, its last statement sent with the COMMIT.
 * - `listen` delivers NOTIFY payloads on a channel for as long as the stream is consumed.
 *   `subscribe` does the same, and succeeds only once the session LISTENs, so a caller knows
 *   from when on it hears every NOTIFY committed.
 *
 * Values, the same on every backend (the drivers differ; the layers make them agree):
 *
 * | column type                  | comes back as                                   |
 * | ---------------------------- | ----------------------------------------------- |
 * | int2, int4, float4, float8   | number                                          |
 * | int8 (bigint, `count(*)`)    | bigint, always (also when small): cast to int for a number |
 * | numeric                      | string, exact as the server prints it ("12.50") |
 * | text, varchar, uuid          | string (uuid in lowercase)                      |
 * | boolean                      | boolean                                         |
 * | timestamptz                  | Date                                            |
 * | json, jsonb                  | the parsed value (object, array, string, ...)   |
 * | bytea                        | Uint8Array (a plain one, not a Node Buffer)     |
 * | text[]                       | Array<string \| null>                           |
 * | NULL                         | null                                            |
 *
 * Parameters: bigint, number, string, boolean, Date, Uint8Array and null bind to the column or
 * cast they meet (`$1::int8`, `$1::timestamptz`, `$1::bytea`, ...). An object or array bound to
 * a json/jsonb parameter is sent as its JSON; a string is always sent as its text, so a string
 * bound to jsonb must already be JSON (`JSON.stringify(value)`). An array bound to an array
 * type (`$1::text[]`) is a PostgreSQL array. Cast parameters whose type the statement does not
 * fix (`select $1`): the backends guess differently.
 * Not pinned (the drivers may differ): timestamp without time zone, date, interval, arrays
 * other than text[]. Prefer timestamptz.
 */
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { describeCause } from "./describeCause.ts"

export type Row = Record<string, unknown>

export interface SqlClient {
  /** The rows, typed as `R` without checking: prefer `queryAs` for rows the code relies on. */
  readonly query: <R extends object = Row>(text: string, params?: ReadonlyArray<unknown>) => Effect.Effect<ReadonlyArray<R>, SqlError>
  /**
   * The rows, each decoded by `schema` (a `Schema.Struct` of the selected columns, say). A row
   * that does not match fails with an SqlError whose operation is "decode rows" and whose cause
   * is the SchemaError: its message names the row index and column and says what was expected.
   * Retrying does not help such an error; it is a statement and a schema that disagree.
   */
  readonly queryAs: <S extends Schema.Constraint>(
    schema: S,
    text: string,
    params?: ReadonlyArray<unknown>
  ) => Effect.Effect<ReadonlyArray<S["Type"]>, SqlError, S["DecodingServices"]>
}

/** The client `transaction` hands its body. */
export interface SqlTransaction extends SqlClient {
  /**
   * Runs `text` as the transaction's last statement and commits with it: on PostgreSQL both go
   * out together, one round trip instead of two. Its rows come back once the COMMIT succeeded;
   * if the statement fails, the transaction rolls back and this fails with the statement's
   * error. Afterwards the transaction is over: statements fail, and it is not committed again.
   */
  readonly commitAfter: <R extends object = Row>(text: string, params?: ReadonlyArray<unknown>) => Effect.Effect<ReadonlyArray<R>, SqlError>
}

export interface SqlDatabaseShape extends SqlClient {
  readonly transaction: <A, E, R>(body: (tx: SqlTransaction) => Effect.Effect<A, E, R>) => Effect.Effect<A, E | SqlError, R>
  readonly listen: (channel: string) => Stream.Stream<string, SqlError>
  /**
   * LISTENs on `channel` and succeeds once the session listens: every NOTIFY on it committed
   * from then on arrives on the stream (in commit order), until the scope closes and UNLISTENs.
   * For a caller that listens only at times, and must know which commits it may have missed.
   */
  readonly subscribe: (channel: string) => Effect.Effect<Stream.Stream<string>, SqlError, Scope.Scope>
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

// One array decoder per row schema, made at its first use: `queryAs` decodes with the same
// schema on every call, and building `Schema.Array(schema)` and its decoder each time cost as
// much as decoding the rows.
const decoders = new WeakMap<Schema.Constraint, (rows: unknown, options: { readonly errors: "all" }) => Effect.Effect<ReadonlyArray<unknown>, Schema.SchemaError, unknown>>()
const arrayDecoder = <S extends Schema.Constraint>(schema: S) => {
  let decode = decoders.get(schema)
  if (decode === undefined) decoders.set(schema, decode = Schema.decodeUnknownEffect(Schema.Array(schema)) as typeof decode & {})
  return decode as (rows: unknown, options: { readonly errors: "all" }) => Effect.Effect<ReadonlyArray<S["Type"]>, Schema.SchemaError, S["DecodingServices"]>
}

/**
 * Decodes rows with `schema`, failing with an SqlError "decode rows" (see `queryAs`). For rows
 * that come from elsewhere than `queryAs`, e.g. a `query` whose text is built in steps.
 */
export const decodeRows = <S extends Schema.Constraint>(schema: S) => {
  const decode = arrayDecoder(schema)
  return <E, R>(rows: Effect.Effect<ReadonlyArray<unknown>, E, R>): Effect.Effect<ReadonlyArray<S["Type"]>, E | SqlError, R | S["DecodingServices"]> =>
    Effect.flatMap(rows, (rows) =>
      decode(rows, { errors: "all" }).pipe(Effect.mapError((cause) => new SqlError({ operation: "decode rows", cause }))))
}

/** A client from a backend's `query`: `queryAs` is written here once, for every backend. */
export const makeClient = (query: SqlClient["query"]): SqlClient => ({
  query,
  queryAs: (schema, text, params) => decodeRows(schema)(query(text, params))
})

/**
 * The SQLSTATE of a failure the server (or PGlite's embedded server) reported. Both drivers put
 * it in `code` next to a `severity`; socket errors also have a `code` (ECONNREFUSED, EPIPE...)
 * but no severity, and must not pass for a SQLSTATE.
 */
export const sqlState = (cause: unknown): string | undefined => {
  const fields = cause as { code?: unknown; severity?: unknown } | null
  return typeof fields?.code === "string" && /^[0-9A-Z]{5}$/.test(fields.code) && typeof fields.severity === "string"
    ? fields.code
    : undefined
}
