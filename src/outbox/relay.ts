/**
 * The outbox relay (SPEC §2): a pool of workers moves pending `outbox_events` rows to the
 * events topic, keyed by aggregate id, and marks them published.
 *
 * Each worker repeats: claim up to `batchSize` rows (src/outbox/sql.ts: one row per aggregate,
 * its lowest unpublished, locked), publish them in one call (one at a time if that call
 * fails), mark them, commit, claim again.
 * An empty claim makes the worker wait for a NOTIFY on `outbox_events`, the poll interval, or
 * the end of the earliest backoff, whichever comes first. The LISTEN is on only while workers
 * run out of work (src/sql/listenOnDemand.ts). A claim commits with its last statement (the
 * mark, or for an empty claim the `nextDue` query): two round trips per batch with BEGIN's.
 *
 * Invariant: a claimed row is always released in the same transaction, as published, as
 * retried later, as failed, or untouched (rolled back) when the breaker refused the publish,
 * which therefore costs the event no attempt.
 *
 * Delivery is at-least-once: a crash after Kafka acknowledged and before the commit publishes
 * the batch again. Consumers de-duplicate on the `event-id` header.
 */
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import type * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Metric from "effect/Metric"
import * as Queue from "effect/Queue"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import type * as Tracer from "effect/Tracer"
import { describeCause } from "../capabilities/describeCause.ts"
import { Headers, type OutgoingMessage } from "../capabilities/Message.ts"
import { Publisher, PublisherError } from "../capabilities/Publisher.ts"
import { SqlDatabase, type SqlClient } from "../capabilities/SqlDatabase.ts"
import { parseTraceparent } from "../messaging/traceContext.ts"
import * as ListenOnDemand from "../sql/listenOnDemand.ts"
import { type BackoffPolicy, delayFor, exhausted } from "../resilience/backoff.ts"
import { type CircuitBreaker, CircuitOpenError, make as makeBreaker } from "../resilience/circuitBreaker.ts"
import { outboxChannel } from "../orders/sql.ts"
import type { RelayConfig } from "./config.ts"
import * as Sql from "./sql.ts"

/** Header names of the Kafka record (SPEC §2). */
export const EventHeaders = { eventId: "event-id", eventType: "event-type" } as const

/**
 * A row of `Sql.claimBatch`, whose casts fix every column's type: read with `query`, not decoded
 * with a Schema, which for a claim of 1 000 rows was about a tenth of the relay's own JavaScript
 * time (profiled).
 */
interface ClaimedRow {
  readonly row_ref: string
  readonly id: string
  readonly aggregate_type: string
  readonly aggregate_id: string
  readonly aggregate_seq: number
  readonly event_type: string
  readonly payload: string
  readonly traceparent: string | null
  readonly attempts: number
}

/** A row of `Sql.nextDue`: timestamptz comes back as a Date (SqlDatabase's table). */
interface NextDueRow {
  readonly due: Date | null
}

const StatusCount = Schema.Struct({ status: Schema.String, count: Schema.Number })

const seconds = Metric.exponentialBoundaries({ start: 0.0005, factor: 2, count: 16 })
const processed = Metric.counter("txstream_events_processed", { description: "Events the relay handled (published, retried or failed)", incremental: true })
const published = Metric.counter("txstream_events_published", { description: "Events published to Kafka", incremental: true })
const failed = Metric.counter("txstream_events_failed", { description: "Events marked failed after their retries", incremental: true })
const retried = Metric.counter("txstream_events_retried", {
  description: "Failed publishes scheduled for a retry, by the attempt that failed and the event type",
  incremental: true
})
const processingSeconds = Metric.histogram("txstream_event_processing_duration_seconds", {
  description: "Claim to mark, per event",
  boundaries: seconds
})
const publishingSeconds = Metric.histogram("txstream_event_publishing_duration_seconds", {
  description: "One publish call to Kafka",
  boundaries: seconds
})
const retryDelaySeconds = Metric.histogram("txstream_retry_delay_duration_seconds", {
  description: "Backoff chosen before an event's next attempt",
  boundaries: Metric.exponentialBoundaries({ start: 0.1, factor: 2, count: 12 })
})
const poolSize = Metric.gauge("txstream_worker_pool_size", { description: "Relay workers configured" })
const inQueue = (status: string) =>
  Metric.withAttributes(Metric.gauge("txstream_events_in_queue", { description: "Outbox rows by status" }), { status })
