/**
 * SqlDatabase on embedded PGlite (PostgreSQL compiled to WebAssembly), in memory or in a directory.
 *
 * PGlite is one session, so a one-permit semaphore stands in for the pool: a transaction holds
 * it from BEGIN to COMMIT/ROLLBACK, and statements from other fibers wait for it instead of
 * landing inside the open transaction. Where a server would let an outside reader see the
 * committed past, here the reader sees the committed future; it never sees uncommitted rows.
 *
 * Inside a transaction's body, use the `tx` client: an outside `query` or a nested `transaction`
 * would wait for the permit the body holds, so it fails at once instead of hanging.
 */
import { PGlite } from "@electric-sql/pglite"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Queue from "effect/Queue"
import * as Semaphore from "effect/Semaphore"
import * as Stream from "effect/Stream"
import { type Row, type SqlClient, SqlDatabase, SqlError, sqlState } from "../../src/capabilities/SqlDatabase.ts"

export interface PgliteSqlOptions {
  /** Where the database files live; in memory when absent. */
  readonly dataDir?: string
}

const sqlError = (operation: string) => (cause: unknown): SqlError => {
  const code = sqlState(cause)
  return code === undefined ? new SqlError({ operation, cause }) : new SqlError({ operation, cause, code })
}

/** The transaction the current fiber runs inside, while it is open. */
const OpenTransaction = Context.Reference<{ open: boolean } | undefined>("queueworks/pglite/OpenTransaction", {
  defaultValue: () => undefined
})

const quoteIdent = (name: string) => `"${name.replaceAll("\"", "\"\"")}"`

// `query` speaks the extended protocol: one statement, bound parameters. Text without
// parameters goes through `exec` (simple protocol) so migrations can send several statements.
const run = <R>(db: PGlite, operation: string, text: string, params?: ReadonlyArray<unknown>) =>
  Effect.tryPromise({
    try: async (): Promise<ReadonlyArray<R>> => {
      if (params !== undefined && params.length > 0) return (await db.query<R>(text, [...params])).rows
      const results = await db.exec(text)
      const rows: ReadonlyArray<unknown> = results[results.length - 1]?.rows ?? []
      return rows as ReadonlyArray<R>
    },
    catch: sqlError(operation)
  })

export const make = Effect.fnUntraced(function*(options: PgliteSqlOptions = {}) {
  const db = yield* Effect.acquireRelease(
    Effect.tryPromise({ try: () => PGlite.create(options.dataDir), catch: sqlError("open pglite") }),
    (db) => Effect.promise(() => db.close())
  )
  const permit = yield* Semaphore.make(1)
  // Streams per channel: the session LISTENs while at least one is open. PGlite's own listen()
  // is not used because it splices the channel into LISTEN unquoted and UNLISTENs a case-folded name.
  const listening = new Map<string, number>()

  const exclusive = (operation: string) => <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | SqlError, R> =>
    OpenTransaction.use((tx): Effect.Effect<A, E | SqlError, R> =>
      tx?.open
        ? Effect.fail(
          new SqlError({ operation, cause: "called on the database inside an open transaction; use the transaction's client" })
        )
        : permit.withPermits(1)(effect))

  const client: SqlClient = {
    query: <R extends object = Row>(text: string, params?: ReadonlyArray<unknown>) => run<R>(db, "query", text, params)
  }

  const commit = Effect.tryPromise({ try: () => db.exec("commit"), catch: sqlError("commit") }).pipe(
    Effect.flatMap((results) =>
      // COMMIT of a transaction that already failed (the body swallowed a statement's error)
      // answers ROLLBACK without an error; the caller must not believe its writes landed.
      results[0]?.command === "ROLLBACK"
        ? Effect.fail(new SqlError({ operation: "commit", code: "25P02", cause: "the transaction had failed and was rolled back" }))
        : Effect.void
    )
  )

  return SqlDatabase.of({
    query: (text, params) => exclusive("query")(client.query(text, params)),
    transaction: (body) =>
      exclusive("begin")(
        Effect.acquireUseRelease(
          run(db, "begin", "begin").pipe(Effect.as({ open: true })),
          (tx) =>
            body(client).pipe(
              Effect.provideService(OpenTransaction, tx),
              Effect.tap(() => commit)
            ),
          (tx, exit) => {
            tx.open = false
            return Exit.isSuccess(exit)
              ? Effect.void
              : run(db, "rollback", "rollback").pipe(Effect.catch((e) => Effect.logWarning("rollback failed", e)))
          }
        )
      ),
    listen: (channel) =>
      Stream.callback<string, SqlError>((queue) =>
        Effect.acquireRelease(
          // LISTEN is a statement: sent inside someone's open transaction it would only take effect at their COMMIT.
          exclusive("listen")(Effect.gen(function*() {
            const stop = db.onNotification((from, payload) => {
              if (from === channel) Queue.offerUnsafe(queue, payload)
            })
            const streams = listening.get(channel) ?? 0
            if (streams === 0) {
              yield* run(db, "listen", `listen ${quoteIdent(channel)}`).pipe(Effect.onError(() => Effect.sync(stop)))
            }
            listening.set(channel, streams + 1)
            return stop
          })),
          (stop) =>
            permit.withPermits(1)(Effect.suspend(() => {
              stop()
              const streams = (listening.get(channel) ?? 1) - 1
              if (streams > 0) return Effect.sync(() => listening.set(channel, streams))
              listening.delete(channel)
              return run(db, "unlisten", `unlisten ${quoteIdent(channel)}`).pipe(Effect.ignore)
            }))
        )
      ),
    notify: (channel, payload) => exclusive("notify")(run(db, "notify", "select pg_notify($1, $2)", [channel, payload])).pipe(Effect.asVoid)
  })
})

export const layer = (options: PgliteSqlOptions = {}): Layer.Layer<SqlDatabase, SqlError> => Layer.effect(SqlDatabase, make(options))
