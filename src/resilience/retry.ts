/**
 * Retry middlewares: two places to wait before trying a message again.
 *
 * - `retry(schedule)` waits inside the handler call. Right for short blips — a deadlock victim,
 *   a dropped connection — where the next try is milliseconds away. Its waits count against the
 *   handler's timeout, and a redelivered message starts the schedule again.
 * - `retryLater(policy)` hands the wait to the runner: a failure becomes `Outcome.retry(reason,
 *   { after })` with the policy's wait for this delivery's attempt; the runner holds the message
 *   that long (a shutdown cuts it short) and hands it back. Right for outages measured in
 *   seconds; every try is a delivery, so the runner's `maxAttempts` (and the policy's) still end
 *   in a dead letter.
 *
 * `retry` keeps the runner's worker busy while it waits; with `retryLater` the message waits in
 * a fiber of its own, unsettled, and the worker goes on (the source's prefetch bounds how many
 * messages wait at once).
 *
 * Both retry typed failures; `retryLater` also retries defects (as the runner would), while
 * `Effect.retry` leaves a defect alone. Interruption is never retried: it is a shutdown or a
 * deadline, and must go through.
 */
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import type * as Schedule from "effect/Schedule"
import type { Middleware } from "../messaging/Handler.ts"
import * as Outcome from "../messaging/Outcome.ts"
import { failureReason } from "../messaging/Outcome.ts"
import { type BackoffPolicy, delayFor, exhausted } from "./backoff.ts"

/**
 * Retries the handler in process on typed failures, per `schedule` (e.g. `backoff(policy)`);
 * when the schedule ends, the last failure goes to the runner, which retries the delivery.
 *
 * @example
 * ```ts
 * stack(handler, retry(backoff({ base: "50 millis", max: "1 second", maxAttempts: 3 })))
 * ```
 */
export const retry = (schedule: Schedule.Schedule<unknown, unknown>): Middleware => (handler) => (received) =>
  Effect.retry(handler(received), schedule)

/**
 * Turns a failure of the handler (typed or a defect) into `Outcome.retry(reason, { after })`,
 * `after` being `delayFor(policy, received.attempt)`; an `Outcome.retry` the handler returns
 * without `after` gets the same wait. On the policy's last attempt (`maxAttempts`) the outcome
 * is `Outcome.deadLetter` with the reason instead.
 *
 * Gotcha: `received.attempt` is the source's count. A source that cannot count redeliveries
 * reports 1 every time, and every wait is then the first one.
 */
export const retryLater = (policy: BackoffPolicy): Middleware => (handler) => (received) => {
  const later = (reason: string): Effect.Effect<Outcome.Outcome> =>
    exhausted(policy, received.attempt)
      ? Effect.succeed(Outcome.deadLetter(`${reason} (after ${received.attempt} attempts)`))
      : Effect.map(delayFor(policy, received.attempt), (after) => Outcome.retry(reason, { after }))
  return Effect.matchCauseEffect(handler(received), {
    onSuccess: (outcome) =>
      outcome !== undefined && outcome._tag === "Retry" && outcome.after === undefined ? later(outcome.reason) : Effect.succeed(outcome),
    onFailure: (cause) => Cause.hasFails(cause) || Cause.hasDies(cause) ? later(failureReason(cause)) : Effect.failCause(cause)
  })
}
