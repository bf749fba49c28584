/**
 * CounterStore: the de-duplication set and the counts, updated together.
 *
 * `record` counts each event whose id was never counted before and returns how many it counted;
 * checking and counting are one atomic step, so a redelivered or duplicate message is never
 * counted twice, also across restarts of a durable store.
 *
 * A `record` call is atomic: when it fails, none of its events were counted. Its error says
 * whether the failure is `permanent` for the events given (the database can never store one of
 * them: retrying is futile, a smaller batch may pass) or passes (the database is down: retry).
 */
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { SqlDatabase, SqlError } from "../capabilities/SqlDatabase.ts"
import { isPermanentForData } from "../sql/failures.ts"
import { migrate } from "../sql/migrations.ts"
import { IdSet } from "./IdSet.ts"
import { type CounterEvent, type Counts, emptyCounts, type EventType, eventTypes } from "./events.ts"
import * as Sql from "./sql.ts"

export class CounterStoreError extends Data.TaggedError("CounterStoreError")<{
  readonly operation: string
  readonly cause: unknown
}> {
  override get message() {
    return `counter store ${this.operation} failed: ${this.cause instanceof Error ? this.cause.message : String(this.cause)}`
  }

  /** The same call with the same events will fail again: the data is at fault, not the database's state. */
  get permanent(): boolean {
    return this.cause instanceof SqlError && isPermanentForData(this.cause)
  }
}

export class CounterStore extends Context.Service<CounterStore, {
  readonly record: (events: ReadonlyArray<CounterEvent>) => Effect.Effect<number, CounterStoreError>
  readonly snapshot: Effect.Effect<Counts, CounterStoreError>
}>()("queueworks/CounterStore") {
  /** Lives as long as the process. */
  static readonly memory = Layer.sync(CounterStore, () => {
    const seen = new IdSet()
    // Maps, not plain objects: user ids are arbitrary strings. Each holds a mutable cell, so the
    // hot path looks a user up once per event.
    const counts = new Map(eventTypes.map((type) => [type, new Map<string, { n: number }>()]))
    return CounterStore.of({
      record: (events) =>
        Effect.sync(() => {
          let counted = 0
          for (const event of events) {
            if (!seen.add(event.id)) continue
            const byUser = counts.get(event.type)!
            const cell = byUser.get(event.userId)
            if (cell === undefined) byUser.set(event.userId, { n: 1 })
            else cell.n++
            counted++
          }
          return counted
        }),
      snapshot: Effect.sync(() => {
        const out = emptyCounts()
        for (const [type, byUser] of counts) {
          for (const [user, cell] of byUser) out[type][user] = cell.n
        }
        return out
      })
    })
  })

  /** Durable: PostgreSQL (or PGlite) tables, created by the counter's migrations. */
  static readonly sql = Layer.effect(
    CounterStore,
    Effect.gen(function*() {
      const db = yield* SqlDatabase
      yield* migrate(Sql.migrations, { direction: "up", table: Sql.migrationsTable }).pipe(
        Effect.mapError((cause) => new CounterStoreError({ operation: "migrate", cause }))
      )
      return CounterStore.of({
        record: (events) =>
          events.length === 0 ? Effect.succeed(0) : db.query<{ counted: number }>(Sql.record, [JSON.stringify(
            events.map((e) => ({ id: e.id, user_id: e.userId, type: e.type }))
          )]).pipe(
            Effect.map((rows) => Number(rows[0]?.counted ?? 0)),
            Effect.mapError((cause) => new CounterStoreError({ operation: "record", cause }))
          ),
        snapshot: db.query<{ type: EventType; user_id: string; count: bigint }>(Sql.snapshot).pipe(
          Effect.map((rows) => {
            const counts = emptyCounts()
            for (const row of rows) counts[row.type][row.user_id] = Number(row.count)
            return counts
          }),
          Effect.mapError((cause) => new CounterStoreError({ operation: "snapshot", cause }))
        )
      })
    })
  )
}
