/**
 * The event counter: counts unique events per user and type from the broker, then writes one
 * JSON file per type.
 *
 * Flow: the batch consume runner hands over the messages at hand → each is parsed (malformed →
 * dead-lettered with the reason) → the events go to the queue of their type → that type's worker
 * records them in the CounterStore → the handler, which waited for its batch's events, returns
 * and each message is acked. So a message is acked only once counted, and each type is counted
 * concurrently with the others.
 *
 * It stops by itself `idleTimeout` after the last message, or when interrupted (SIGTERM); either
 * way intake stops, counting in flight finishes and is acked, and the files are written.
 */
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as FileSystem from "effect/FileSystem"
import * as Metric from "effect/Metric"
import * as Path from "effect/Path"
import * as Queue from "effect/Queue"
import * as Result from "effect/Result"
import * as Schedule from "effect/Schedule"
import type { Received } from "../capabilities/Delivery.ts"
import { consumeBatches } from "../messaging/consume.ts"
import * as Outcome from "../messaging/Outcome.ts"
import { CounterStore } from "./CounterStore.ts"
import { bindingPattern, type CounterEvent, type Counts, eventTypes, type EventType, malformedKinds, parseEvent, sortedByUser, totals } from "./events.ts"

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
}

const counted = Metric.counter("eventcounter_events", { description: "Events by result (counted, duplicate)", incremental: true })
const malformed = Metric.counter("eventcounter_malformed_messages", {
  description: "Messages dead-lettered as malformed, by reason",
  incremental: true
})

/** Events of one type from one batch of messages, and the signal that they are recorded. */
interface Job {
  readonly events: ReadonlyArray<CounterEvent>
  readonly done: Deferred.Deferred<void>
}

/** A store that is down holds the counter back, never loses or dead-letters a good message. */
const storeRetry = Schedule.min([Schedule.exponential("100 millis"), Schedule.spaced("5 seconds")]).pipe(Schedule.jittered)

