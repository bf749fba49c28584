/**
 * The outbox admin (SPEC §2; the original service had none): what an operator does with the
 * outbox table besides relaying it.
 *
 * - `listFailed`: failed events with their last error, and how many later events of the same
 *   aggregate each one holds back (a failed row blocks its aggregate, src/outbox/sql.ts).
 * - `requeue`: failed → pending with attempts 0, due now; the table's NOTIFY trigger wakes the
 *   relays. Naming an event that is missing or not failed is an error, never a silent no-op.
 * - `purgePublished`: deletes published rows older than a retention [OUTBOX_RETENTION, 7d].
 * - `expireKeys`: deletes idempotency keys older than a retention [IDEMPOTENCY_KEY_RETENTION,
 *   24h]: a client retrying the same request a day later gets a new order, the usual window of
 *   idempotency keys (long enough for any client's retries, short enough that the table stays
 *   small).
 *
 * Both deletions go in batches, one short transaction each, so a table of millions of rows is
 * never locked for long and a purge interrupted midway keeps what it did; a progress line is
 * logged every few seconds while it runs.
 *
 * Purging keeps the aggregate sequence: each purged aggregate's highest seq is kept in
 * `outbox_aggregate_seqs` (migration 2003), where `insertEvent` continues from, so an aggregate
 * whose rows were all purged does not start over at seq 1 and (type, id, seq) never names two
 * events.
 *
 * Time is the caller's `Clock` (cutoffs, the requeued rows' next attempt), as in the relay.
 */
import * as Clock from "effect/Clock"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Ref from "effect/Ref"
import * as Schema from "effect/Schema"
import { SqlDatabase, type SqlError } from "../capabilities/SqlDatabase.ts"
import { rate, reportProgress } from "../runtime/progress.ts"
import * as Sql from "./adminSql.ts"

export const adminDefaults = {
  /** OUTBOX_RETENTION */
  outboxRetention: Duration.days(7),
  /** IDEMPOTENCY_KEY_RETENTION */
  keyRetention: Duration.hours(24),
  batchSize: 1000,
  limit: 50,
  progressInterval: Duration.seconds(2)
} as const

export class EventNotFound extends Data.TaggedError("EventNotFound")<{ readonly id: string }> {
  override get message() {
    return `no outbox event has id ${this.id}`
  }
}

export class EventNotFailed extends Data.TaggedError("EventNotFailed")<{ readonly id: string; readonly status: string }> {
  override get message() {
    return `outbox event ${this.id} is ${this.status}, not failed: only failed events can be requeued`
  }
}

export class NoFailedEvents extends Data.TaggedError("NoFailedEvents")<{ readonly aggregateId: string }> {
  override get message() {
    return `aggregate ${this.aggregateId} has no failed outbox events`
  }
}

export type AdminError = EventNotFound | EventNotFailed | NoFailedEvents

const FailedRow = Schema.Struct({
  id: Schema.String,
  aggregate_type: Schema.String,
  aggregate_id: Schema.String,
  aggregate_seq: Schema.Number,
  event_type: Schema.String,
  attempts: Schema.Number,
  last_error: Schema.NullOr(Schema.String),
  created_at: Schema.Date,
  held_back: Schema.Number
})

const RequeuedRow = Schema.Struct({
  id: Schema.String,
  aggregate_type: Schema.String,
  aggregate_id: Schema.String,
  aggregate_seq: Schema.Number
})

const Count = Schema.Struct({ count: Schema.Number })
const Status = Schema.Struct({ status: Schema.String })

export interface FailedEvent {
  readonly id: string
  readonly aggregateType: string
  readonly aggregateId: string
  readonly aggregateSeq: number
  readonly eventType: string
  readonly attempts: number
  readonly lastError: string | null
  readonly createdAt: Date
  /** Later events of the aggregate, not yet published, that wait for this one. */
  readonly heldBack: number
}

export interface FailedListing {
  /** All failed events that match, also those past the limit. */
  readonly total: number
  readonly events: ReadonlyArray<FailedEvent>
}

export interface ListOptions {
  readonly aggregateId?: string | undefined
  readonly limit?: number | undefined
}

export const listFailed = (options: ListOptions = {}): Effect.Effect<FailedListing, SqlError, SqlDatabase> =>
  Effect.gen(function*() {
    const db = yield* SqlDatabase
    const aggregate = options.aggregateId ?? null
    const rows = yield* db.queryAs(FailedRow, Sql.listFailed, [aggregate, options.limit ?? adminDefaults.limit])
    const [count] = yield* db.queryAs(Count, Sql.countFailed, [aggregate])
    return {
      total: count?.count ?? 0,
      events: rows.map((row) => ({
        id: row.id,
        aggregateType: row.aggregate_type,
        aggregateId: row.aggregate_id,
        aggregateSeq: row.aggregate_seq,
        eventType: row.event_type,
        attempts: row.attempts,
        lastError: row.last_error,
        createdAt: row.created_at,
        heldBack: row.held_back
      }))
    }
  })

