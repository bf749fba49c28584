/**
 * Consuming: one channel per subscription with `prefetch` and manual acks; deliveries go into an
 * Effect Queue that `Consumer.take` reads.
 *
 * Settling:
 * - `ack` only records the ack for the channel's `AckBatcher`; the frame (usually one
 *   multiple-ack for many deliveries) goes out when enough acks are pending, within the flush
 *   interval at the latest, and before stop and close. An ack that never reached the broker
 *   because the channel died first means one redelivery: at-least-once.
 * - `retry` republishes a copy (same id, `x-delivery-attempt` = attempt + 1, the origin in
 *   headers, reply-to and correlation-id as properties) to the group's queue through
 *   `retryExchange`, waits for the confirm, then acks the original. Not through the default
 *   exchange: clients publish straight to queues through it, and what they send there must not
 *   pass for a retry (see `codec.ts`). The copy is `mandatory`: should the queue's binding be
 *   gone (removed by hand), the retry fails and the original stays, instead of being acked for
 *   a copy the exchange dropped.
 * - `deadLetter` publishes a copy to `deadLetterTopic(group)` with the reason and source topic,
 *   waits for the confirm, then acks the original; `mandatory` too, so a dead-letter queue
 *   unbound by hand fails the dead letter instead of dropping the message.
 * - The first settlement wins; a retry or dead letter that fails leaves the delivery unsettled.
 *
 * Connection loss: the consumer waits for the reconnect, declares and consumes again on a new
 * channel. Deliveries from the dead channel are dropped from the buffer and their settle calls
 * become no-ops; the broker redelivers all of them. A consumer cancelled by the broker (its
 * queue deleted) or a channel the broker closed while the connection stayed up (a declaration
 * that conflicts with the existing queue) ends the consumer: `take` fails with SubscriberError
 * once the buffer is drained.
 */
import type * as amqp from "amqplib"
import * as Cause from "effect/Cause"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Latch from "effect/Latch"
import * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"
import { Headers } from "../../src/capabilities/Message.ts"
import {
  type Consumer,
  type Delivery,
  deadLetterTopic,
  SubscriberError,
  type SubscriberShape,
  type Subscription
} from "../../src/capabilities/Subscriber.ts"
import { deadLetterMessage } from "../../src/resilience/deadLetter.ts"
import { AckBatcher } from "./ackBatcher.ts"
import { fromAmqp, type Incoming, OriginalKey, OriginalTopic, type Outgoing, publishOptions, toAmqp } from "./codec.ts"
import { closeTimeout, type Connection, type Live, watchChannel } from "./connection.ts"
import type { Confirms } from "./publisher.ts"
import { declareSubscription, retryExchange } from "./topology.ts"
import { formatDuration } from "../../src/runtime/format.ts"

export interface SubscriberOptions {
  /** Unsettled deliveries per consumer when the subscription names none. */
  readonly prefetch: number
  /** Longest time an ack waits before it is sent. */
  readonly ackFlushInterval: Duration.Input
  /** How long `subscribe` and `declare` wait for a connection. */
  readonly connectTimeout: Duration.Input
}

type End =
  | { readonly _tag: "ConnectionLost" }
  | { readonly _tag: "ChannelClosed"; readonly error: unknown }
  | { readonly _tag: "Cancelled" }

interface Session {
  readonly live: Live
  readonly channel: amqp.Channel
  readonly batcher: AckBatcher
  consumerTag: string | undefined
  readonly ended: Deferred.Deferred<End>
}

class OpenError {
  constructor(readonly retryable: boolean, readonly cause: unknown) {}
}

