/**
 * The consume runners: take deliveries from a subscription and run a handler on them, with the
 * per-message concerns written once — span, metrics, failure policy, settlement, shutdown.
 *
 * - `consume` runs a handler per message; `consumeBatches` hands a handler every delivery
 *   already buffered (up to `maxBatch`) at once, for workers whose cost is per batch (a database
 *   write, a fan-out to other fibers). Both settle each message by its own outcome.
 * - A handler returns an `Outcome` (or nothing, meaning ack). A typed failure or a defect is
 *   retried; after `maxAttempts` deliveries the message is dead-lettered with the last reason.
 * - Each message gets a `consume <topic>` span whose parent is the producer's span from the
 *   `traceparent` header, ended when the message is settled; a message whose producer did not
 *   sample its trace gets none (its handler still runs in that trace). `consumeBatches` runs
 *   the handler in a `consume <topic> batch` span and makes the message spans only when a
 *   tracer that records them (OpenTelemetry) is installed.
 * - A message is settled only after its handler finished, so whatever the handler published or
 *   wrote is done before the ack.
 * - Interruption is the shutdown: no new message is taken; handlers already running finish and
 *   their messages are settled; buffered deliveries go back to the broker; the consumer closes.
 */
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Metric from "effect/Metric"
import * as Tracer from "effect/Tracer"
import { Headers, type Message } from "../capabilities/Message.ts"
import { describeCause } from "../capabilities/Publisher.ts"
import { type Consumer, type Delivery, Subscriber, type SubscriberError, type Subscription } from "../capabilities/Subscriber.ts"
import * as Outcome from "./Outcome.ts"
import { parseTraceparent } from "./traceContext.ts"

export type Handler<E, R> = (message: Message, delivery: Delivery) => Effect.Effect<Outcome.Outcome | void, E, R>

/** One outcome per delivery, in the order given. */
export type BatchHandler<E, R> = (
  deliveries: ReadonlyArray<Delivery>
) => Effect.Effect<ReadonlyArray<Outcome.Outcome | void>, E, R>

export interface ConsumeOptions {
  /** Handlers running at once [`consume`: the subscription's prefetch, else 100; `consumeBatches`: 2]. */
  readonly concurrency?: number
  /** Deliveries of one message before a failing one is dead-lettered [5]. */
  readonly maxAttempts?: number
  /** Longest a handler may run before it counts as failed [none]. */
  readonly timeout?: Duration.Input
}

export interface ConsumeBatchesOptions extends ConsumeOptions {
  /** Most deliveries handed to one handler call [the subscription's prefetch, else 100]. */
  readonly maxBatch?: number
}

const handled = Metric.counter("messages_handled", {
  description: "Messages settled by the consume runner, by subscription and outcome",
  incremental: true
})
const handlingSeconds = Metric.histogram("message_handling_duration_seconds", {
  description: "Time from taking a message (or batch) to settling it",
  boundaries: Metric.exponentialBoundaries({ start: 0.0005, factor: 2, count: 16 })
})

/** Runs `handler` on each message until interrupted, or until the subscriber fails for good. */
export const consume = <E, R>(
  subscription: Subscription,
  handler: Handler<E, R>,
  options: ConsumeOptions = {}
): Effect.Effect<void, SubscriberError, Subscriber | R> =>
  runWorkers<E, R>(subscription, options, options.concurrency ?? subscription.prefetch ?? 100, (consumer, settler) =>
    Effect.flatMap(consumer.take, (delivery) => {
      const handled = Effect.flatMap(settler.run(handler(delivery.message, delivery)), (exit) => settler.settle(delivery, exit))
      const parent = parseTraceparent(delivery.message.headers[Headers.traceparent])
      // A trace its producer did not sample is carried on, not recorded: the handler runs with
      // the producer's span as its parent, so what it publishes stays in that (unsampled) trace,
      // and no span is made that a parent-based sampler would only drop.
      return settler.timed(
        parent?.sampled === false
          ? Effect.withParentSpan(handled, parent)
          : Effect.withSpan(handled, settler.spanName, { ...settler.spanOptions(delivery, parent), captureStackTrace: false })
      )
    }))

