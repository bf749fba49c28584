/**
 * The consume runners: take deliveries from a source and run a handler on them, with the
 * per-message concerns written once — span, metrics, failure policy, settlement, shutdown.
 *
 * - A source is anything that hands out settleable deliveries (`DeliverySource`): a broker
 *   subscription (`consume`, `consumeBatches`), and through `consumeFrom`/`consumeBatchesFrom` a
 *   session of a session queue, claimed outbox rows, a reply queue.
 * - `consume` runs a handler per message; `consumeBatches` hands a handler every delivery
 *   already buffered (up to `maxBatch`) at once, for workers whose cost is per batch (a database
 *   write, a fan-out to other fibers). Both settle each message by its own outcome.
 * - A handler sees what was received, never the settle functions. It returns an `Outcome` (or
 *   nothing, meaning ack). A typed failure, a defect or a timeout is retried; after
 *   `maxAttempts` deliveries the message is dead-lettered with the last reason.
 *   `Outcome.retry(reason, { after })` holds the message that long before handing it back (a
 *   shutdown cuts the wait short).
 * - Every handler call is bounded by `timeout` [20 s, below the 30 s shutdown deadline], so one
 *   hung handler cannot hold a shutdown to its deadline; `Duration.infinity` turns it off.
 * - Each message gets a `consume <topic>` span whose parent is the producer's span from the
 *   `traceparent` header, ended when the message is settled; a message whose producer did not
 *   sample its trace gets none (its handler still runs in that trace). `consumeBatches` runs
 *   the handler in a `consume <topic> batch` span and makes the message spans only when a
 *   tracer that records them (OpenTelemetry) is installed.
 * - A message is settled only after its handler finished, so whatever the handler published or
 *   wrote is done before the ack.
 * - Interruption is the shutdown: no new message is taken; handlers already running finish and
 *   their messages are settled; buffered deliveries go back to the source; it closes.
 */
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Metric from "effect/Metric"
import * as Tracer from "effect/Tracer"
import type * as Scope from "effect/Scope"
import type { Delivery, DeliverySource } from "../capabilities/Delivery.ts"
import { Headers } from "../capabilities/Message.ts"
import { describeCause } from "../capabilities/describeCause.ts"
import { Subscriber, type SubscriberError, type Subscription } from "../capabilities/Subscriber.ts"
import type { BatchHandler, Handler } from "./Handler.ts"
import { HandlerTimeoutError } from "../resilience/timeout.ts"
import { makeTimeouts, type Timeouts } from "../resilience/watchdog.ts"
import * as Outcome from "./Outcome.ts"
import { parseTraceparent } from "./traceContext.ts"

export type { BatchHandler, Handler } from "./Handler.ts"

/** How a source is named in metrics (`subscription` label) and spans (`consume <topic>`). */
export interface SourceName {
  readonly topic: string
  readonly group: string
}

/** Longest a handler call may run when `timeout` is not given. */
export const defaultHandlerTimeout: Duration.Duration = Duration.seconds(20)