export type RequeueTarget =
  | { readonly _tag: "Event"; readonly id: string }
  | { readonly _tag: "Aggregate"; readonly aggregateId: string }
  | { readonly _tag: "AllFailed" }

export interface RequeuedEvent {
  readonly id: string
  readonly aggregateType: string
  readonly aggregateId: string
  readonly aggregateSeq: number
}

const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

/**
 * Sets the target's failed events back to pending. An event id that is missing or not failed,
 * and an aggregate without failed events, fail; `AllFailed` with none is an empty result.
 */
export const requeue = (target: RequeueTarget): Effect.Effect<ReadonlyArray<RequeuedEvent>, SqlError | AdminError, SqlDatabase> =>
  Effect.gen(function*() {
    const db = yield* SqlDatabase
    const now = new Date(yield* Clock.currentTimeMillis)
    if (target._tag === "Event" && !uuid.test(target.id)) return yield* new EventNotFound({ id: target.id })
    const rows = yield* (target._tag === "Event"
      ? db.queryAs(RequeuedRow, Sql.requeueById, [now, target.id])
      : target._tag === "Aggregate"
      ? db.queryAs(RequeuedRow, Sql.requeueByAggregate, [now, target.aggregateId])
      : db.queryAs(RequeuedRow, Sql.requeueAll, [now]))
    if (rows.length === 0 && target._tag === "Event") {
      const [row] = yield* db.queryAs(Status, Sql.statusOf, [target.id])
      return yield* (row === undefined ? new EventNotFound({ id: target.id }) : new EventNotFailed({ id: target.id, status: row.status }))
    }
    if (rows.length === 0 && target._tag === "Aggregate") return yield* new NoFailedEvents({ aggregateId: target.aggregateId })
    for (const row of rows) {
      yield* Effect.logInfo("outbox event requeued").pipe(Effect.annotateLogs({ eventId: row.id, aggregateId: row.aggregate_id }))
    }
    return rows.map((row) => ({
      id: row.id,
      aggregateType: row.aggregate_type,
      aggregateId: row.aggregate_id,
      aggregateSeq: row.aggregate_seq
    }))
  })

export interface RetentionOptions {
  /** Rows older than this go. */
  readonly retention: Duration.Duration
  /** Rows per transaction [1000]. */
  readonly batchSize?: number | undefined
  /** How often a progress line is logged while it runs [2s]. */
  readonly progressInterval?: Duration.Duration | undefined
}

export interface DeletedInBatches {
  readonly deleted: number
  readonly batches: number
  /** What was older than this went. */
  readonly cutoff: Date
}

/**
 * Runs `statement` ($1 cutoff, $2 batch size → count) until a batch comes back short. The
 * cutoff is fixed at the start, so rows that age past it meanwhile wait for the next run
 * instead of keeping this one going.
 */
const deleteInBatches = (what: string, statement: string, options: RetentionOptions) =>
  Effect.gen(function*() {
    const db = yield* SqlDatabase
    const batchSize = options.batchSize ?? adminDefaults.batchSize
    const started = yield* Clock.currentTimeMillis
    const cutoff = new Date(started - Duration.toMillis(options.retention))
    const done = yield* Ref.make({ deleted: 0, batches: 0 })
    const snapshot = Ref.get(done)
    yield* Effect.forkScoped(reportProgress({
      interval: options.progressInterval ?? adminDefaults.progressInterval,
      message: `deleting ${what}`,
      snapshot,
      annotations: (s) => ({ deleted: s.deleted, batches: s.batches })
    }))
    const batch = db.queryAs(Count, statement, [cutoff, batchSize]).pipe(
      Effect.map(([row]) => row?.count ?? 0),
      Effect.tap((count) => Ref.update(done, (s) => ({ deleted: s.deleted + count, batches: s.batches + 1 })))
    )
    // A full batch may have left more behind; a short one found the last of them.
    yield* Effect.repeat(batch, { while: (count) => count === batchSize })
    const result = yield* snapshot
    const ended = yield* Clock.currentTimeMillis
    const speed = rate(result.deleted, started, ended)
    yield* Effect.logInfo(`deleted ${what}`).pipe(Effect.annotateLogs({
      deleted: result.deleted,
      batches: result.batches,
      seconds: speed.seconds,
      perSecond: speed.perSecond,
      cutoff: cutoff.toISOString()
    }))
    return { ...result, cutoff } satisfies DeletedInBatches
  }).pipe(Effect.scoped)

/** Deletes published events older than the retention, keeping each aggregate's sequence. */
export const purgePublished = (options: RetentionOptions): Effect.Effect<DeletedInBatches, SqlError, SqlDatabase> =>
  deleteInBatches("published outbox events", Sql.purgePublished, options)

/** Deletes idempotency keys older than the retention. */
export const expireKeys = (options: RetentionOptions): Effect.Effect<DeletedInBatches, SqlError, SqlDatabase> =>
  deleteInBatches("idempotency keys", Sql.expireKeys, options)
