/**
 * Publisher: hands messages to a broker.
 *
 * Contract (every backend):
 * - `publish` succeeds only once the broker has taken responsibility for every message
 *   (RabbitMQ publisher confirms, Kafka acks=all, the memory broker's enqueue). On failure none of
 *   the batch may be assumed delivered; publishing again may duplicate, never lose.
 * - Messages published in one call to one topic with the same key keep their order.
 * - Safe to call from many fibers at once.
 * - Each call runs in a `publish <topic>` span whose context is written to the `traceparent`
 *   header of every message, so a consumer's span becomes its child.
 * - A failure says, where the backend can tell, whether the broker `refused` the messages (it
 *   answered no: too large, not allowed; sending them again will fail again) or was
 *   `unavailable` (unreachable, no answer in time, leader moving; the messages are not at fault).
 * - `healthy` says whether the broker can be reached now, for readiness: a backend whose client
 *   does not notice a broker going away by itself asks the broker (bounded, never failing).
 */
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import { describeCause } from "./describeCause.ts"
import { Headers, normalize, type Message, type OutgoingMessage } from "./Message.ts"
import { formatTraceparent } from "../messaging/traceContext.ts"

// A stack trace per publish costs more than the rest of the span.
const noStackTrace = { captureStackTrace: false } as const

export class PublisherError extends Data.TaggedError("PublisherError")<{
  readonly operation: string
  readonly topic: string
  readonly cause: unknown
  /** Why, when the backend can tell: see the contract above. */
  readonly reason?: "refused" | "unavailable"
}> {
  override get message() {
    return `${this.operation} to "${this.topic}" failed: ${describeCause(this.cause)}`
  }
}

export interface PublisherShape {
  readonly publish: (topic: string, messages: ReadonlyArray<OutgoingMessage>) => Effect.Effect<void, PublisherError>
  /** The broker answers now; false rather than a failure when it does not. */
  readonly healthy: Effect.Effect<boolean>
}

export class Publisher extends Context.Service<Publisher, PublisherShape>()("queueworks/Publisher") {
  /**
   * Builds a Publisher from a backend's raw send and health check [always healthy]. Tracing and
   * id assignment live here so no backend can forget them.
   */
  static make(
    system: string,
    send: (topic: string, messages: ReadonlyArray<Message>) => Effect.Effect<void, PublisherError>,
    healthy: Effect.Effect<boolean> = Effect.succeed(true)
  ): PublisherShape {
    // Runs on every publish: plain combinators, the traceparent taken from the span at hand.
    const stamp = (messages: ReadonlyArray<OutgoingMessage>, traceparent: string): Array<Message> => {
      const ready = new Array<Message>(messages.length)
      for (let i = 0; i < messages.length; i++) {
        const message = normalize(messages[i]!)
        ready[i] = message.headers[Headers.traceparent] !== undefined
          ? message
          : { ...message, headers: { ...message.headers, [Headers.traceparent]: traceparent } }
      }
      return ready
    }
    return {
      healthy,
      publish: (topic, messages) =>
        Effect.useSpan(`publish ${topic}`, {
          kind: "producer",
          attributes: { "messaging.system": system, "messaging.destination.name": topic, "messaging.batch.message_count": messages.length }
        }, (span) =>
          Effect.withParentSpan(
            send(topic, stamp(messages, formatTraceparent(span.traceId, span.spanId, span.sampled))),
            span,
            noStackTrace
          ))
    }
  }
}