export interface ConsumeOptions {
  /** Handlers running at once [`consume`: the subscription's prefetch, else 100; `consumeBatches`: 2]. */
  readonly concurrency?: number
  /** Deliveries of one message before a failing one is dead-lettered [5]. */
  readonly maxAttempts?: number
  /**
   * Longest a handler call may run; then it is interrupted and its messages retried
   * [`defaultHandlerTimeout`, 20 s]. `Duration.infinity` for none.
   */
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

/** Runs `handler` on each message of a subscription until interrupted, or until the subscriber fails for good. */
export const consume = <E, R>(
  subscription: Subscription,
  handler: Handler<E, R>,
  options: ConsumeOptions = {}
): Effect.Effect<void, SubscriberError, Subscriber | R> =>
  consumeFrom(subscribe(subscription), subscription, handler, { ...options, concurrency: options.concurrency ?? subscription.prefetch ?? 100 })

/** Runs `handler` on each delivery of the source `open` makes, until interrupted or the source fails. */
export const consumeFrom = <E, R, ES, RS>(
  open: Effect.Effect<DeliverySource<ES>, ES, RS>,
  name: SourceName,
  handler: Handler<E, R>,
  options: ConsumeOptions = {}
): Effect.Effect<void, ES, Exclude<RS, Scope.Scope> | R> =>
  runWorkers<E | HandlerTimeoutError, R, ES, RS>(open, name, options, options.concurrency ?? 100, (source, settler) => {
    // The runner's own timeout, as the `timeout` middleware would be, kept by the runner's
    // watchdog (see `watchdog.ts`) rather than by a race per message.
    const deadlines = settler.deadlines
    const bounded = deadlines === undefined ? handler : (delivery: Delivery) =>
      deadlines.timeouts.run(handler(delivery), deadlines.limit, () =>
        new HandlerTimeoutError({ topic: delivery.topic, messageId: delivery.message.id, timeout: deadlines.limit }))
    const process = (delivery: Delivery): Effect.Effect<void, never, R> => {
      const handled = Effect.flatMap(settler.run(bounded(delivery)), (exit) => settler.settle(delivery, exit, process))
      const parent = parseTraceparent(delivery.message.headers[Headers.traceparent])
      // A trace its producer did not sample is carried on, not recorded: the handler runs with
      // the producer's span as its parent, so what it publishes stays in that (unsampled) trace,
      // and no span is made that a parent-based sampler would only drop.
      return settler.timed(
        parent?.sampled === false
          ? Effect.withParentSpan(handled, parent)
          : Effect.withSpan(handled, settler.spanName, settler.spanOptions(delivery, parent))
      )
    }
    return Effect.flatMap(source.take, process)
  })

/** Runs `handler` on batches of a subscription's messages until interrupted, or until the subscriber fails. */
export const consumeBatches = <E, R>(
  subscription: Subscription,
  handler: BatchHandler<E, R>,
  options: ConsumeBatchesOptions = {}
): Effect.Effect<void, SubscriberError, Subscriber | R> =>
  consumeBatchesFrom(subscribe(subscription), subscription, handler, { ...options, maxBatch: options.maxBatch ?? subscription.prefetch ?? 100 })

/** Runs `handler` on batches of the deliveries at hand from the source `open` makes. */
export const consumeBatchesFrom = <E, R, ES, RS>(
  open: Effect.Effect<DeliverySource<ES>, ES, RS>,
  name: SourceName,
  handler: BatchHandler<E, R>,
  options: ConsumeBatchesOptions = {}
): Effect.Effect<void, ES, Exclude<RS, Scope.Scope> | R> => {
  const maxBatch = Math.max(1, options.maxBatch ?? 100)
  return runWorkers<E | Cause.TimeoutError, R, ES, RS>(open, name, options, options.concurrency ?? 2, (source, settler) => {
    // Kept by the runner's watchdog, as `consume` does: a race per batch forked two fibers for
    // each, and at a moderate rate a batch is one or two messages.
    const deadlines = settler.deadlines
    const bounded = (batch: ReadonlyArray<Delivery>) =>
      deadlines === undefined
        ? handler(batch)
        : deadlines.timeouts.run(handler(batch), deadlines.limit, () => new Cause.TimeoutError(`batch handler timed out after ${Duration.format(deadlines.limit)}`))
    const process = (batch: ReadonlyArray<Delivery>): Effect.Effect<void, never, R> =>
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
        const exit = yield* settler.run(bounded(batch))
        const outcomes = Exit.isSuccess(exit) && exit.value.length !== batch.length
          ? Exit.die(new Error(`the batch handler returned ${exit.value.length} outcomes for ${batch.length} messages`))
          : exit
        if (Exit.isSuccess(outcomes)) {
          yield* settler.settleAll(batch, outcomes.value, process)
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
        attributes: { "messaging.batch.message_count": batch.length, "messaging.consumer.group.name": name.group }
      }, { captureStackTrace: false })))
    return Effect.flatMap(source.takeBatch(maxBatch), process)
  })
}

const subscribe = (subscription: Subscription) => Subscriber.use((subscriber) => subscriber.subscribe(subscription))

interface Settler<E> {
  readonly spanName: string
  /** `parent`: the producer's span, from the message's `traceparent` header. */
  readonly spanOptions: (delivery: Delivery, parent: Tracer.ExternalSpan | undefined) => Tracer.SpanOptions
  readonly run: <A, R>(handler: Effect.Effect<A, E, R>) => Effect.Effect<Exit.Exit<A, E>, never, R>
  /** `again` runs the handler on the delivery anew, for a retry that does not count as an attempt. */
  readonly settle: <R = never>(
    delivery: Delivery,
    exit: Exit.Exit<Outcome.Outcome | void, unknown>,
    again?: (delivery: Delivery) => Effect.Effect<void, never, R>
  ) => Effect.Effect<void, never, R>
  /** Settles each delivery by its outcome, the acks together: same result as `settle` one by one. */
  readonly settleAll: <R>(
    batch: ReadonlyArray<Delivery>,
    outcomes: ReadonlyArray<Outcome.Outcome | void>,
    again: (batch: ReadonlyArray<Delivery>) => Effect.Effect<void, never, R>
  ) => Effect.Effect<void, never, R>
  /** The handler timeout and the runner's watchdog that keeps it, when there is a timeout. */
  readonly deadlines: { readonly timeouts: Timeouts; readonly limit: Duration.Duration } | undefined
  /** Records the duration of `effect` and keeps it from being interrupted: started work is finished. */
  readonly timed: <A, R>(effect: Effect.Effect<A, never, R>) => Effect.Effect<void, never, R>
}