/** Runs `handler` on batches of the messages at hand until interrupted, or until the subscriber fails. */
export const consumeBatches = <E, R>(
  subscription: Subscription,
  handler: BatchHandler<E, R>,
  options: ConsumeBatchesOptions = {}
): Effect.Effect<void, SubscriberError, Subscriber | R> => {
  const maxBatch = Math.max(1, options.maxBatch ?? subscription.prefetch ?? 100)
  return runWorkers<E, R>(subscription, options, options.concurrency ?? 2, (consumer, settler) =>
    Effect.flatMap(consumer.takeBatch(maxBatch), (batch) =>
      settler.timed(Effect.gen(function*() {
        // Effect's own tracer records nothing: message spans would be made only to be dropped,
        // and at thousands of messages a second they are a good part of the cost. The batch
        // span stays, so logs and publishes of the handler keep their trace. For the same reason
        // a message whose producer did not sample its trace gets no span of its own, which is
        // what OpenTelemetry's default (parent-based) sampler would decide anyway.
        const spans: Array<Tracer.Span | undefined> = []
        if ((yield* Effect.tracer) !== Tracer.nativeTracer) {
          for (const delivery of batch) {
            const parent = parseTraceparent(delivery.message.headers[Headers.traceparent])
            spans.push(
              parent?.sampled === false ? undefined : yield* Effect.makeSpan(settler.spanName, settler.spanOptions(delivery, parent))
            )
          }
        }
        const exit = yield* settler.run(handler(batch))
        const outcomes = Exit.isSuccess(exit) && exit.value.length !== batch.length
          ? Exit.die(new Error(`the batch handler returned ${exit.value.length} outcomes for ${batch.length} messages`))
          : exit
        if (Exit.isSuccess(outcomes)) {
          yield* settler.settleAll(batch, outcomes.value)
          if (spans.length === 0) return
          const now = yield* Clock.currentTimeNanos
          for (let i = 0; i < spans.length; i++) spans[i]?.end(now, Exit.succeed(outcomes.value[i]))
          return
        }
        // The handler failed: every message of the batch is retried (or dead-lettered) for it.
        const failed = Exit.failCause(outcomes.cause)
        for (let i = 0; i < batch.length; i++) {
          yield* settler.settle(batch[i]!, failed)
          spans[i]?.end(yield* Clock.currentTimeNanos, failed)
        }
      }).pipe(Effect.withSpan(`${settler.spanName} batch`, {
        kind: "consumer",
        attributes: { "messaging.batch.message_count": batch.length, "messaging.consumer.group.name": subscription.group }
      }, { captureStackTrace: false })))))
}

interface Settler<E> {
  readonly spanName: string
  /** `parent`: the producer's span, from the message's `traceparent` header. */
  readonly spanOptions: (delivery: Delivery, parent: Tracer.ExternalSpan | undefined) => Tracer.SpanOptionsNoTrace
  readonly run: <A, R>(handler: Effect.Effect<A, E, R>) => Effect.Effect<Exit.Exit<A, E | Cause.TimeoutError>, never, R>
  readonly settle: (delivery: Delivery, exit: Exit.Exit<Outcome.Outcome | void, unknown>) => Effect.Effect<void>
  /** Settles each delivery by its outcome, the acks together: same result as `settle` one by one. */
  readonly settleAll: (batch: ReadonlyArray<Delivery>, outcomes: ReadonlyArray<Outcome.Outcome | void>) => Effect.Effect<void>
  /** Records the duration of `effect` and keeps it from being interrupted: started work is finished. */
  readonly timed: <A, R>(effect: Effect.Effect<A, never, R>) => Effect.Effect<void, never, R>
}

const runWorkers = <E, R>(
  subscription: Subscription,
  options: ConsumeOptions,
  concurrency: number,
  step: (consumer: Consumer, settler: Settler<E>) => Effect.Effect<void, Cause.Done | SubscriberError, R>
): Effect.Effect<void, SubscriberError, Subscriber | R> =>
  Effect.scoped(Effect.gen(function*() {
    const subscriber = yield* Subscriber
    const consumer = yield* subscriber.subscribe(subscription)
    const settler = makeSettler<E>(subscription, options)
    const worker = Effect.forever(step(consumer, settler)).pipe(Effect.catchIf(Cause.isDone, () => Effect.void))
    yield* Effect.forEach(Array.from({ length: Math.max(1, concurrency) }), () => worker, {
      concurrency: "unbounded",
      discard: true
    })
  }))

