/**
 * SqlDatabase on a PostgreSQL server, through postgres.js.
 *
 * - `query` runs on any pooled connection. Text without parameters goes over the simple
 *   protocol, so one call may hold several statements (migrations); the last one's rows come back.
 * - `transaction` reserves one connection for BEGIN … COMMIT, so statements outside `body`
 *   (other fibers, other pooled connections) never see its uncommitted rows. BEGIN goes out
 *   without waiting for its answer, and `commitAfter` sends its statement with the COMMIT.
 * - Interrupting a statement stops waiting for it; the server still finishes it, and on a
 *   transaction's connection the ROLLBACK queues behind it.
 * - `listen` and `subscribe` use postgres.js's dedicated LISTEN connection, which re-subscribes
 *   after a reconnect.
 * - Values are read and bound as `src/capabilities/SqlDatabase.ts` lists (`types` below).
 */
import * as Config from "effect/Config"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Redacted from "effect/Redacted"
import * as Stream from "effect/Stream"
import postgres from "postgres"
import { makeClient, SqlDatabase, SqlError } from "../../src/capabilities/SqlDatabase.ts"
import { checkCommitted, quoteIdent, sqlError, transactionOver } from "../../src/sql/backend.ts"
import { intInRange, oneOf, positiveDuration, url } from "../../src/runtime/config.ts"
import { parseTextArray, serializeTextArray } from "./textArray.ts"

export interface Options {
  /** `postgres://user:password@host:port/db?sslmode=…`; the password is never logged. */
  readonly url: string
  /** Becomes every connection's `search_path`; created when missing. */
  readonly schema?: string
  /** Pool size (postgres.js defaults to 10). */
  readonly max?: number
  /** A connection is closed and replaced after this long (postgres.js: 30 to 60 minutes). */
  readonly maxLifetime?: Duration.Duration
}

/** The former name of `Options`. */
export type PostgresSqlOptions = Options

// Where postgres.js's defaults differ from PGlite's, the values follow PGlite's (see SqlDatabase).
const types = {
  // Default: a string, so `count(*)` would be "1" here and 1n on PGlite.
  bigint: postgres.BigInt,
  // Default: JSON.stringify even of a string, so JSON text bound to jsonb became a JSON string.
  json: {
    to: 114,
    from: [114, 3802],
    serialize: (value: unknown) => typeof value === "string" ? value : JSON.stringify(value),
    parse: (text: string) => JSON.parse(text)
  },
  // Default: a Node Buffer, which equals no Uint8Array in a deep comparison.
  bytea: {
    to: 17,
    from: [17],
    serialize: (bytes: Uint8Array) => `\\x${Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("hex")}`,
    parse: (text: string) => {
      const bytes = Buffer.from(text.slice(2), "hex")
      return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength)
    }
  },
  textArray: { to: 1009, from: [1009], serialize: serializeTextArray, parse: parseTextArray }
}

type Driver = postgres.Sql

// Simple-protocol text with several statements resolves to one row list per statement; a single
// statement resolves to its rows directly (rows are objects, never arrays).
const lastRows = <R>(result: ReadonlyArray<unknown>): ReadonlyArray<R> => {
  const rows = result.length > 0 && Array.isArray(result[0]) ? result[result.length - 1] as ReadonlyArray<R> : result as ReadonlyArray<R>
  // A plain array: postgres.js row lists carry extra fields (statement, state) callers should not see.
  return Array.from(rows)
}

// Text without parameters goes over the simple protocol (several statements allowed). Text with
// parameters is prepared once per connection and then only bound and executed: postgres.js's
// `unsafe` does not prepare by default, and an unprepared statement with parameters waits for
// the server to describe it before it is sent (two round trips, parsed and planned each time,
// and nothing sent after it on the connection until then), which undid the pipelining of
// transactions. The statements are fixed texts, so the per-connection cache stays small. Each
// execution is still planned for its values (`plan_cache_mode`, set per connection in `open`).
const send = (driver: Driver, text: string, params?: ReadonlyArray<unknown>) =>
  params === undefined || params.length === 0
    ? driver.unsafe(text)
    : driver.unsafe(text, params as Array<postgres.ParameterOrJSON<never>>, { prepare: true })

const run = <R>(driver: Driver, operation: string, text: string, params?: ReadonlyArray<unknown>) =>
  Effect.tryPromise({ try: () => send(driver, text, params), catch: sqlError(operation) }).pipe(
    Effect.map((result) => lastRows<R>(result))
  )

const clientOn = (driver: Driver) => makeClient((text, params) => run(driver, "query", text, params))

/** Names the server without the password, for connect errors. */
const describeTarget = (options: postgres.ParsedOptions) =>
  `${options.user}@${options.host.map((host, i) => `${host}:${options.port[i] ?? options.port[0]}`).join(",")}/${options.database}`