export const runCounter = (config: CounterConfig) =>
  Effect.scoped(Effect.gen(function*() {
    const store = yield* CounterStore
    const queues = {} as Record<EventType, Queue.Queue<Job, Cause.Done>>
    for (const type of eventTypes) queues[type] = yield* Queue.unbounded<Job, Cause.Done>()

    const record = (events: ReadonlyArray<CounterEvent>) =>
      store.record(events).pipe(
        Effect.tapError((error) => Effect.logWarning("recording counts failed; retrying", error.message)),
        Effect.retry(storeRetry)
      )
    const countedNew = Metric.withAttributes(counted, { result: "counted" })
    const duplicates = Metric.withAttributes(counted, { result: "duplicate" })
    // Each type is counted by its own fiber, concurrently with the others; jobs that queued up
    // while a store call ran are recorded together in the next one.
    const typeWorker = (queue: Queue.Queue<Job, Cause.Done>) =>
      Effect.forever(Effect.gen(function*() {
        const jobs = yield* Queue.takeBetween(queue, 1, 64)
        const events = jobs.length === 1 ? jobs[0]!.events : jobs.flatMap((job) => job.events)
        const fresh = yield* chunks(events, config.batchSize, record)
        yield* Metric.update(countedNew, fresh)
        yield* Metric.update(duplicates, events.length - fresh)
        for (const job of jobs) Deferred.doneUnsafe(job.done, Effect.void)
      })).pipe(Effect.catchIf(Cause.isDone, () => Effect.void))

    const workers = yield* Effect.forEach(eventTypes, (type) => Effect.forkScoped(typeWorker(queues[type])))
    // Finalizers run in reverse: by the time they run the consume runner has settled its last
    // batch; the type queues drain first, then the counts are written.
    yield* Effect.addFinalizer(() => writeCounts(config.outputDir))
    yield* Effect.addFinalizer(() =>
      Effect.forEach(eventTypes, (type) => Queue.end(queues[type]), { discard: true }).pipe(
        Effect.andThen(Fiber.awaitAll(workers))
      )
    )

    const startedAt = yield* Clock.currentTimeMillis
    const activity = { lastAt: startedAt, firstAt: 0, inFlight: 0, handled: 0 }
    const begin = (n: number) =>
      Effect.map(Clock.currentTimeMillis, (now) => {
        if (activity.handled === 0 && activity.inFlight === 0) activity.firstAt = now
        activity.lastAt = now
        activity.inFlight += n
      })
    const finish = (n: number) =>
      Effect.map(Clock.currentTimeMillis, (now) => {
        activity.lastAt = now
        activity.inFlight -= n
        activity.handled += n
      })
    const rate = () => {
      if (activity.handled === 0) return { messages: 0, seconds: 0, perSecond: 0 }
      const seconds = Math.max(activity.lastAt - activity.firstAt, 1) / 1000
      return { messages: activity.handled, seconds, perSecond: Math.round(activity.handled / seconds) }
    }
    // Long runs report progress; a summary with the rate closes every run (the benchmark reads it).
    yield* Effect.addFinalizer(() => Effect.logInfo("counter finished").pipe(Effect.annotateLogs(rate())))
    yield* Effect.forkScoped(Effect.gen(function*() {
      let reported = 0
      while (true) {
        yield* Effect.sleep("10 seconds")
        if (activity.handled === reported) continue
        reported = activity.handled
        yield* Effect.logInfo("counting").pipe(Effect.annotateLogs(rate()))
      }
    }))

    const malformedBy = Object.fromEntries(malformedKinds.map((kind) => [kind, Metric.withAttributes(malformed, { reason: kind })]))
    const handler = (deliveries: ReadonlyArray<Received>) =>
      Effect.gen(function*() {
        yield* begin(deliveries.length)
        const outcomes: Array<Outcome.Outcome> = []
        const byType: Record<EventType, Array<CounterEvent>> = { created: [], updated: [], deleted: [] }
        for (const delivery of deliveries) {
          const parsed = parseEvent(delivery.message, config.maxMessageBytes)
          if (Result.isFailure(parsed)) {
            yield* Metric.update(malformedBy[parsed.failure.kind]!, 1)
            outcomes.push(Outcome.deadLetter(parsed.failure.reason))
          } else {
            byType[parsed.success.type].push(parsed.success)
            outcomes.push(Outcome.ack)
          }
        }
        const waits: Array<Effect.Effect<void>> = []
        for (const type of eventTypes) {
          if (byType[type].length === 0) continue
          const done = Deferred.makeUnsafe<void>()
          Queue.offerUnsafe(queues[type], { events: byType[type], done })
          waits.push(Deferred.await(done))
        }
        yield* Effect.all(waits, { concurrency: "unbounded", discard: true })
        return outcomes
      }).pipe(Effect.ensuring(finish(deliveries.length)))

    const idleMillis = Duration.toMillis(config.idleTimeout)
    const idle = Effect.gen(function*() {
      while (true) {
        const quietFor = (yield* Clock.currentTimeMillis) - activity.lastAt
        if (quietFor >= idleMillis && activity.inFlight === 0) return
        yield* Effect.sleep(Duration.millis(Math.max(idleMillis - quietFor, Math.min(idleMillis, 100))))
      }
    })

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
      idle.pipe(Effect.andThen(Effect.logInfo(`no message for ${Duration.format(config.idleTimeout)}, stopping`)))
    )
  }))

/** Records `events` in store calls of at most `size`, returning how many were new. */
const chunks = <E>(
  events: ReadonlyArray<CounterEvent>,
  size: number,
  record: (events: ReadonlyArray<CounterEvent>) => Effect.Effect<number, E>
): Effect.Effect<number, E> =>
  events.length <= size
    ? record(events)
    : Effect.reduce(
      Array.from({ length: Math.ceil(events.length / size) }, (_, i) => events.slice(i * size, (i + 1) * size)),
      () => 0,
      (total, chunk) => Effect.map(record(chunk), (n) => total + n)
    )

/** Writes `<type>.json` = `{ "<userId>": count }` for every type. */
const writeCounts = (outputDir: string) =>
  Effect.gen(function*() {
    const store = yield* CounterStore
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    const counts: Counts = yield* store.snapshot
    yield* fs.makeDirectory(outputDir, { recursive: true })
    for (const type of eventTypes) {
      const file = path.join(outputDir, `${type}.json`)
      // Users in a stable order, so two runs with the same counts write the same files.
      yield* fs.writeFileString(file, JSON.stringify(sortedByUser(counts[type]), null, 2) + "\n")
    }
    yield* Effect.logInfo("counts written").pipe(Effect.annotateLogs({ outputDir, ...totals(counts) }))
  }).pipe(
    Effect.catchCause((cause) => Effect.logError("writing the counts failed", Cause.pretty(cause)))
  )
