/**
 * A deadline per handler call, as middleware.
 *
 * The runner bounds every handler call the same way, outermost, with the same error (its
 * `timeout` option, `defaultHandlerTimeout` = 20 s, under the 30 s shutdown deadline; kept by
 * one watchdog per runner, `watchdog.ts`, not a race per message), so one hung handler cannot
 * hold a SIGTERM until the process is killed. Use it yourself for a handler that knows its own
 * budget is shorter, or that wants a timeout other middleware can see: placed inside
 * `retryLater` or `circuitBreaker`, a timeout becomes a delayed retry or counts as a downstream
 * failure; the runner's own timeout is outside them all.
 *
 * The handler is interrupted, not abandoned: its finalizers run (a transaction rolls back, a
 * lock is released) before the timeout is reported.
 */
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type { Middleware } from "../messaging/Handler.ts"

export class HandlerTimeoutError extends Data.TaggedError("HandlerTimeoutError")<{
  readonly topic: string
  readonly messageId: string
  readonly timeout: Duration.Duration
}> {
  override get message() {
    return `handler for message ${this.messageId} from "${this.topic}" timed out after ${Duration.format(this.timeout)}`
  }
}

/**
 * Interrupts a handler call that runs longer than `duration` and fails it with
 * `HandlerTimeoutError`, which the runner retries like any failure.
 *
 * @example
 * ```ts
 * consume(subscription, stack(handler, retryLater(policy), timeout("5 seconds")))
 * ```
 */
export const timeout = (duration: Duration.Input): Middleware<HandlerTimeoutError> => {
  const limit = Duration.fromInputUnsafe(duration)
  return (handler) => (received) =>
    Effect.timeoutOrElse(handler(received), {
      duration: limit,
      orElse: () => Effect.fail(new HandlerTimeoutError({ topic: received.topic, messageId: received.message.id, timeout: limit }))
    })
}
