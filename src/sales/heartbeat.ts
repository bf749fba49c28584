/**
 * Worker heartbeats: every `interval` a worker publishes who it is, which queue it reads and its
 * load to the `heartbeatTopic` (key: the worker id), and a last one with `leaving: true` when it
 * shuts down. The balancer learns workers from them (a worker that announces itself joins) and
 * takes out one whose heartbeats stop.
 */
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import { bodyTextStrict, type Message } from "../capabilities/Message.ts"
import { Publisher } from "../capabilities/Publisher.ts"

/** The default heartbeat topic (`HEARTBEAT_TOPIC`). */
export const heartbeatTopic = "sales.heartbeats"

export const Heartbeat = Schema.Struct({
  worker: Schema.String.check(Schema.isNonEmpty()),
  queue: Schema.String.check(Schema.isNonEmpty()),
  inFlight: Schema.Int.check(Schema.isGreaterThanOrEqualTo(0)),
  answered: Schema.Int.check(Schema.isGreaterThanOrEqualTo(0)),
  prefetch: Schema.Int.check(Schema.isGreaterThan(0)),
  /** How often the worker beats: the balancer's timeout is a multiple of it. */
  intervalMillis: Schema.Int.check(Schema.isGreaterThan(0)),
  leaving: Schema.Boolean,
  /** Epoch millis when it was sent: a beat that waited in a queue is stale. */
  sentAt: Schema.Int
})

export type Heartbeat = typeof Heartbeat.Type

const decode = Schema.decodeUnknownOption(Schema.fromJsonString(Heartbeat))

/** The heartbeat in a message, or undefined for anything else (it is ignored, not retried). */
export const parseHeartbeat = (message: Pick<Message, "body">): Heartbeat | undefined => {
  const text = bodyTextStrict(message)
  if (text === undefined) return undefined
  const decoded = decode(text)
  return decoded._tag === "Some" ? decoded.value : undefined
}

export interface HeartbeatSource {
  /** Where beats go [heartbeatTopic]. */
  readonly topic?: string
  readonly worker: string
  readonly queue: string
  readonly prefetch: number
  readonly load: Effect.Effect<{ readonly inFlight: number; readonly answered: number }>
}

const publishOne = (source: HeartbeatSource, interval: Duration.Duration, leaving: boolean) =>
  Effect.flatMap(Effect.all([source.load, Clock.currentTimeMillis]), ([load, sentAt]) =>
    Publisher.use((publisher) =>
      publisher.publish(source.topic ?? heartbeatTopic, [{
        key: source.worker,
        body: JSON.stringify({
          worker: source.worker,
          queue: source.queue,
          inFlight: load.inFlight,
          answered: load.answered,
          prefetch: source.prefetch,
          intervalMillis: Duration.toMillis(interval),
          leaving,
          sentAt
        } satisfies Heartbeat)
      }])
    ))

/**
 * Beats until interrupted, then says it is leaving. A beat that cannot be published is logged
 * and skipped: a broker hiccup must not stop the worker, and a missed beat is what a balancer
 * should see then anyway.
 */
export const publishHeartbeats = (source: HeartbeatSource, interval: Duration.Input): Effect.Effect<never, never, Publisher> => {
  const every = Duration.fromInputUnsafe(interval)
  const beat = publishOne(source, every, false).pipe(
    Effect.catch((error) => Effect.logWarning(`heartbeat not published: ${error.message}`))
  )
  return beat.pipe(
    Effect.repeat(Schedule.spaced(every)),
    Effect.andThen(Effect.never),
    Effect.onInterrupt(() => publishOne(source, every, true).pipe(Effect.timeoutOption("2 seconds"), Effect.ignore))
  )
}
