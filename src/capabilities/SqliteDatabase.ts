/**
 * SqliteDatabase: one open SQLite file (or `:memory:`), whichever embedded driver the runtime has
 * (`bun:sqlite` under Bun, `node:sqlite` under Deno and Node; see `layers/sqlite/`).
 *
 * Contract (every backend; `test/layers/sqlite.test.ts` checks both it can load):
 * - `query` runs one statement with positional `?` parameters and returns its rows as plain
 *   objects keyed by column name; `queryAs(schema, …)` also decodes every row with a Schema.
 *   `run` runs one statement for its effect and says how many rows it changed; `exec` runs a
 *   script of statements without parameters (schema, pragmas).
 * - Opened `readOnly`, every write fails with an SqliteError; a missing file is an error, never
 *   an empty database created in its place (that needs `create`).
 * - `transaction` runs `body` between BEGIN and COMMIT, rolling back on failure, defect or
 *   interruption. There is one connection: transactions wait for each other, and a statement
 *   another fiber runs while one is open joins it, so write from one fiber.
 *
 * Values: INTEGER → number (a value beyond 2^53 loses precision: the schema keeps sums in REAL
 * or in range), REAL → number, TEXT → string, BLOB → Uint8Array, NULL → null. Parameters:
 * number, bigint, string, Uint8Array, null; booleans are bound as 1/0.
 */
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import type * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Semaphore from "effect/Semaphore"
import { describeCause } from "./describeCause.ts"
import { decodeRows } from "./SqlDatabase.ts"

export type Row = Record<string, unknown>

export type SqliteParam = number | bigint | string | Uint8Array | boolean | null

export interface SqliteOpenOptions {
  /** A file path, or ":memory:". */
  readonly path: string
  /** Writes fail; the default is read-write. */
  readonly readOnly?: boolean
  /** Creates the file when missing (read-write only); the default refuses a missing file. */
  readonly create?: boolean
}

export interface SqliteDatabaseShape {
  readonly path: string
  readonly readOnly: boolean
  readonly query: <R extends object = Row>(text: string, params?: ReadonlyArray<SqliteParam>) => Effect.Effect<ReadonlyArray<R>, SqliteError>
  readonly queryAs: <S extends Schema.Constraint>(
    schema: S,
    text: string,
    params?: ReadonlyArray<SqliteParam>
  ) => Effect.Effect<ReadonlyArray<S["Type"]>, SqliteError, S["DecodingServices"]>
  readonly run: (text: string, params?: ReadonlyArray<SqliteParam>) => Effect.Effect<{ readonly changes: number }, SqliteError>
  readonly exec: (script: string) => Effect.Effect<void, SqliteError>
  readonly transaction: <A, E, R>(body: Effect.Effect<A, E, R>) => Effect.Effect<A, E | SqliteError, R>
}

export class SqliteDatabase extends Context.Service<SqliteDatabase, SqliteDatabaseShape>()("queueworks/SqliteDatabase") {}

/** Opens databases: what a backend provides, so a program (the seeder) can open files by name. */
export interface SqliteDriverShape {
  /** "bun:sqlite" or "node:sqlite". */
  readonly name: string
  /** Open for the scope; closed when it ends. */
  readonly open: (options: SqliteOpenOptions) => Effect.Effect<SqliteDatabaseShape, SqliteError, Scope.Scope>
}

export class SqliteDriver extends Context.Service<SqliteDriver, SqliteDriverShape>()("queueworks/SqliteDriver") {}

export class SqliteError extends Data.TaggedError("SqliteError")<{
  readonly operation: string
  readonly cause: unknown
}> {
  override get message() {
    return `${this.operation} failed: ${describeCause(this.cause)}`
  }
}

/** The synchronous calls both drivers offer, so the Effect side is written once. */
export interface SqliteStatements {
  readonly all: (text: string, params: ReadonlyArray<SqliteParam>) => ReadonlyArray<unknown>
  readonly run: (text: string, params: ReadonlyArray<SqliteParam>) => number
  readonly exec: (script: string) => void
  readonly close: () => void
}

const bindable = (params: ReadonlyArray<SqliteParam>): ReadonlyArray<SqliteParam> =>
  params.map((p) => typeof p === "boolean" ? (p ? 1 : 0) : p)

/** A database from a driver's synchronous calls. */
/**
 * How long a statement waits for a lock another connection holds (another process on the same
 * file: a writer, or a reader recovering the WAL index) before failing with SQLITE_BUSY; without
 * it SQLite fails at once. Set on every connection a driver opens.
 */
export const busyTimeoutMillis = 5000

/**
 * A driver from a runtime's synchronous `connect`: opening is a scoped acquisition (closed with
 * the scope) and the statements become a `SqliteDatabase` through `makeDatabase`.
 */

export const makeDriver = (name: string, connect: (options: SqliteOpenOptions) => SqliteStatements): SqliteDriverShape => ({
  name,
  open: (options) =>
    Effect.acquireRelease(
      Effect.try({
        try: () => {
          const statements = connect(options)
          statements.exec(`PRAGMA busy_timeout = ${busyTimeoutMillis}`)
          return statements
        },
        catch: (cause) => new SqliteError({ operation: `open ${options.path}`, cause })
      }),
      (statements) => Effect.sync(() => statements.close())
    ).pipe(Effect.flatMap((statements) => makeDatabase(options, statements)))
})

export const makeDatabase = (options: SqliteOpenOptions, driver: SqliteStatements): Effect.Effect<SqliteDatabaseShape> =>
  Effect.gen(function*() {
    const lock = yield* Semaphore.make(1)
    const attempt = <A>(operation: string, f: () => A) =>
      Effect.try({ try: f, catch: (cause) => new SqliteError({ operation, cause }) })
    const query = <R extends object = Row>(text: string, params: ReadonlyArray<SqliteParam> = []) =>
      attempt("query", () => driver.all(text, bindable(params)) as ReadonlyArray<R>)
    const exec = (script: string) => attempt("exec", () => driver.exec(script))
    return {
      path: options.path,
      readOnly: options.readOnly === true,
      query,
      queryAs: (schema, text, params) => decodeRows(schema)(query(text, params)).pipe(
        Effect.mapError((error) => error._tag === "SqlError" ? new SqliteError({ operation: error.operation, cause: error.cause }) : error)
      ),
      run: (text, params = []) => attempt("run", () => ({ changes: driver.run(text, bindable(params)) })),
      exec,
      transaction: (body) =>
        lock.withPermits(1)(Effect.uninterruptibleMask((restore) =>
          Effect.gen(function*() {
            yield* exec("BEGIN")
            const exit = yield* Effect.exit(restore(body))
            if (exit._tag === "Success") {
              yield* exec("COMMIT")
              return exit.value
            }
            yield* Effect.ignore(exec("ROLLBACK"))
            return yield* exit
          })
        ))
    } satisfies SqliteDatabaseShape
  })