const activeWorkers = Metric.gauge("txstream_active_workers", { description: "Workers busy with a batch" })

export interface Relay {
  /** Runs the workers until interrupted; a batch in flight is finished and committed first. */
  readonly run: Effect.Effect<never, never, SqlDatabase | Publisher>
  /** The Kafka breaker's state ("closed" when the breaker is disabled). */
  readonly breakerState: Effect.Effect<"closed" | "half-open" | "open">
}

/** The backoff the config asks for: exponential with jitter, or `WORKER_RETRY_DELAY` each time. */
export const retryPolicy = (config: RelayConfig): BackoffPolicy =>
  config.exponentialRetry
    ? { base: config.baseDelay, max: config.maxDelay, factor: config.multiplier, maxAttempts: config.maxRetries + 1 }
    : { base: config.retryDelay, max: config.retryDelay, factor: 1, jitter: 0, maxAttempts: config.maxRetries + 1 }

type BatchResult =
  | { readonly _tag: "Claimed"; readonly count: number; readonly due?: Date | null }
  | { readonly _tag: "Refused"; readonly retryAfter: Duration.Duration }
  | { readonly _tag: "Failed" }

/**
 * NOTIFYs in a row that found every worker busy before the LISTEN is turned off: at 2 000
 * inserts a second, 16 ms of them. Turning it on again costs a round trip and a claim.
 */
const unheededLimit = 32