export const makeSubscriber = (connection: Connection, confirms: Confirms, options: SubscriberOptions): SubscriberShape => {
  // A connection lost in the middle of `use` is retried on the next one, however long that takes;
  // any other failure ends it.
  const onLiveConnection = <A>(operation: string, subject: string, use: (live: Live, signal: AbortSignal) => Promise<A>) =>
    Effect.gen(function*() {
      while (true) {
        const live = yield* connection.current
        const result = yield* Effect.result(Effect.tryPromise({
          try: (signal) => use(live, signal),
          catch: (cause) => new OpenError(live.lost, cause)
        }))
        if (result._tag === "Success") return result.success
        if (!result.failure.retryable) {
          return yield* Effect.fail(new SubscriberError({ operation, subject, cause: result.failure.cause }))
        }
      }
    })

  // Declaring and the first subscribe wait for a connection only within the connect timeout.
  const withChannel = <A>(operation: string, subject: string, use: (live: Live, signal: AbortSignal) => Promise<A>) =>
    onLiveConnection(operation, subject, use).pipe(
      Effect.timeoutOrElse({
        duration: options.connectTimeout,
        orElse: () =>
          Effect.fail(new SubscriberError({
            operation,
            subject,
            cause: `no usable connection to ${connection.safeUrl} within ${formatDuration(options.connectTimeout)}`
          }))
      })
    )

  const declare = (subscription: Subscription) =>
    subscription.exclusive === true
      ? Effect.fail(new SubscriberError({ operation: "declare", subject: subscription.group, cause: "an exclusive group is made by subscribing, not declared" }))
      : withChannel("declare", subscription.group, async (live) => {
      const channel = await live.model.createChannel()
      // The broker answers a conflicting declaration by closing the channel; the rejected
      // promise carries the reason, the 'error' event must just not go unheard.
      channel.on("error", () => {})
      try {
        await declareSubscription(channel, subscription)
      } finally {
        await channel.close().catch(() => {})
      }
    })

  const subscribe = (subscription: Subscription): Effect.Effect<Consumer, SubscriberError, Scope.Scope> =>
    Effect.gen(function*() {
      const group = subscription.group
      const prefetch = Math.max(1, subscription.prefetch ?? options.prefetch)
      // A small window is acked half at a time, so the broker refills it while the other half is
      // handled; a large one every tenth, so acks cost few frames yet the window never runs dry.
      const threshold = Math.max(1, Math.min(50, Math.floor(prefetch / 2)), Math.floor(prefetch / 10))
      const queue = yield* Queue.unbounded<Delivery, Cause.Done | SubscriberError>()
      const wake = Latch.makeUnsafe(false)
      const stopRequested = Deferred.makeUnsafe<void>()
      const stopped = Deferred.makeUnsafe<void>()
      let stopping = false
      let session: Session | undefined
      const consumeError = (cause: unknown) => new SubscriberError({ operation: "consume", subject: group, cause })

      const onMessage = (target: Session, msg: amqp.ConsumeMessage | null) => {
        if (msg === null) {
          Deferred.doneUnsafe(target.ended, Effect.succeed({ _tag: "Cancelled" }))
          return
        }
        const tag = msg.fields.deliveryTag
        target.batcher.delivered(tag)
        // Between asking for the cancel and the broker confirming it, deliveries still arrive.
        if (stopping) target.batcher.requeue(tag)
        else Queue.offerUnsafe(queue, new RabbitDelivery(target, tag, fromAmqp(msg), msg.content, group, confirms, subscription.exclusive === true))
      }

      const open = (live: Live, signal: AbortSignal): Promise<Session> =>
        live.model.createChannel().then(async (channel) => {
          const opened: Session = {
            live,
            channel,
            batcher: new AckBatcher(
              { ack: (tag, multiple) => channel.ack(byTag(tag), multiple), nack: (tag) => channel.nack(byTag(tag), false, true) },
              threshold,
              () => wake.openUnsafe()
            ),
            consumerTag: undefined,
            ended: Deferred.makeUnsafe()
          }
          watchChannel(live, channel, (connectionLost, error) => {
            opened.batcher.kill()
            const end: End = connectionLost ? { _tag: "ConnectionLost" } : { _tag: "ChannelClosed", error }
            Deferred.doneUnsafe(opened.ended, Effect.succeed(end))
          })
          try {
            await channel.prefetch(prefetch)
            await declareSubscription(channel, subscription)
            if (signal.aborted) throw new Error("subscription stopped while opening")
            opened.consumerTag = (await channel.consume(group, (msg) => onMessage(opened, msg), { noAck: false })).consumerTag
            if (signal.aborted) throw new Error("subscription stopped while opening")
            return opened
          } catch (cause) {
            // Closing returns whatever it was handed already to the queue.
            await channel.close().catch(() => {})
            throw cause
          }
        })

      // Buffered deliveries of a dead channel: the broker redelivers them, handing them out would
      // only make handlers do work whose settlement cannot reach the broker.
      const purge = Queue.clear(queue).pipe(
        Effect.map((buffered) => {
          for (const delivery of buffered) if (delivery instanceof RabbitDelivery) delivery.abandon()
        }),
        Effect.ignore
      )

      const endIntake = (target: Session) =>
        Effect.gen(function*() {
          const buffered = yield* Queue.clear(queue).pipe(Effect.orElseSucceed((): Array<Delivery> => []))
          yield* Queue.end(queue)
          target.batcher.flush(true)
          const consumerTag = target.consumerTag
          if (consumerTag !== undefined && target.batcher.isAlive) {
            yield* Effect.promise(() => target.channel.cancel(consumerTag).catch(() => undefined)).pipe(
              Effect.timeoutOption(closeTimeout)
            )
          }
          // One by one: a multiple-nack would also take back deliveries still in handlers.
          for (const delivery of buffered) if (delivery instanceof RabbitDelivery) delivery.requeue()
        })

      const supervise = (first: Session) =>
        Effect.gen(function*() {
          let current = first
          while (true) {
            const end = yield* Effect.raceFirst(
              Deferred.await(current.ended),
              Deferred.await(stopRequested).pipe(Effect.as(undefined))
            )
            if (end === undefined) return yield* endIntake(current)
            if (end._tag === "Cancelled") {
              yield* Queue.fail(queue, consumeError("consumer cancelled by the broker (queue deleted?)"))
              return
            }
            current.batcher.kill()
            yield* purge
            if (end._tag === "ChannelClosed") {
              yield* Queue.fail(queue, consumeError(end.error ?? "channel closed by the broker"))
              return
            }
            yield* Effect.logWarning(`rabbitmq: consumer of "${group}" lost its connection; consuming again after the reconnect`)
            const next = yield* Effect.raceFirst(
              Effect.result(reconsume),
              Deferred.await(stopRequested).pipe(Effect.as(undefined))
            )
            if (next === undefined) return yield* Queue.end(queue)
            if (next._tag === "Failure") return yield* Queue.fail(queue, next.failure)
            session = current = next.success
          }
        }).pipe(Effect.ensuring(Effect.sync(() => Deferred.doneUnsafe(stopped, Effect.void))))

      // Reconnecting may take any time; only a non-connection failure ends the consumer.
      const reconsume: Effect.Effect<Session, SubscriberError> = onLiveConnection("consume", group, open)

      const flusher = Effect.gen(function*() {
        while (true) {
          yield* wake.await
          yield* Effect.sleep(options.ackFlushInterval)
          wake.closeUnsafe()
          session?.batcher.flush(true)
        }
      })

      const first = yield* withChannel("subscribe", group, open)
      session = first
      yield* Effect.forkScoped(supervise(first))
      yield* Effect.forkScoped(flusher)

      const stop: Effect.Effect<void> = Effect.suspend(() => {
        if (!stopping) {
          stopping = true
          Deferred.doneUnsafe(stopRequested, Effect.void)
        }
        return Deferred.await(stopped)
      })

      // Registered after the forks so it runs before they are interrupted.
      yield* Effect.addFinalizer(() =>
        stop.pipe(Effect.andThen(Effect.suspend(() => {
          const last = session
          if (last === undefined || !last.batcher.isAlive) return Effect.void
          last.batcher.flush(true)
          last.batcher.kill()
          // Closing the channel hands every unsettled delivery back to the queue.
          return Effect.promise(() => last.channel.close().catch(() => {})).pipe(Effect.timeoutOption(closeTimeout))
        })))
      )

      const consumer: Consumer = { take: Queue.take(queue), takeBatch: (max) => Queue.takeBetween(queue, 1, max), stop }
      return consumer
    })

  // A passive declare: it fails with 404 and closes its channel when the queue does not exist.
  const consumers = (group: string) =>
    withChannel("inspect", group, async (live) => {
      const channel = await live.model.createChannel()
      channel.on("error", () => {})
      try {
        return (await channel.checkQueue(group)).consumerCount
      } catch (cause) {
        if ((cause as { code?: unknown }).code === 404) return undefined
        throw cause
      } finally {
        await channel.close().catch(() => {})
      }
    })

  return { declare, subscribe, healthy: connection.healthy, consumers }
}

