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
 *
 * Embedded, so it needs no server: in memory by default (gone when the layer closes), or durable
 * in a directory (`PGLITE_DATA_DIR`). Values are read and bound as `SqlDatabase` lists.
 */
import { PGlite } from "@electric-sql/pglite"
import * as Config from "effect/Config"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Queue from "effect/Queue"
import * as Semaphore from "effect/Semaphore"
import * as Stream from "effect/Stream"
import { makeClient, SqlDatabase, SqlError } from "../../src/capabilities/SqlDatabase.ts"
import { checkCommitted, quoteIdent, sqlError, transactionOver } from "../../src/sql/backend.ts"

export interface Options {
  /** Where the database files live (created when missing); in memory when absent. */
  readonly dataDir?: string
}

/** The former name of `Options`. */
export type PgliteSqlOptions = Options

// PGlite reads int8 as a number when it fits and a bigint when it does not; one type for every
// value (and the one postgres.js is given) spares callers a `number | bigint`.
const parsers = { 20: (text: string) => BigInt(text) }

/** The transaction the current fiber runs inside, while it is open. */
const OpenTransaction = Context.Reference<{ open: boolean } | undefined>("queueworks/pglite/OpenTransaction", {
  defaultValue: () => undefined
})

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

/*
 * A new in-memory database is the same fresh cluster every time, and making one (initdb, in
 * WebAssembly) takes seconds. A process that opens more than one (tests, the demo) copies the
 * second, dumped before its first use, into the later ones, in about a third of the time. A
 * process that opens one pays nothing for this.
 */
let inMemoryOpened = 0
let freshCluster: Promise<Blob | File | undefined> | undefined

const openInMemory = async (): Promise<PGlite> => {
  const copy = freshCluster === undefined ? undefined : await freshCluster
  if (copy !== undefined) return PGlite.create({ loadDataDir: copy, parsers })
  const db = await PGlite.create({ parsers })
  if (inMemoryOpened++ > 0 && freshCluster === undefined) {
    // Not yet handed out, so nothing but the fresh cluster is in it.
    freshCluster = db.dumpDataDir("none").catch(() => undefined)
    await freshCluster
  }
  return db
}

export const make = Effect.fnUntraced(function*(options: Options = {}) {
  const db = yield* Effect.acquireRelease(
    Effect.tryPromise({
      try: () => options.dataDir === undefined ? openInMemory() : PGlite.create({ dataDir: options.dataDir, parsers }),
      catch: sqlError(`open pglite${options.dataDir === undefined ? "" : ` in ${options.dataDir}`}`)
    }),
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

  const client = makeClient((text, params) => run(db, "query", text, params))

  const commit = Effect.tryPromise({ try: () => db.exec("commit"), catch: sqlError("commit") }).pipe(
    Effect.flatMap((results) => checkCommitted(results[0]?.command))
  )

  const subscribe = (channel: string) =>
    Effect.gen(function*() {
      const queue = yield* Queue.unbounded<string>()
      yield* Effect.acquireRelease(
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
      return Stream.fromQueue(queue)
    })

  return SqlDatabase.of({
    ...makeClient((text, params) => exclusive("query")(client.query(text, params))),
    transaction: (body) =>
      exclusive("begin")(
        Effect.acquireUseRelease(
          run(db, "begin", "begin").pipe(Effect.as({ open: true, over: false })),
          (tx) => {
            const query = <R>(text: string, params?: ReadonlyArray<unknown>) =>
              Effect.suspend(() => (tx.over ? transactionOver() : client.query<R & object>(text, params)))
            const commitAfter = <R extends object>(text: string, params?: ReadonlyArray<unknown>) =>
              Effect.suspend(() => {
                if (tx.over) return transactionOver()
                tx.over = true
                return Effect.tap(client.query<R>(text, params), () => commit)
              })
            return body({ ...makeClient(query), commitAfter }).pipe(
              Effect.provideService(OpenTransaction, tx),
              Effect.tap(() => (tx.over ? Effect.void : commit))
            )
          },
          (tx, exit) => {
            tx.open = false
            return Exit.isSuccess(exit)
              ? Effect.void
              : run(db, "rollback", "rollback").pipe(Effect.catch((e) => Effect.logWarning("rollback failed", e)))
          }
        )
      ),
    listen: (channel) => Stream.unwrap(subscribe(channel)),
    subscribe,
    notify: (channel, payload) => exclusive("notify")(run(db, "notify", "select pg_notify($1, $2)", [channel, payload])).pipe(Effect.asVoid)
  })
})

export const layer = (options: Options = {}): Layer.Layer<SqlDatabase, SqlError> => Layer.effect(SqlDatabase, make(options))

/** `PGLITE_DATA_DIR`: the directory that keeps the database; unset, it lives in memory. */
export const config: Config.Config<Options> = Config.option(Config.String("PGLITE_DATA_DIR")).pipe(
  Config.map((dataDir) => dataDir._tag === "Some" && dataDir.value.trim() !== "" ? { dataDir: dataDir.value } : {})
)

export const layerConfig: Layer.Layer<SqlDatabase, SqlError | Config.ConfigError> = Layer.effect(
  SqlDatabase,
  Effect.flatMap(config, make)
)
