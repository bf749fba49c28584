/**
 * What the relay tests share: a Publisher that records what it accepted and fails for chosen
 * aggregates, a database wrapper that counts claims, direct outbox inserts, and a wait for a
 * condition on the database.
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import { bodyText, type Message } from "../../src/capabilities/Message.ts"
import { Publisher, PublisherError } from "../../src/capabilities/Publisher.ts"
import { SqlDatabase, type SqlDatabaseShape } from "../../src/capabilities/SqlDatabase.ts"
import { relayDefaults, type RelayConfig } from "../../src/outbox/config.ts"
import * as Orders from "../../src/orders/sql.ts"
import { migrate } from "../../src/sql/migrations.ts"

export interface Recorder {
  readonly accepted: Array<Message & { readonly topic: string }>
  /** Aggregates whose events the broker refuses while listed. */
  readonly failing: Set<string>
  /** Refuse everything while true. */
  down: boolean
  /** Fail everything as a broker that cannot be reached (`reason: "unavailable"`) while true. */
  unreachable: boolean
  calls: number
  /** The keys of each accepted publish call. */
  readonly batches: Array<ReadonlyArray<string>>
}

export const recorder = (): Recorder => ({ accepted: [], failing: new Set(), down: false, unreachable: false, calls: 0, batches: [] })

export const recordingPublisher = (r: Recorder) =>
  Layer.succeed(Publisher, Publisher.make("test", (topic, messages) =>
    Effect.suspend(() => {
      r.calls++
      if (r.unreachable) {
        return Effect.fail(new PublisherError({ operation: "send", topic, cause: new Error("connect ECONNREFUSED"), reason: "unavailable" }))
      }
      const refused = r.down || messages.some((m) => r.failing.has(m.key))
      if (refused) return Effect.fail(new PublisherError({ operation: "send", topic, cause: new Error(r.down ? "broker down" : `refused ${messages.map((m) => m.key).join(",")}`) }))
      for (const m of messages) r.accepted.push({ ...m, topic })
      r.batches.push(messages.map((m) => m.key))
      return Effect.void
    })))

export interface Claims {
  count: number
}

/** The database, counting the claim statements that run on it. */
export const countingClaims = (claims: Claims) =>
  Layer.effect(SqlDatabase, Effect.gen(function*() {
    const db = yield* SqlDatabase
    const count = (text: string) => {
      if (text.includes("skip locked")) claims.count++
    }
    const wrapped: SqlDatabaseShape = {
      ...db,
      transaction: (body) =>
        db.transaction((tx) => body({
          query: (text, params) => { count(text); return tx.query(text, params) },
          queryAs: (schema, text, params) => { count(text); return tx.queryAs(schema, text, params) },
          commitAfter: (text, params) => { count(text); return tx.commitAfter(text, params) }
        }))
    }
    return wrapped
  }))

export const migrated = Effect.asVoid(migrate(Orders.migrations, { direction: "up", table: Orders.migrationsTable }))

/** Inserts an event of `aggregate` directly; its seq is the aggregate's next. */
export const insertEvent = (aggregate: string, data: unknown = {}, headers: Record<string, string> = {}) =>
  Effect.gen(function*() {
    const db = yield* SqlDatabase
    const id = crypto.randomUUID()
    const payload = { id, type: "OrderCreated", aggregateId: aggregate, occurredAt: new Date().toISOString(), data }
    yield* db.query(Orders.insertEvent, [id, "order", aggregate, "OrderCreated", JSON.stringify(payload), JSON.stringify(headers)])
    return id
  })

const EventRow = Schema.Struct({
  id: Schema.String,
  aggregate_id: Schema.String,
  aggregate_seq: Schema.Number,
  status: Schema.String,
  attempts: Schema.Number,
  next_attempt_at: Schema.Date,
  last_error: Schema.NullOr(Schema.String)
})

export const events = SqlDatabase.use((db) =>
  db.queryAs(EventRow, `select id::text as id, aggregate_id, aggregate_seq::int4 as aggregate_seq, status, attempts,
    next_attempt_at, last_error from outbox_events order by position`))

/** Waits (real time, a few ms per look) until `check` holds, failing after `within` ms. */
export const until = <E, R>(what: string, check: Effect.Effect<boolean, E, R>, within = 10_000) =>
  Effect.gen(function*() {
    const deadline = Date.now() + within
    while (!(yield* check)) {
      if (Date.now() > deadline) return yield* Effect.die(new Error(`timed out waiting for ${what}`))
      yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 5)))
    }
  })

export const config = (overrides: Partial<RelayConfig> = {}): RelayConfig => ({ ...relayDefaults, ...overrides })

export const valueOf = (m: Message) => JSON.parse(bodyText(m)) as { id: string; aggregateId: string; data: unknown }
