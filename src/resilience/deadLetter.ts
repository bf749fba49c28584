/**
 * Dead-lettering, written once: the message a dead-letter destination receives. Backends whose
 * dead-letter destination is a topic of their own (memory, RabbitMQ, Kafka) publish this message
 * there; the reason and the topic it was consumed from travel as headers.
 *
 * For a source with no dead-letter destination of its own (a table of claimed rows, a queue
 * whose broker cannot dead-letter), `deadLetterTo(topic)` is the same thing as middleware: it
 * needs only a `Publisher` and a topic name (Watermill's poison queue).
 */
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import { Headers, type Message } from "../capabilities/Message.ts"
import { Publisher } from "../capabilities/Publisher.ts"
import type { Middleware } from "../messaging/Handler.ts"
import * as Outcome from "../messaging/Outcome.ts"
import { failureReason } from "../messaging/Outcome.ts"

/** `message` as dead-lettered from `source` for `reason`: same id, key and body, two headers more. */
export const deadLetterMessage = (message: Message, reason: string, source: string): Message => ({
  ...message,
  headers: { ...message.headers, [Headers.deadLetterReason]: reason, [Headers.deadLetterSource]: source }
})

export interface DeadLetterToOptions {
  /**
   * On this attempt a failure (or `Outcome.retry`) is dead-lettered here too, as the runner
   * does after its `maxAttempts` [none: only `Outcome.deadLetter` is published].
   */
  readonly maxAttempts?: number
}

/**
 * Publishes what the handler dead-letters to `topic` (`deadLetterMessage`: same id, key, body,
 * with the reason and source as headers) and acks it. If that publish fails the outcome is
 * `Outcome.retry`, never an ack: the message stays with its source until it is stored somewhere.
 *
 * @example
 * ```ts
 * // retryLater outside: a failed dead-letter publish is retried with backoff too
 * stack(handler, retryLater(policy), deadLetterTo("orders.dead", { maxAttempts: 5 }))
 * ```
 */
export const deadLetterTo = (topic: string, options: DeadLetterToOptions = {}): Middleware<never, Publisher> => (handler) => (received) => {
  const lastAttempt = options.maxAttempts !== undefined && received.attempt >= options.maxAttempts
  const exhausted = (reason: string) => `${reason} (after ${received.attempt} attempts)`
  const publish = (reason: string): Effect.Effect<Outcome.Outcome, never, Publisher> =>
    Publisher.use((publisher) => publisher.publish(topic, [deadLetterMessage(received.message, reason, received.topic)])).pipe(
      Effect.as(Outcome.ack),
      Effect.catch((error) => Effect.succeed(Outcome.retry(`dead-lettering to "${topic}" failed: ${error.message}`)))
    )
  return Effect.matchCauseEffect(handler(received), {
    onSuccess: (outcome) => {
      if (outcome?._tag === "DeadLetter") return publish(outcome.reason)
      if (outcome?._tag === "Retry" && lastAttempt) return publish(exhausted(outcome.reason))
      return Effect.succeed(outcome)
    },
    onFailure: (cause) =>
      lastAttempt && (Cause.hasFails(cause) || Cause.hasDies(cause)) ? publish(exhausted(failureReason(cause))) : Effect.failCause(cause)
  })
}
