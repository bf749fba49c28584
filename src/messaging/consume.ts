/**
 * The consume runner: takes deliveries from a subscription and runs a handler on each, with the
 * per-message concerns written once — span, metrics, failure policy, settlement, shutdown.
 *
 * - The handler returns an `Outcome` (or nothing, meaning ack). A typed failure or a defect is
 *   retried; after `maxAttempts` deliveries the message is dead-lettered with the last reason.
 * - Each message runs in a `consume <topic>` span whose parent is the producer's span from the
 *   `traceparent` header.
 * - A message is settled only after its handler finished, so whatever the handler published or
 *   wrote is done before the ack.
 * - Interruption is the shutdown: no new message is taken; each handler already running finishes
 *   and is settled; buffered deliveries go back to the broker; then the consumer closes.
 */
import { Cause, Clock, type Duration, Effect, Exit, Fiber, Metric } from "effect"
import { Headers, type Message } from "../capabilities/Message.ts"
import { describeCause } from "../capabilities/Publisher.ts"
import { type Delivery, Subscriber, type SubscriberError, type Subscription } from "../capabilities/Subscriber.ts"
import * as Outcome from "./Outcome.ts"
import { parseTraceparent } from "./traceContext.ts"

export type Handler<E, R> = (message: Message, delivery: Delivery) => Effect.Effect<Outcome.Outcome | void, E, R>

export interface ConsumeOptions {
  /** Handlers running at once [the subscription's prefetch, else 100]. */
  readonly concurrency?: number
  /** Deliveries of one message before a failing one is dead-lettered [5]. */
  readonly maxAttempts?: number
  /** Longest a handler may run before it counts as failed [none]. */
  readonly timeout?: Duration.Input
}

const handled = Metric.counter("messages_handled", {
  description: "Messages settled by the consume runner, by subscription and outcome",
  incremental: true
})
const handlingSeconds = Metric.histogram("message_handling_duration_seconds", {
  description: "Time from taking a message to settling it",
  boundaries: Metric.exponentialBoundaries({ start: 0.0005, factor: 2, count: 16 })
})

/** Runs until interrupted, or until the subscriber fails for good. */
export const consume = <E, R>(
  subscription: Subscription,
  handler: Handler<E, R>,
  options: ConsumeOptions = {}
): Effect.Effect<void, SubscriberError, Subscriber | R> =>
  Effect.scoped(Effect.gen(function*() {
    const subscriber = yield* Subscriber
    const consumer = yield* subscriber.subscribe(subscription)
    const concurrency = Math.max(1, options.concurrency ?? subscription.prefetch ?? 100)
    const maxAttempts = Math.max(1, options.maxAttempts ?? 5)
    const metrics = outcomeMetrics(subscription.group)
    const duration = Metric.withAttributes(handlingSeconds, { subscription: subscription.group })

    const settle = (delivery: Delivery, exit: Exit.Exit<Outcome.Outcome | void, E>) => {
      const outcome = toOutcome(exit)
      const exhausted = outcome._tag === "Retry" && delivery.attempt >= maxAttempts
      const settlement = outcome._tag === "Ack"
        ? Effect.as(delivery.ack, metrics.ack)
        : outcome._tag === "DeadLetter" || exhausted
        ? Effect.as(
          delivery.deadLetter(exhausted ? `${outcome.reason} (after ${delivery.attempt} attempts)` : outcome.reason),
          metrics.deadLetter
        )
        : Effect.as(delivery.retry, metrics.retry)
      const log = outcome._tag === "Ack"
        ? Effect.void
        : Effect.logWarning(exhausted || outcome._tag === "DeadLetter" ? "message dead-lettered" : "message will be retried").pipe(
          Effect.annotateLogs({ subscription: subscription.group, messageId: delivery.message.id, attempt: delivery.attempt, reason: outcome.reason })
        )
      return log.pipe(
        Effect.andThen(settlement),
        Effect.flatMap((metric) => Metric.update(metric, 1)),
        // A settlement lost with the connection is redelivered by the broker: at-least-once.
        Effect.catch((error) => Effect.logWarning("settling a message failed; it will be redelivered", error.message))
      )
    }

    const handleOne = (delivery: Delivery) =>
      Effect.gen(function*() {
        const started = yield* Clock.currentTimeMillis
        const run = handler(delivery.message, delivery)
        const exit = yield* Effect.exit(options.timeout === undefined ? run : Effect.timeout(run, options.timeout))
        yield* settle(delivery, exit as Exit.Exit<Outcome.Outcome | void, E>)
        yield* Metric.update(duration, ((yield* Clock.currentTimeMillis) - started) / 1000)
      }).pipe(
        Effect.withSpan(`consume ${delivery.topic}`, {
          kind: "consumer",
          parent: parseTraceparent(delivery.message.headers[Headers.traceparent]),
          attributes: {
            "messaging.destination.name": delivery.topic,
            "messaging.consumer.group.name": subscription.group,
            "messaging.message.id": delivery.message.id,
            "messaging.delivery.attempt": delivery.attempt
          }
        }),
        // Started work is finished and settled even during shutdown.
        Effect.uninterruptible
      )

    const worker = Effect.forever(Effect.flatMap(consumer.take, handleOne)).pipe(
      Effect.catchIf(Cause.isDone, () => Effect.void)
    )
    const workers = yield* Effect.forEach(Array.from({ length: concurrency }), () => Effect.forkScoped(worker))
    yield* Fiber.joinAll(workers)
  }))

const outcomeMetrics = (group: string) => ({
  ack: Metric.withAttributes(handled, { subscription: group, outcome: "ack" }),
  retry: Metric.withAttributes(handled, { subscription: group, outcome: "retry" }),
  deadLetter: Metric.withAttributes(handled, { subscription: group, outcome: "dead_letter" })
})

const toOutcome = <E>(exit: Exit.Exit<Outcome.Outcome | void, E>): Outcome.Outcome => {
  if (Exit.isSuccess(exit)) return exit.value ?? Outcome.ack
  const cause = exit.cause
  const failure = Cause.findError(cause)
  if (failure._tag === "Success") return Outcome.retry(describeCause(failure.success))
  return Outcome.retry(`handler died: ${Cause.pretty(cause).split("\n")[0]}`)
}

