/**
 * Deliveries and the sources that hand them out: what every message source has in common (a
 * broker subscription, a session of a session queue, a batch of claimed outbox rows, a reply
 * queue), so one runner (`src/messaging/consume.ts`) serves them all.
 *
 * - A handler sees a `Received`: the message, where it came from and which attempt this is. It
 *   never settles: settling is the runner's, by the handler's `Outcome`.
 * - A `Delivery` adds the settlements. They are idempotent: the first of `ack`, `retry` and
 *   `deadLetter` wins, later calls are no-ops. A settlement that fails leaves the delivery
 *   unsettled; the source delivers it again later (at-least-once).
 * - A `DeliverySource` hands deliveries out until `stop`: then no new one is handed out, the
 *   ones it buffered go back, and `take` fails with `Cause.Done` once its buffer is empty.
 */
import type * as Cause from "effect/Cause"
import type * as Effect from "effect/Effect"
import type { Message } from "./Message.ts"

/** What a handler is given: the message, never the means to settle it. */
export interface Received {
  readonly message: Message
  /** The topic (queue, session, table) the message was taken from. */
  readonly topic: string
  /** 1 on first delivery; counts redeliveries where the source can know them. */
  readonly attempt: number
}

export interface Delivery<E = unknown> extends Received {
  readonly ack: Effect.Effect<void, E>
  /** Hands the message back for another attempt, with `attempt + 1`. */
  readonly retry: Effect.Effect<void, E>
  /** Moves the message aside for good, with the reason, then counts it as settled. */
  readonly deadLetter: (reason: string) => Effect.Effect<void, E>
}

export interface DeliverySource<E = unknown> {
  readonly take: Effect.Effect<Delivery<E>, Cause.Done | E>
  /** At least one delivery, and up to `max` of those already buffered, in delivery order. */
  readonly takeBatch: (max: number) => Effect.Effect<ReadonlyArray<Delivery<E>>, Cause.Done | E>
  readonly stop: Effect.Effect<void>
}
