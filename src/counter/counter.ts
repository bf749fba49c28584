/**
 * The event counter: counts unique events per user and type from the broker, then writes one
 * JSON file per type.
 *
 * Flow: the batch consume runner hands over the messages at hand → each is parsed (malformed →
 * dead-lettered with the reason) → the events go to the queue of their type (`KeyedQueue`) →
 * that type's worker records them in the CounterStore → the handler, which waited for its
 * batch's events, returns and each message is acked. So a message is acked only once counted,
 * and each type is counted concurrently with the others.
 *
 * Store failures: one that passes (the database is down) holds the batch and is retried with
 * backoff, never losing or dead-lettering a good message. One that is permanent for the data
 * (the database can never store an event) is not retried: the batch is split until the events
 * it refuses are alone, their messages are dead-lettered with the store's reason, and the rest
 * are counted. No message can stall the counter.
 *
 * It stops by itself `idleTimeout` after the last message, counting only time while the broker is
 * reachable (`whenIdle`), or when interrupted (SIGTERM); either way intake stops, counting in
 * flight finishes and is acked, and the files are written (`output.ts`): complete only after an
 * idle stop; otherwise marked partial, and the next run in the same directory adds to them.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Metric from "effect/Metric"
import * as Result from "effect/Result"
import * as Schedule from "effect/Schedule"
import type { Received } from "../capabilities/Delivery.ts"
import { Subscriber } from "../capabilities/Subscriber.ts"
import { consumeBatches } from "../messaging/consume.ts"
import { type ActivitySnapshot, makeActivity, whenIdle } from "../messaging/idle.ts"
import * as KeyedQueue from "../messaging/keyed.ts"
import * as Outcome from "../messaging/Outcome.ts"
import { isolatePoison } from "../resilience/isolate.ts"
import { rate, reportProgress } from "../runtime/progress.ts"
import { CounterStore, type CounterStoreError } from "./CounterStore.ts"
import { bindingPattern, type CounterEvent, eventTypes, type EventType, malformedKinds, parseEvent } from "./events.ts"
import * as Output from "./output.ts"

export interface CounterConfig {
  readonly exchange: string
  readonly queue: string
  readonly outputDir: string
  readonly idleTimeout: Duration.Duration
  /** Unacked deliveries held at once; a handler gets up to half of them per batch. */
  readonly prefetch: number
  /** Events recorded in one store call per type. */
  readonly batchSize: number
  readonly maxMessageBytes: number
  /** What to do with the files of an earlier run that did not finish; `files` when unset (see `Output.CarryOver`). */
  readonly carryOver?: Output.CarryOver | undefined
}

const counted = Metric.counter("eventcounter_events", { description: "Events by result (counted, duplicate)", incremental: true })
const malformed = Metric.counter("eventcounter_malformed_messages", {
  description: "Messages dead-lettered as malformed, by reason",
  incremental: true
})

/** A store that is down holds the counter back, never loses or dead-letters a good message. */
const storeRetry = Schedule.min([Schedule.exponential("100 millis"), Schedule.spaced("5 seconds")]).pipe(Schedule.jittered)

/**
 * One handler batch's events of one type, handed to that type's worker. `KeyedQueue.submit`
 * tells only that the batch was processed, so the worker notes here the events the store can
 * never record, with why: the handler dead-letters their messages and acks the others.
 */
interface Submission {
  readonly events: ReadonlyArray<CounterEvent>
  readonly refused: Map<CounterEvent, string>
}

/** A dead-letter reason from a store error: one line, short enough for a header. */
const refusalReason = (error: CounterStoreError): string => {
  const line = error.message.replace(/\s+/g, " ").trim()
  return line.length <= 300 ? line : `${line.slice(0, 299)}…`
}

/**
 * Counts until idle or interrupted, then writes the files. `prepared` is what `Output.prepare`
 * found in the output directory; a program passes it to check the directory before it connects
 * to anything, and without it the check runs here first.
 */
export const runCounter = (config: CounterConfig, prepared?: Output.Prepared) =>
  Effect.gen(function*() {
    const output = prepared ?? (yield* Output.prepare(config))
    // After the counting scope closed: the last batch is settled and the type queues drained.
    return yield* Effect.onExit(count(config), (exit) => writeCounts(config, output, exit))
  })