// amqplib's ack and nack read only the delivery tag of the message they are given; holding the
// whole message until its ack is flushed would keep it alive for nothing.
const byTag = (deliveryTag: number) => ({ fields: { deliveryTag } }) as amqp.Message

const Open = 0
const Settling = 1
const Settled = 2

class RabbitDelivery implements Delivery {
  readonly message: Incoming["message"]
  readonly topic: string
  readonly attempt: number
  private state: typeof Open | typeof Settling | typeof Settled = Open

  constructor(
    private readonly session: Session,
    private readonly tag: number,
    incoming: Incoming,
    private readonly content: Buffer,
    private readonly group: string,
    private readonly confirms: Confirms,
    private readonly exclusive: boolean
  ) {
    this.message = incoming.message
    this.topic = incoming.topic
    this.attempt = incoming.attempt
  }

  get ack(): Effect.Effect<void> {
    return Effect.sync(() => {
      if (this.state !== Open) return
      this.state = Settled
      this.session.batcher.ack(this.tag)
    })
  }

  get retry(): Effect.Effect<void, SubscriberError> {
    return this.republish("retry", {
      exchange: retryExchange,
      routingKey: this.group,
      content: this.content,
      options: {
        ...publishOptions(this.message.id, {
          ...this.message.headers,
          [OriginalTopic]: this.topic,
          [OriginalKey]: this.message.key,
          [Headers.attempt]: String(this.attempt + 1)
        }),
        mandatory: true
      }
    })
  }