const open = (options: Options) =>
  Effect.acquireRelease(
    Effect.try({
      try: () =>
        postgres(options.url, {
          onnotice: () => {},
          types,
          ...(options.max === undefined ? {} : { max: options.max }),
          ...(options.maxLifetime === undefined ? {} : { max_lifetime: Duration.toSeconds(options.maxLifetime) }),
          connection: {
            // A prepared statement is planned for its values each time, as an unprepared one is. A
            // generic plan, PostgreSQL's choice after five executions, is made for the table as it is
            // then: the outbox's mark, first run on a new empty table, kept a sequential scan
            // (cheaper than fetching rows by ctid while the table was empty) and took 30–130 ms per
            // batch once the table held 20 000 rows.
            plan_cache_mode: "force_custom_plan",
            ...(options.schema === undefined ? {} : { search_path: quoteIdent(options.schema) })
          }
        }),
      // The parser's message may echo the URL, password included.
      catch: () => new SqlError({ operation: "configure", cause: "the database URL is not a valid postgres:// URL" })
    }),
    (sql) => Effect.promise(() => sql.end({ timeout: 5 }))
  )

const ensureSchema = (sql: Driver, schema: string) =>
  Effect.gen(function*() {
    // Checked first: CREATE SCHEMA IF NOT EXISTS needs the CREATE privilege even when it exists.
    const found = yield* run(sql, "create schema", "select 1 from pg_namespace where nspname = $1", [schema])
    if (found.length > 0) return
    yield* run(sql, "create schema", `create schema if not exists ${quoteIdent(schema)}`).pipe(
      // Two pools starting at once can both miss the check; the loser sees the winner's schema.
      Effect.catchIf((e) => e.code === "23505" || e.code === "42P06", () => Effect.void)
    )
  })

export const make = Effect.fnUntraced(function*(options: Options) {
  const sql = yield* open(options)
  // Connect now so a wrong URL stops the program at start, naming the server.
  yield* run(sql, `connect to ${describeTarget(sql.options)}`, "select 1")
  if (options.schema !== undefined) yield* ensureSchema(sql, options.schema)

  // BEGIN is sent as the connection is reserved and not waited for: its answer arrives before the
  // first statement's, which therefore costs no round trip of its own (pgjdbc does the same). A
  // statement is only reported as done once BEGIN is known to have succeeded. (BEGIN on a clean
  // pooled connection fails only with the connection, which fails the statements after it too.)
  const begin = Effect.gen(function*() {
    const conn = yield* Effect.tryPromise({ try: () => sql.reserve(), catch: sqlError("begin") })
    const began: Promise<unknown> = conn.unsafe("begin").execute().then(() => undefined, (cause: unknown) => sqlError("begin")(cause))
    return { conn, began, over: false }
  })
  type Open = Effect.Success<typeof begin>

  // Every statement's promise is awaited (none left to reject unhandled), then BEGIN's outcome.
  const settle = async <A>(open: Open, operation: string, pending: Promise<A>): Promise<A> => {
    const outcome = await pending.then((value) => ({ value }), (cause: unknown) => ({ error: sqlError(operation)(cause) }))
    const failedBegin = await open.began
    if (failedBegin !== undefined) throw failedBegin
    if ("error" in outcome) throw outcome.error
    return outcome.value
  }

  const inTransaction = (open: Open) => <R>(text: string, params?: ReadonlyArray<unknown>) =>
    Effect.suspend(() =>
      open.over
        ? transactionOver()
        : Effect.tryPromise({ try: () => settle(open, "query", send(open.conn, text, params)), catch: (e) => e as SqlError })
    ).pipe(Effect.map((result) => lastRows<R>(result)))

  const commit = (open: Open) =>
    Effect.tryPromise({ try: () => settle(open, "commit", open.conn.unsafe("commit")), catch: (e) => e as SqlError }).pipe(
      Effect.flatMap((result) => checkCommitted(result.command))
    )

  // The statement and COMMIT in one write; the COMMIT answers ROLLBACK when the statement failed.
  const commitAfter = (open: Open) => <R extends object>(text: string, params?: ReadonlyArray<unknown>) =>
    Effect.suspend(() => {
      if (open.over) return transactionOver()
      open.over = true
      const statement = send(open.conn, text, params)
      const committed = open.conn.unsafe("commit")
      return Effect.tryPromise({
        try: () => Promise.all([settle(open, "query", statement), settle(open, "commit", committed)]),
        catch: (e) => e as SqlError
      }).pipe(
        Effect.flatMap(([rows, result]) => Effect.as(checkCommitted(result.command), lastRows<R>(rows)))
      )
    })

  const rollback = ({ conn }: Open) =>
    run(conn, "rollback", "rollback").pipe(
      Effect.catch((e) => Effect.logWarning("rollback failed", e)),
      Effect.ensuring(Effect.sync(() => conn.release()))
    )

  // postgres.js answers `listen` once its LISTEN statement has run on its dedicated connection.
  const subscribe = (channel: string) =>
    Effect.gen(function*() {
      const queue = yield* Queue.unbounded<string>()
      yield* Effect.acquireRelease(
        Effect.tryPromise({
          try: () => sql.listen(channel, (payload) => void Queue.offerUnsafe(queue, payload)),
          catch: sqlError("listen")
        }),
        (subscription) => Effect.tryPromise(() => subscription.unlisten()).pipe(Effect.ignore)
      )
      return Stream.fromQueue(queue)
    })

  return SqlDatabase.of({
    ...clientOn(sql),
    transaction: (body) =>
      Effect.acquireUseRelease(
        begin,
        (open) =>
          Effect.tap(
            body({ ...makeClient(inTransaction(open)), commitAfter: commitAfter(open) }),
            () => (open.over ? Effect.void : commit(open))
          ),
        // After a successful COMMIT the ROLLBACK is skipped; after a failed one it is a no-op.
        (open, exit) => Exit.isSuccess(exit) ? Effect.sync(() => open.conn.release()) : rollback(open)
      ),
    listen: (channel) => Stream.unwrap(subscribe(channel)),
    subscribe,
    notify: (channel, payload) =>
      Effect.tryPromise({ try: () => sql.notify(channel, payload), catch: sqlError("notify") }).pipe(Effect.asVoid)
  })
})