export const makeRelay = (config: RelayConfig): Effect.Effect<Relay> =>
  Effect.gen(function*() {
    const breaker: CircuitBreaker | undefined = config.circuitBreaker
      ? yield* makeBreaker({
        name: "kafka",
        failureThreshold: config.failureThreshold,
        successThreshold: config.successThreshold,
        resetTimeout: config.resetTimeout,
        metricPrefix: "txstream_"
      })
      : undefined
    const breakerState = breaker?.state ?? Effect.succeed("closed" as const)
    const policy = retryPolicy(config)
    const busy = yield* Ref.make(0)
    const setBusy = (delta: number) => Ref.updateAndGet(busy, (n) => n + delta).pipe(Effect.flatMap((n) => Metric.update(activeWorkers, n)))

    const toMessage = (row: ClaimedRow): OutgoingMessage => {
      const headers: Record<string, string> = Object.create(null)
      headers[EventHeaders.eventId] = row.id
      headers[EventHeaders.eventType] = row.event_type
      if (row.traceparent !== null) headers[Headers.traceparent] = row.traceparent
      return { id: row.id, key: row.aggregate_id, headers, body: row.payload }
    }

    // The batch's span continues the first event's trace and links the others', so each
    // request's trace shows where its event left the outbox.
    const traced = <A, E, R>(rows: ReadonlyArray<ClaimedRow>, publish: Effect.Effect<A, E, R>) => {
      let first: Tracer.ExternalSpan | undefined
      const links: Array<Tracer.SpanLink> = []
      for (const row of rows) {
        const parent = row.traceparent === null ? undefined : parseTraceparent(row.traceparent)
        if (parent === undefined) continue
        if (first === undefined) first = parent
        else links.push({ span: parent, attributes: {} })
      }
      return Effect.withSpan(publish, "outbox relay publish", {
        kind: "producer",
        attributes: { "messaging.destination.name": config.topic, "messaging.batch.message_count": rows.length },
        ...(first === undefined ? {} : { parent: first }),
        links
      })
    }

    // A publish Kafka could not take at all is not the event's fault: it waits like a retry but
    // keeps its attempts, so an outage never fails good events (the breaker, which counts these
    // failures, soon stops the claims). Only a refusal, or a failure of unknown kind, counts.
    const settleFailure = (tx: SqlClient, rows: ReadonlyArray<ClaimedRow>, error: unknown) =>
      Effect.gen(function*() {
        const reason = describeCause(error)
        const now = yield* Clock.currentTimeMillis
        const outage = unavailable(error)
        for (const row of rows) {
          const attempt = row.attempts + 1
          if (!outage && exhausted(policy, attempt)) {
            yield* tx.query(Sql.markFailed, [[row.id], reason])
            yield* Metric.update(failed, 1)
            yield* Effect.logWarning(`outbox event failed after ${attempt} attempts`).pipe(
              Effect.annotateLogs({ eventId: row.id, aggregateId: row.aggregate_id, error: reason })
            )
          } else {
            const delay = yield* delayFor(policy, attempt)
            yield* tx.query(outage ? Sql.markDeferred : Sql.markRetry, [[row.id], new Date(now + Duration.toMillis(delay)), reason])
            yield* Metric.update(Metric.withAttributes(retried, { attempt: String(attempt), event_type: row.event_type }), 1)
            yield* Metric.update(retryDelaySeconds, Duration.toMillis(delay) / 1000)
          }
        }
      })

    /** Publishes `rows` in one call: undefined when the broker took them, else the failure. */
    const attempt = (publisher: Publisher["Service"], rows: ReadonlyArray<ClaimedRow>) =>
      Effect.gen(function*() {
        const started = yield* Clock.currentTimeMillis
        const publish = publisher.publish(config.topic, rows.map(toMessage)).pipe(Effect.timeout(config.publishTimeout))
        const exit = yield* Effect.exit(traced(rows, breaker === undefined ? publish : breaker.protect(publish)))
        if (Exit.isSuccess(exit)) {
          yield* Metric.update(publishingSeconds, ((yield* Clock.currentTimeMillis) - started) / 1000)
          return undefined
        }
        const failure = Cause.findError(exit.cause)
        return failure._tag === "Success" ? failure.success as unknown : exit.cause as unknown
      })

    const processBatch = (db: SqlDatabase["Service"], publisher: Publisher["Service"]) =>
      db.transaction((tx) =>
        Effect.gen(function*() {
          const started = yield* Clock.currentTimeMillis
          // Issued together: the settings run first, and the pair costs one round trip.
          const [, rows] = yield* Effect.all([
            tx.query(config.asyncCommit ? Sql.claimSettingsCommitWithoutFlush : Sql.claimSettings),
            tx.query<ClaimedRow>(Sql.claimBatch, [new Date(started), config.batchSize])
          ], { concurrency: 2 })
          if (rows.length === 0) {
            // Nothing to do: when the next row falls due (for `wait`), asked with the COMMIT.
            const [next] = yield* tx.commitAfter<NextDueRow>(Sql.nextDue, [new Date(started)])
            return { _tag: "Claimed", count: 0, due: next?.due ?? null } as BatchResult
          }
          yield* setBusy(1)
          const first = yield* attempt(publisher, rows)
          // A batch the broker refused is published again one event at a time, so one poison
          // event (too large, say) costs only itself an attempt, never its batch's neighbours.
          // Each aggregate appears once in a batch, so this cannot reorder an aggregate.
          const outcomes: Array<readonly [ClaimedRow, unknown]> = first === undefined
            ? []
            : rows.length === 1 || first instanceof CircuitOpenError
            ? rows.map((row) => [row, first] as const)
            : yield* Effect.forEach(rows, (row) => Effect.map(attempt(publisher, [row]), (error) => [row, error] as const))
          const done = yield* Clock.currentTimeMillis
          yield* setBusy(-1)
          // The whole batch taken at once, the usual case, is marked without an outcome per event.
          const sent = first === undefined ? rows : outcomes.filter(([, error]) => error === undefined).map(([row]) => row)
          const refused = outcomes.flatMap(([, error]) => error instanceof CircuitOpenError ? [error] : [])
          const failedRows = outcomes.filter(([, error]) => error !== undefined && !(error instanceof CircuitOpenError))
          // Refused rows stay untouched (pending, due): the breaker's refusal costs no attempt.
          if (sent.length > 0) {
            const mark = [sent.map((r) => r.row_ref), new Date(done)]
            // The usual case, the mark is the last statement and goes with the COMMIT.
            yield* failedRows.length === 0 ? tx.commitAfter(Sql.markPublished, mark) : tx.query(Sql.markPublished, mark)
            yield* Metric.update(published, sent.length)
          }
          for (const [row, error] of failedRows) yield* settleFailure(tx, [row], error)
          const handled = sent.length + failedRows.length
          yield* Metric.update(processed, handled)
          yield* observeEach(processingSeconds, (done - started) / 1000, handled)
          if (refused.length > 0) return { _tag: "Refused", retryAfter: refused[0]!.retryAfter } as BatchResult
          return { _tag: "Claimed", count: rows.length } as BatchResult
        })
      ).pipe(
        // A batch in flight is published and marked before the worker stops.
        Effect.uninterruptible
      )

    const run = Effect.gen(function*() {
      const db = yield* SqlDatabase
      const publisher = yield* Publisher
      yield* Metric.update(poolSize, config.poolSize)
      const wakes = yield* Effect.forEach(Array.from({ length: config.poolSize }), () => Queue.sliding<void>(1))
      // The workers waiting for a wake-up (in `wait`), oldest first.
      const waiting = new Set<Queue.Queue<void>>()
      // A wake-up goes to every busy worker and to one waiting worker. A busy worker keeps it
      // (one is enough) until its claim is done, so a row committed after that claim's snapshot
      // is claimed at once, not at the poll. Waking every waiting worker made them all claim
      // the same new rows, all but one in vain (each a transaction and a `nextDue` query): with
      // three idle workers an event cost four claims instead of two. `wakeOne` is also how a
      // worker that claimed a full batch (a burst, maybe from one transaction and so one NOTIFY)
      // calls in help.
      const wakeOne = Effect.suspend(() => {
        for (const wake of waiting) {
          waiting.delete(wake)
          return Queue.offer(wake, undefined)
        }
        return Effect.void
      })
      const wakeBusy = Effect.forEach(wakes, (q) => (waiting.has(q) ? Effect.void : Queue.offer(q, undefined)), { discard: true })
      // The LISTEN is on only while workers run out of work: with every worker busy, each one
      // claims again after its batch anyway, and `unheededLimit` NOTIFYs in a row that found
      // nobody waiting turn it off (src/sql/listenOnDemand.ts says what that saves). The next
      // worker to find nothing turns it on again before it waits.
      let unheeded = 0
      const listener: ListenOnDemand.ListenOnDemand = yield* ListenOnDemand.make(db, outboxChannel, () =>
        Effect.suspend((): Effect.Effect<void> => {
          if (waiting.size > 0) {
            unheeded = 0
            return Effect.andThen(wakeBusy, wakeOne)
          }
          if (++unheeded < unheededLimit) return wakeBusy
          unheeded = 0
          return listener.stop
        }))
      const listen = listener.start.pipe(
        Effect.as(true),
        Effect.catchCause((cause) => Effect.as(Effect.logWarning("outbox LISTEN failed; polling until it succeeds", cause), false))
      )
      yield* listen
      yield* refreshQueueGauge(db).pipe(
        Effect.repeat(Schedule.spaced(config.queueGaugeInterval)),
        Effect.forkScoped
      )
      // Waits for a wake-up, the poll interval, or the next row to fall due after `claimedAt`
      // (rows due after it were not seen by the empty claim, also those that fell due between it
      // and now: waited for zero time when already due, not left to the poll). In `waiting` from
      // the start, so a NOTIFY during the `nextDue` query wakes it too.
      // `known` is that time when the empty claim already asked.
      const wait = (wake: Queue.Queue<void>, claimedAt: number, known?: Date | null) =>
        Effect.gen(function*() {
          const now = yield* Clock.currentTimeMillis
          const next = known !== undefined
            ? known
            : (yield* db.query<NextDueRow>(Sql.nextDue, [new Date(claimedAt)]).pipe(Effect.orElseSucceed(() => [])))[0]?.due ?? null
          const due = next === null ? config.pollInterval : Duration.millis(Math.max(0, next.getTime() - now))
          yield* Effect.raceFirst(Queue.take(wake), Effect.sleep(Duration.min(config.pollInterval, due)))
        }).pipe(Effect.ensuring(Effect.sync(() => waiting.delete(wake))))
      const idle = (wake: Queue.Queue<void>, claimedAt: number) =>
        Effect.suspend(() => {
          waiting.add(wake)
          return wait(wake, claimedAt)
        })
      // After an empty claim: waits if the LISTEN `heard` was on for the whole claim and still is
      // (every commit after the claim's snapshot was announced, and this worker kept the wake-up);
      // checked and joined at once, so the LISTEN cannot stop in between. Otherwise false.
      const idleIfHeard = (wake: Queue.Queue<void>, claimedAt: number, heard: number | undefined, due: Date | null | undefined) =>
        Effect.suspend(() => {
          if (heard === undefined || listener.epoch() !== heard) return Effect.succeed(false)
          waiting.add(wake)
          return Effect.as(wait(wake, claimedAt, due), true)
        })
      const worker = (wake: Queue.Queue<void>) =>
        Effect.gen(function*() {
          // Nothing is claimed while the breaker is open: the rows stay pending for later.
          if ((yield* breakerState) === "open") return yield* Effect.sleep(Duration.min(config.resetTimeout, Duration.seconds(1)))
          const claimedAt = yield* Clock.currentTimeMillis
          const heard = listener.epoch()
          // A wake-up from before this claim is answered by it: the claim's snapshot is later.
          yield* Queue.clear(wake)
          const result = yield* processBatch(db, publisher).pipe(
            Effect.catchCause((cause) =>
              // A database outage: back off by the poll interval, keep the worker.
              Effect.as(Effect.logWarning("outbox claim failed", cause), { _tag: "Failed" } as BatchResult)
            )
          )
          if (result._tag === "Refused") return yield* Effect.sleep(result.retryAfter)
          if (result._tag === "Failed") return yield* idle(wake, claimedAt)
          if (result.count >= config.batchSize) yield* wakeOne
          // Not "fewer than a batch": publishing a row makes the next of its aggregate claimable,
          // and no NOTIFY says so. Only an empty claim means there is nothing to do.
          if (result.count > 0 || (yield* idleIfHeard(wake, claimedAt, heard, result.due))) return
          // The LISTEN was off for some of the claim: on again, then claim again at once; that
          // claim sees what committed before the LISTEN, the LISTEN announces what comes after.
          if (!(yield* listen)) yield* idle(wake, claimedAt)
        }).pipe(Effect.forever)
      const fibers = yield* Effect.forEach(wakes, (wake) => Effect.forkScoped(worker(wake)))
      return yield* Fiber.joinAll(fibers).pipe(Effect.andThen(Effect.never))
    }).pipe(Effect.scoped)

    return { run, breakerState }
  })

/** Reads the table's counts into `txstream_events_in_queue{status}`. */
export const refreshQueueGauge = (db: Pick<SqlClient, "queryAs">) =>
  db.queryAs(StatusCount, Sql.countByStatus).pipe(
    Effect.flatMap((rows) => {
      const counts = new Map<string, number>([["pending", 0], ["published", 0], ["failed", 0]])
      for (const row of rows) counts.set(row.status, row.count)
      return Effect.forEach(counts, ([status, count]) => Metric.update(inQueue(status), count), { discard: true })
    }),
    Effect.catchCause((cause) => Effect.logDebug("outbox queue gauge not refreshed", cause))
  )

/** Kafka did not take the publish for want of a broker: no answer in time, or unreachable. */
const unavailable = (error: unknown): boolean =>
  error instanceof PublisherError ? error.reason === "unavailable" : Cause.isTimeoutError(error)

/** `times` observations of `value`, in one step rather than one effect each. */
const observeEach = (metric: Metric.Metric<number, unknown>, value: number, times: number) =>
  times === 0 ? Effect.void : Effect.contextWith((context: Context.Context<never>) =>
    Effect.sync(() => {
      for (let i = 0; i < times; i++) metric.updateUnsafe(value, context)
    })
  )