const count = (config: CounterConfig) =>
  Effect.scoped(Effect.gen(function*() {
    const store = yield* CounterStore
    const subscriber = yield* Subscriber

    // Fails only with an error that is permanent for these events; any other is retried.
    const record = (events: ReadonlyArray<CounterEvent>) =>
      store.record(events).pipe(
        Effect.tapError((error) => error.permanent ? Effect.void : Effect.logWarning("recording counts failed; retrying", error.message)),
        Effect.retry({ schedule: storeRetry, while: (error) => !error.permanent })
      )
    const countedNew = Metric.withAttributes(counted, { result: "counted" })
    const duplicates = Metric.withAttributes(counted, { result: "duplicate" })
    const refusedByStore = Metric.withAttributes(malformed, { reason: "store_refused" })

    /** Records `events` in store calls of at most `batchSize`, isolating the ones the store refuses for good. */
    const recordAll = (events: ReadonlyArray<CounterEvent>) =>
      Effect.gen(function*() {
        let fresh = 0
        const refused: Array<{ readonly event: CounterEvent; readonly reason: string }> = []
        for (const chunk of chunks(events, config.batchSize)) {
          const { poison, written } = yield* isolatePoison(chunk, record, { isPermanent: (error) => error.permanent })
          for (const n of written) fresh += n
          for (const { error, item } of poison) refused.push({ event: item, reason: refusalReason(error) })
        }
        return { fresh, refused }
      })

    // Each type is counted by its own worker, concurrently with the others; the batches that
    // queued up while a store call ran are recorded together in the next one.
    const byType = yield* KeyedQueue.make({
      process: (_type: EventType, submissions: ReadonlyArray<Submission>) =>
        Effect.gen(function*() {
          const events = submissions.length === 1 ? submissions[0]!.events : submissions.flatMap((s) => s.events)
          const { fresh, refused } = yield* recordAll(events)
          yield* Metric.update(countedNew, fresh)
          yield* Metric.update(duplicates, events.length - fresh - refused.length)
          if (refused.length === 0) return
          yield* Metric.update(refusedByStore, refused.length)
          // Rare: find each refused event's submission (events are distinct objects, one per message).
          const reasons = new Map(refused.map(({ event, reason }) => [event, reason]))
          for (const submission of submissions) {
            for (const event of submission.events) {
              const reason = reasons.get(event)
              if (reason !== undefined) submission.refused.set(event, reason)
            }
          }
        }),
      maxBatch: 64
    })

    const activity = yield* makeActivity
    const summary = (snapshot: ActivitySnapshot) => rate(snapshot.handled, snapshot.firstAt ?? snapshot.lastAt, snapshot.lastAt)
    // Long runs report progress; a summary with the rate closes every run (the benchmark reads it).
    yield* Effect.addFinalizer(() =>
      Effect.flatMap(activity.snapshot, (snapshot) => Effect.logInfo("counter finished").pipe(Effect.annotateLogs({ ...summary(snapshot) })))
    )
    yield* Effect.forkScoped(reportProgress({
      interval: "10 seconds",
      message: "counting",
      snapshot: activity.snapshot,
      annotations: (snapshot) => ({ ...summary(snapshot) }),
      equivalence: (a, b) => a.handled === b.handled
    }))

    const malformedBy = Object.fromEntries(malformedKinds.map((kind) => [kind, Metric.withAttributes(malformed, { reason: kind })]))
    const handler = (deliveries: ReadonlyArray<Received>) =>
      activity.track(
        deliveries.length,
        Effect.gen(function*() {
          const outcomes: Array<Outcome.Outcome> = []
          // The event of each message that parsed, at its message's index.
          const parsedAt: Array<CounterEvent | undefined> = []
          const events: Record<EventType, Array<CounterEvent>> = { created: [], updated: [], deleted: [] }
          for (const delivery of deliveries) {
            const parsed = parseEvent(delivery.message, config.maxMessageBytes)
            if (Result.isFailure(parsed)) {
              yield* Metric.update(malformedBy[parsed.failure.kind]!, 1)
              outcomes.push(Outcome.deadLetter(parsed.failure.reason))
              parsedAt.push(undefined)
            } else {
              events[parsed.success.type].push(parsed.success)
              outcomes.push(Outcome.ack)
              parsedAt.push(parsed.success)
            }
          }
          const submissions = eventTypes.filter((type) => events[type].length > 0).map((type) =>
            [type, { events: events[type], refused: new Map<CounterEvent, string>() }] as const
          )
          // Acked only once counted: the handler waits for every type of its batch.
          yield* Effect.all(submissions.map(([type, submission]) => byType.submit(type, submission)), {
            concurrency: "unbounded",
            discard: true
          })
          if (submissions.some(([, submission]) => submission.refused.size > 0)) {
            const refused = new Map(submissions.flatMap(([, submission]) => [...submission.refused]))
            for (let i = 0; i < parsedAt.length; i++) {
              const reason = parsedAt[i] === undefined ? undefined : refused.get(parsedAt[i]!)
              if (reason !== undefined) outcomes[i] = Outcome.deadLetter(reason)
            }
          }
          return outcomes
        })
      )

    yield* Effect.logInfo("counting events").pipe(
      Effect.annotateLogs({ exchange: config.exchange, queue: config.queue, idleTimeout: Duration.format(config.idleTimeout) })
    )
    yield* Effect.raceFirst(
      consumeBatches(
        { topic: config.exchange, group: config.queue, filter: bindingPattern, prefetch: config.prefetch },
        handler,
        // Two batches in flight: one is parsed and handed out while the other is being recorded.
        // No handler timeout: a store that is down holds the batch (the store call retries), and
        // a timeout would only turn that into redeliveries and, at last, dead letters.
        { concurrency: 2, maxBatch: Math.max(1, Math.ceil(config.prefetch / 2)), timeout: Duration.infinity }
      ),
      // A broker that is down is not an empty queue: only connected time counts towards idle.
      whenIdle(activity, { idleTimeout: config.idleTimeout, connected: subscriber.healthy }).pipe(
        Effect.andThen(Effect.logInfo(`no message for ${Duration.format(config.idleTimeout)}, stopping`))
      )
    )
  }))

/** `events` in pieces of at most `size`; one piece, not a copy, in the common case. */
const chunks = (events: ReadonlyArray<CounterEvent>, size: number): ReadonlyArray<ReadonlyArray<CounterEvent>> =>
  events.length <= size
    ? [events]
    : Array.from({ length: Math.ceil(events.length / size) }, (_, i) => events.slice(i * size, (i + 1) * size))

/** Writes the counts the store holds, saying whether the run that ended with `exit` completed. */
const writeCounts = (config: CounterConfig, output: Output.Prepared, exit: Exit.Exit<unknown, unknown>) =>
  CounterStore.use((store) => store.snapshot).pipe(
    Effect.mapError((cause) => new Output.CounterOutputError({ outputDir: config.outputDir, savedIn: undefined, cause })),
    Effect.flatMap((counts) => Output.write(config, output, counts, Output.stoppedBy(exit)))
  )