  // An exclusive group has no dead-letter queue: the message is dropped (acked). The copy is
  // mandatory for the same reason as a retry's.
  readonly deadLetter = (reason: string): Effect.Effect<void, SubscriberError> =>
    Effect.suspend(() => {
      if (this.exclusive) return this.ack
      const copy = toAmqp(deadLetterTopic(this.group), deadLetterMessage(this.message, reason, this.topic))
      return this.republish("deadLetter", { ...copy, options: { ...copy.options, mandatory: true } })
    })

  /** Buffered, never handed out: back to the queue as it is. */
  requeue(): void {
    if (this.state !== Open) return
    this.state = Settled
    this.session.batcher.requeue(this.tag)
  }

  /** From a dead channel: the broker redelivers it, nothing is to be sent. */
  abandon(): void {
    this.state = Settled
  }

  private republish(operation: string, copy: Outgoing): Effect.Effect<void, SubscriberError> {
    return Effect.suspend(() => {
      if (this.state !== Open) return Effect.void
      // Its channel is gone and the broker redelivers it anyway; a copy would be a duplicate.
      if (!this.session.batcher.isAlive) {
        this.state = Settled
        return Effect.void
      }
      this.state = Settling
      return this.confirms.publish(copy.exchange, [copy]).pipe(
        Effect.mapError((error) => new SubscriberError({ operation, subject: this.group, cause: error.cause })),
        Effect.onExit((exit) =>
          Effect.sync(() => {
            if (Exit.isSuccess(exit)) {
              this.state = Settled
              this.session.batcher.ack(this.tag)
            } else {
              this.state = Open
            }
          })
        )
      )
    })
  }
}