const makeSettler = <E>(subscription: Subscription, options: ConsumeOptions): Settler<E> => {
  const maxAttempts = Math.max(1, options.maxAttempts ?? 5)
  const group = subscription.group
  const acked = Metric.withAttributes(handled, { subscription: group, outcome: "ack" })
  const countAck = Metric.update(acked, 1)
  const countRetry = Metric.update(Metric.withAttributes(handled, { subscription: group, outcome: "retry" }), 1)
  const countDeadLetter = Metric.update(Metric.withAttributes(handled, { subscription: group, outcome: "dead_letter" }), 1)
  const duration = Metric.withAttributes(handlingSeconds, { subscription: group })
  // A settlement lost with the connection is redelivered by the broker: at-least-once.
  const settleFailed = (error: SubscriberError) =>
    Effect.logWarning("settling a message failed; it will be redelivered", error.message)

  // Written as plain combinators: this runs once per message and sets the throughput ceiling.
  const settle = (delivery: Delivery, exit: Exit.Exit<Outcome.Outcome | void, unknown>): Effect.Effect<void> => {
    const outcome = toOutcome(exit)
    if (outcome._tag === "Ack") return Effect.catch(Effect.andThen(delivery.ack, countAck), settleFailed)
    const exhausted = outcome._tag === "Retry" && delivery.attempt >= maxAttempts
    const deadLetter = outcome._tag === "DeadLetter" || exhausted
    const settlement = deadLetter
      ? Effect.andThen(
        delivery.deadLetter(exhausted ? `${outcome.reason} (after ${delivery.attempt} attempts)` : outcome.reason),
        countDeadLetter
      )
      : Effect.andThen(delivery.retry, countRetry)
    return Effect.logWarning(deadLetter ? "message dead-lettered" : "message will be retried").pipe(
      Effect.annotateLogs({ subscription: group, messageId: delivery.message.id, attempt: delivery.attempt, reason: outcome.reason }),
      Effect.andThen(settlement),
      Effect.catch(settleFailed)
    )
  }

  return {
    spanName: `consume ${subscription.topic}`,
    spanOptions: (delivery, parent) => ({
      kind: "consumer",
      parent,
      attributes: {
        "messaging.destination.name": delivery.topic,
        "messaging.consumer.group.name": group,
        "messaging.message.id": delivery.message.id,
        "messaging.delivery.attempt": delivery.attempt
      }
    }),
    run: (effect) => Effect.exit(options.timeout === undefined ? effect : Effect.timeout(effect, options.timeout)),
    settle,
    settleAll: (batch, outcomes) =>
      Effect.suspend(() => {
        const acks: Array<Delivery> = []
        const others: Array<Effect.Effect<void>> = []
        for (let i = 0; i < batch.length; i++) {
          const outcome = outcomes[i]
          if (outcome === undefined || outcome._tag === "Ack") acks.push(batch[i]!)
          else others.push(settle(batch[i]!, Exit.succeed(outcome)))
        }
        let failed = 0
        const ackAll = Effect.forEach(acks, (delivery) =>
          Effect.catch(delivery.ack, (error) => {
            failed++
            return settleFailed(error)
          }), { discard: true }).pipe(Effect.andThen(Effect.suspend(() => Metric.update(acked, acks.length - failed))))
        return others.length === 0 ? ackAll : Effect.andThen(ackAll, Effect.all(others, { discard: true }))
      }),
    timed: (effect) =>
      Effect.uninterruptible(
        Effect.flatMap(Clock.currentTimeMillis, (started) =>
          Effect.andThen(effect, Effect.flatMap(Clock.currentTimeMillis, (now) => Metric.update(duration, (now - started) / 1000))))
      )
  }
}

const toOutcome = (exit: Exit.Exit<Outcome.Outcome | void, unknown>): Outcome.Outcome => {
  if (Exit.isSuccess(exit)) return exit.value ?? Outcome.ack
  const failure = Cause.findError(exit.cause)
  if (failure._tag === "Success") return Outcome.retry(describeCause(failure.success))
  return Outcome.retry(`handler died: ${Cause.pretty(exit.cause).split("\n")[0]}`)
}
