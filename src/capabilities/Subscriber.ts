/**
 * Subscriber: takes messages from a broker, one settled delivery at a time.
 *
 * Contract (every backend; `test/contract/broker.ts` checks it):
 * - At-least-once: a delivery that is not acked before its consumer goes away (stop, scope
 *   close, crash, lost connection) is delivered again, to this group, later.
 * - Consumers of one `group` compete: each message goes to one of them. Different groups on the
 *   same topic each get every message.
 * - Settling is idempotent: the first of `ack`, `retry` and `deadLetter` wins; later calls are
 *   no-ops. `retry` hands the message back for another attempt with `attempt + 1`;
 *   `deadLetter(reason)` moves it to the topic `deadLetterTopic(group)` with the reason in the
 *   `x-dead-letter-reason` header, then acks it.
 * - `subscribe` declares what it needs (queue, bindings, topic, dead-letter destination), so it
 *   works against an empty broker. `declare` does the same without consuming, so publishers can
 *   make sure nothing they send before the first consumer starts is dropped.
 * - The direct topic (`directTopic`, AMQP's default exchange) routes by group name: a message
 *   published to it with key K goes to the group named K, if declared, and nowhere else; a
 *   subscription to it consumes its group and binds nothing (backends that support it, see
 *   `test/contract/broker.ts`: memory and RabbitMQ). Request/reply rides on it with the
 *   `reply-to` and `correlation-id` headers (`Headers` in `./Message.ts`).
 * - `Consumer.stop` ends intake: no new deliveries are handed out, the ones buffered but not yet
 *   taken go back to the broker, and `take` fails with `Cause.Done` once the buffer is empty.
 *   Closing the scope does the same and also abandons unsettled deliveries to redelivery.
 */
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Scope from "effect/Scope"
import type { Delivery as DeliveryOf, DeliverySource } from "./Delivery.ts"
import { describeCause } from "./describeCause.ts"

export interface Subscription {
  /** Where publishers publish: an AMQP topic exchange, a Kafka topic, a memory topic. */
  readonly topic: string
  /** Competing consumers share a group: an AMQP queue, a Kafka consumer group. */
  readonly group: string
  /**
   * Routing-key pattern in AMQP topic syntax (`*` one word, `#` zero or more), default `#`.
   * Backends without server-side routing filter on the client and ack what does not match.
   */
  readonly filter?: string
  /** Deliveries handed out but not yet settled, at most. */
  readonly prefetch?: number
  /**
   * A private group that lives with its consumer, like an AMQP client's reply queue (exclusive,
   * auto-delete): `subscribe` creates it, and fails if a shared group of that name exists; no
   * other program may read it; it is deleted, with whatever it holds, when its consumer goes
   * away. It has no dead-letter destination: dead-lettering one of its deliveries drops it.
   * `declare` refuses it (nothing would ever delete it). Backends with `exclusiveGroups` in
   * `test/contract/broker.ts` (memory, RabbitMQ); the others fail the subscribe.
   */
  readonly exclusive?: boolean
}

/** A delivery from a subscription; see `./Delivery.ts` for what settling means. */
export type Delivery = DeliveryOf<SubscriberError>

/** A subscription's deliveries, one consumer (group member) of it. */
export type Consumer = DeliverySource<SubscriberError>

export class SubscriberError extends Data.TaggedError("SubscriberError")<{
  readonly operation: string
  readonly subject: string
  readonly cause: unknown
}> {
  override get message() {
    return `${this.operation} on "${this.subject}" failed: ${describeCause(this.cause)}`
  }
}

export interface SubscriberShape {
  readonly subscribe: (subscription: Subscription) => Effect.Effect<Consumer, SubscriberError, Scope.Scope>
  readonly declare: (subscription: Subscription) => Effect.Effect<void, SubscriberError>
  /** Whether the broker is reachable now, without waiting; `/readyz` reports it. */
  readonly healthy: Effect.Effect<boolean>
  /**
   * How many consumers read `group` now, undefined when no such group exists (backends that can
   * tell: memory and RabbitMQ). A balancer takes a worker whose queue lost its consumer out.
   */
  readonly consumers?: (group: string) => Effect.Effect<number | undefined, SubscriberError>
}

export class Subscriber extends Context.Service<Subscriber, SubscriberShape>()("queueworks/Subscriber") {}

/** The topic dead-lettered messages of a group are published to; subscribe to it to read them. */
export const deadLetterTopic = (group: string): string => `${group}.dlq`

export const defaultPrefetch = 100

/** The topic that routes a message to the group named by its key (AMQP's default exchange). */
export const directTopic = ""

/** AMQP topic-pattern matching, for backends that filter on the client. */
export const matchesPattern = (pattern: string, key: string): boolean => {
  const p = pattern.split(".")
  const k = key.split(".")
  const go = (i: number, j: number): boolean => {
    if (i === p.length) return j === k.length
    if (p[i] === "#") return go(i + 1, j) || (j < k.length && go(i, j + 1))
    if (j === k.length) return false
    return (p[i] === "*" || p[i] === k[j]) && go(i + 1, j + 1)
  }
  return go(0, 0)
}