export const layer = (options: Options): Layer.Layer<SqlDatabase, SqlError> => Layer.effect(SqlDatabase, make(options))

/**
 * `DATABASE_URL`, or else the original outbox service's variables and defaults: `DB_HOST`
 * [localhost], `DB_PORT` [5432], `DB_USER` [postgres], `DB_PASSWORD` [postgres], `DB_NAME`
 * [txstream], `DB_SSL_MODE` [disable] (also read as `DB_SSLMODE`). Either way `DB_MAX_OPEN_CONNS`
 * [25] sizes the pool (also read as `DB_MAX_CONNECTIONS`) and `DB_CONN_MAX_LIFETIME` [5m] retires
 * a connection after that long. The original's `DB_MAX_IDLE_CONNS` has no counterpart:
 * postgres.js closes a connection that stays idle, whatever their number.
 */
export const config: Config.Config<Options> = Config.all({
  // Checked at start: a wrong scheme stops the program (exit 2) before anything connects.
  url: Config.option(url("DATABASE_URL", ["postgres", "postgresql"]).pipe(Config.map((text) => Redacted.make(text)))),
  host: Config.String("DB_HOST").pipe(Config.withDefault("localhost")),
  port: Config.Port("DB_PORT").pipe(Config.withDefault(5432)),
  user: Config.String("DB_USER").pipe(Config.withDefault("postgres")),
  password: Config.Redacted("DB_PASSWORD").pipe(Config.withDefault(Redacted.make("postgres"))),
  database: Config.String("DB_NAME").pipe(Config.withDefault("txstream")),
  sslmode: eitherOf(["DB_SSL_MODE", "DB_SSLMODE"], (name) => oneOf(name, sslModes)).pipe(Config.withDefault("disable" as const)),
  max: eitherOf(["DB_MAX_OPEN_CONNS", "DB_MAX_CONNECTIONS"], (name) => intInRange(name, 1, 10_000)).pipe(Config.withDefault(25)),
  lifetime: positiveDuration("DB_CONN_MAX_LIFETIME").pipe(Config.withDefault(Duration.minutes(5)))
}).pipe(
  Config.map((c) => ({
    url: Option.match(c.url, {
      onSome: Redacted.value,
      onNone: () =>
        `postgres://${encodeURIComponent(c.user)}:${encodeURIComponent(Redacted.value(c.password))}@${c.host}:${c.port}/${
          encodeURIComponent(c.database)
        }?sslmode=${c.sslmode}`
    }),
    max: c.max,
    maxLifetime: c.lifetime
  }))
)

const sslModes = ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] as const

/**
 * The first of `names` that is set, read by `read`; a bad value of it is an error naming it,
 * never a fall-through to the next name.
 */
function eitherOf<A>(names: ReadonlyArray<string>, read: (name: string) => Config.Config<A>): Config.Config<A> {
  return Config.all(names.map((name) => Config.option(Config.String(name)))).pipe(
    Config.flatMap((found) => {
      const index = found.findIndex(Option.isSome)
      return index === -1 ? read(names[0]!) : read(names[index]!)
    })
  )
}

export const layerConfig: Layer.Layer<SqlDatabase, SqlError | Config.ConfigError> = Layer.effect(
  SqlDatabase,
  Effect.flatMap(config, make)
)