const runWorkers = <E, R, ES, RS>(
  open: Effect.Effect<DeliverySource<ES>, ES, RS>,
  name: SourceName,
  options: ConsumeOptions,
  concurrency: number,
  step: (source: DeliverySource<ES>, settler: Settler<E>) => Effect.Effect<void, Cause.Done | ES, R>
): Effect.Effect<void, ES, Exclude<RS, Scope.Scope> | R> =>
  Effect.scoped(Effect.gen(function*() {
    const source = yield* open
    // Delayed retries wait in fibers of this scope, forked after the source was opened: closing
    // the scope interrupts their waits (they hand their messages back) before the source closes.
    const settler = makeSettler<E>(name, options, yield* Effect.scope)
    const worker = Effect.forever(step(source, settler)).pipe(Effect.catchIf(Cause.isDone, () => Effect.void))
    yield* Effect.forEach(Array.from({ length: Math.max(1, concurrency) }), () => worker, {
      concurrency: "unbounded",
      discard: true
    })
  })) as Effect.Effect<void, ES, Exclude<RS, Scope.Scope> | R>

const makeSettler = <E>(name: SourceName, options: ConsumeOptions, scope: Scope.Scope): Settler<E> => {
  const maxAttempts = Math.max(1, options.maxAttempts ?? 5)
  const group = name.group
  const acked = Metric.withAttributes(handled, { subscription: group, outcome: "ack" })
  const countAck = Metric.update(acked, 1)
  const countRetry = Metric.update(Metric.withAttributes(handled, { subscription: group, outcome: "retry" }), 1)
  const countDeadLetter = Metric.update(Metric.withAttributes(handled, { subscription: group, outcome: "dead_letter" }), 1)
  const duration = Metric.withAttributes(handlingSeconds, { subscription: group })
  // A settlement lost with the connection is redelivered by the broker: at-least-once.
  const settleFailed = (error: unknown) =>
    Effect.logWarning("settling a message failed; it will be redelivered", describeCause(error))

  const handBack = (delivery: Delivery) => Effect.catch(Effect.andThen(delivery.retry, countRetry), settleFailed)
  // Holds deliveries for `after` in a fiber of the runner's scope, then runs `then`; a shutdown
  // during the wait hands them back to the source at once instead (as their next attempt).
  const hold = <R>(deliveries: ReadonlyArray<Delivery>, after: Duration.Duration, then: Effect.Effect<void, never, R>) =>
    Effect.asVoid(Effect.forkIn(
      Effect.uninterruptible(Effect.flatMap(holdFor(after), (waited) => waited ? then : Effect.forEach(deliveries, handBack, { discard: true }))),
      scope
    ))

  // Written as plain combinators: this runs once per message and sets the throughput ceiling.
  const settle = <R = never>(
    delivery: Delivery,
    exit: Exit.Exit<Outcome.Outcome | void, unknown>,
    again?: (delivery: Delivery) => Effect.Effect<void, never, R>
  ): Effect.Effect<void, never, R> => {
    const outcome = toOutcome(exit)
    if (outcome._tag === "Ack") return Effect.catch(Effect.andThen(delivery.ack, countAck), settleFailed)
    const inPlace = outcome._tag === "Retry" && outcome.countsAsAttempt === false && again !== undefined
    if (inPlace) {
      return Effect.logInfo("message held; its handler runs again").pipe(
        Effect.annotateLogs({ subscription: group, messageId: delivery.message.id, attempt: delivery.attempt, reason: outcome.reason }),
        Effect.andThen(hold([delivery], outcome.after ?? Duration.zero, again(delivery)))
      )
    }
    const exhausted = outcome._tag === "Retry" && delivery.attempt >= maxAttempts
    const deadLetter = outcome._tag === "DeadLetter" || exhausted
    const settlement = deadLetter
      ? Effect.andThen(
        delivery.deadLetter(exhausted ? `${outcome.reason} (after ${delivery.attempt} attempts)` : outcome.reason),
        countDeadLetter
      )
      : outcome.after === undefined
      ? Effect.andThen(delivery.retry, countRetry)
      : hold([delivery], outcome.after, handBack(delivery))
    return Effect.logWarning(deadLetter ? "message dead-lettered" : "message will be retried").pipe(
      Effect.annotateLogs({ subscription: group, messageId: delivery.message.id, attempt: delivery.attempt, reason: outcome.reason }),
      Effect.andThen(settlement),
      Effect.catch(settleFailed)
    )
  }

  const limit = handlerTimeout(options)
  return {
    spanName: `consume ${name.topic}`,
    deadlines: Duration.isFinite(limit) ? { timeouts: makeTimeouts(), limit } : undefined,
    spanOptions: (delivery, parent) => ({
      kind: "consumer",
      parent,
      captureStackTrace: false,
      attributes: {
        "messaging.destination.name": delivery.topic,
        "messaging.consumer.group.name": group,
        "messaging.message.id": delivery.message.id,
        "messaging.delivery.attempt": delivery.attempt
      }
    }),
    run: Effect.exit,
    settle,
    settleAll: <R>(
      batch: ReadonlyArray<Delivery>,
      outcomes: ReadonlyArray<Outcome.Outcome | void>,
      again: (batch: ReadonlyArray<Delivery>) => Effect.Effect<void, never, R>
    ) =>
      Effect.suspend(() => {
        const acks: Array<Delivery> = []
        const others: Array<Effect.Effect<void, never, R>> = []
        // Held messages wait together, as long as the longest asks, and run as one batch again.
        const held: Array<Delivery> = []
        let heldFor = Duration.zero
        for (let i = 0; i < batch.length; i++) {
          const outcome = outcomes[i]
          if (outcome === undefined || outcome._tag === "Ack") acks.push(batch[i]!)
          else if (outcome._tag === "Retry" && outcome.countsAsAttempt === false) {
            held.push(batch[i]!)
            heldFor = Duration.max(heldFor, outcome.after ?? Duration.zero)
          } else others.push(settle(batch[i]!, Exit.succeed(outcome)))
        }
        if (held.length > 0) others.push(hold(held, heldFor, Effect.suspend(() => again(held))))
        let failed = 0
        const ackAll = Effect.forEach(acks, (delivery) =>
          Effect.catch(delivery.ack, (error) => {
            failed++
            return settleFailed(error)
          }), { discard: true }).pipe(Effect.andThen(Effect.suspend(() => Metric.update(acked, acks.length - failed))))
        // Concurrently: one dead letter waiting for its broker's confirm does not hold up the rest.
        return others.length === 0 ? ackAll : Effect.andThen(ackAll, Effect.all(others, { concurrency: "unbounded", discard: true }))
      }),
    // The clock is looked up once and read directly, the series updated in place: per message.
    timed: (effect) =>
      Effect.uninterruptible(Effect.withFiber((fiber) => {
        const clock = fiber.getRef(Clock.Clock)
        const started = clock.currentTimeMillisUnsafe()
        return Effect.andThen(
          effect,
          Effect.withFiber((done) => {
            duration.updateUnsafe((clock.currentTimeMillisUnsafe() - started) / 1000, done.context)
            return Effect.void
          })
        )
      }))
  }
}

const handlerTimeout = (options: ConsumeOptions): Duration.Duration => Duration.fromInputUnsafe(options.timeout ?? defaultHandlerTimeout)

/**
 * Waits before a delayed retry or a rerun: true when the wait ran out, false when a shutdown cut
 * it short. It runs in a fiber of its own so the worker goes on with other messages (the delivery
 * stays unsettled, so the source's prefetch still bounds how many wait); only the wait itself may
 * be interrupted.
 */
const holdFor = (delay: Duration.Duration): Effect.Effect<boolean> =>
  Effect.map(Effect.exit(Effect.interruptible(Effect.sleep(delay))), Exit.isSuccess)

const toOutcome = (exit: Exit.Exit<Outcome.Outcome | void, unknown>): Outcome.Outcome =>
  Exit.isSuccess(exit) ? exit.value ?? Outcome.ack : Outcome.retry(Outcome.failureReason(exit.cause))
