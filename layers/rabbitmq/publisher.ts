/**
 * Publishing with publisher confirms on one confirm channel the whole layer shares: the
 * Publisher's batches, and the subscriber's retries (to `retryExchange`, asserted as the direct
 * exchange it is) and dead letters.
 *
 * A batch succeeds once the broker confirmed every one of its messages (per-message callbacks,
 * so concurrent batches from many fibers wait only for their own). Writes respect the channel's
 * write buffer: when `publish` returns false the rest of the batch waits for 'drain'. Each topic
 * is asserted (durable topic exchange) once per channel before the first publish to it, because
 * publishing to a missing exchange closes the channel and fails every batch in flight on it.
 *
 * A message published `mandatory` (the subscriber's retry copies) that no queue takes fails its
 * batch as refused: the broker returns it before it confirms it, and a confirm alone would let
 * the subscriber ack an original whose copy went nowhere.
 *
 * When the connection is lost mid-batch or before it, the batch is written again on the next
 * connection (the contract allows duplicates, never losses); the whole call, waiting for the
 * reconnect included, is bounded by `timeout`.
 */
import type * as amqp from "amqplib"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Semaphore from "effect/Semaphore"
import type * as Scope from "effect/Scope"
import type { Message } from "../../src/capabilities/Message.ts"
import { PublisherError } from "../../src/capabilities/Publisher.ts"
import { directTopic } from "../../src/capabilities/Subscriber.ts"
import { type Outgoing, toAmqp } from "./codec.ts"
import { closeTimeout, type Connection, describe, type Live, watchChannel } from "./connection.ts"
import { assertTopic, retryExchange } from "./topology.ts"
import { formatDuration } from "../../src/runtime/format.ts"

/** Why a batch was not confirmed; `retryable` when the connection died under it. */
export class ConfirmError extends Data.TaggedError("ConfirmError")<{
  readonly retryable: boolean
  readonly cause: unknown
  /** The broker nacked the message, as opposed to a channel or connection that went away. */
  readonly refused?: boolean
}> {}

interface Closed {
  readonly connectionLost: boolean
  readonly error: unknown
}

interface Session {
  readonly live: Live
  readonly channel: amqp.ConfirmChannel
  readonly asserted: Set<string>
  /** True from the first moment of the close, before `closed` is known. */
  closing: boolean
  closed: Closed | undefined
  readonly closeWaiters: Set<(closed: Closed) => void>
  readonly drainWaiters: Set<() => void>
  readonly returnWaiters: Set<(returned: amqp.Message) => void>
}

export interface Confirms {
  /** Publishes `items` to `exchange` and waits for every confirm; bounded by the layer's timeout. */
  readonly publish: (exchange: string, items: ReadonlyArray<Outgoing>) => Effect.Effect<void, ConfirmError>
}

export const makeConfirms = (
  connection: Connection,
  timeout: Duration.Input
): Effect.Effect<Confirms, never, Scope.Scope> =>
  Effect.gen(function*() {
    let session: Session | undefined
    const opening = Semaphore.makeUnsafe(1)

    const setup = (live: Live, channel: amqp.ConfirmChannel): Session => {
      const next: Session = {
        live,
        channel,
        asserted: new Set(),
        closing: false,
        closed: undefined,
        closeWaiters: new Set(),
        drainWaiters: new Set(),
        returnWaiters: new Set()
      }
      // Before amqplib's own close listener fails the unconfirmed callbacks, so those
      // failures are known to be the close (decided by `watchChannel`), not broker nacks.
      channel.prependListener("close", () => {
        next.closing = true
      })
      channel.on("drain", () => {
        for (const resume of [...next.drainWaiters]) resume()
      })
      channel.on("return", (returned: amqp.Message) => {
        for (const waiter of [...next.returnWaiters]) waiter(returned)
      })
      watchChannel(live, channel, (connectionLost, error) => {
        next.closed = { connectionLost, error }
        for (const waiter of [...next.closeWaiters]) waiter(next.closed)
        next.closeWaiters.clear()
      })
      return next
    }

    // Opening cannot be aborted: a channel that arrives after the publish gave up is closed.
    const open = (live: Live) =>
      Effect.callback<Session, ConfirmError>((resume) => {
        let abandoned = false
        live.model.createConfirmChannel().then(
          (channel) => {
            if (abandoned) {
              channel.close().catch(() => {})
              return
            }
            session = setup(live, channel)
            resume(Effect.succeed(session))
          },
          (cause: unknown) => resume(Effect.fail(new ConfirmError({ retryable: live.lost, cause })))
        )
        return Effect.sync(() => {
          abandoned = true
        })
      })

    const current: Effect.Effect<Session, ConfirmError> = Effect.suspend(() =>
      session !== undefined && !session.closing && !session.live.lost
        ? Effect.succeed(session)
        : opening.withPermits(1)(Effect.suspend(() => {
          if (session !== undefined && !session.closing && !session.live.lost) return Effect.succeed(session)
          return Effect.flatMap(connection.current, open)
        }))
    )

    const assert = (target: Session, exchange: string): Effect.Effect<void, ConfirmError> =>
      exchange === "" || target.asserted.has(exchange)
        ? Effect.void
        : Effect.tryPromise({
          try: () => assertTopic(target.channel, exchange),
          catch: (cause) => new ConfirmError({ retryable: target.live.lost, cause })
        }).pipe(Effect.tap(() => Effect.sync(() => target.asserted.add(exchange))))

    const attempt = (exchange: string, items: ReadonlyArray<Outgoing>) =>
      Effect.gen(function*() {
        const target = yield* current
        yield* assert(target, exchange)
        yield* writeAll(target, items)
      })

    yield* Effect.addFinalizer(() =>
      Effect.suspend(() => {
        const last = session
        session = undefined
        return last === undefined || last.closing
          ? Effect.void
          : Effect.promise(() => last.channel.close().catch(() => {})).pipe(Effect.timeoutOption(closeTimeout))
      })
    )

    const timedOut = () => {
      const within = `not confirmed within ${formatDuration(timeout)}`
      if (session === undefined || session.live.lost) return `${within} (no connection to ${connection.safeUrl})`
      const blocked = session.live.blocked
      return blocked === undefined ? within : `${within} (the broker blocks publishers: ${blocked})`
    }

    const limit = Duration.toMillis(Duration.fromInputUnsafe(timeout))

    // Whatever has to wait for a channel, an exchange declaration or a reconnect.
    const slow = (exchange: string, items: ReadonlyArray<Outgoing>, within: Duration.Input): Effect.Effect<void, ConfirmError> =>
      attempt(exchange, items).pipe(
        Effect.retry({ while: (error) => error.retryable }),
        Effect.timeoutOrElse({
          duration: within,
          orElse: () => Effect.fail(new ConfirmError({ retryable: false, cause: timedOut() }))
        })
      )

    // The usual case, an open channel and a known exchange, bounded by a timer of its own rather
    // than a race: a race forks two fibers per publish, which cost more than the publish itself.
    // Should the connection go under it, the rest of the time goes to the slow path.
    const publish = (exchange: string, items: ReadonlyArray<Outgoing>): Effect.Effect<void, ConfirmError> =>
      Effect.suspend(() => {
        if (items.length === 0) return Effect.void
        const target = session
        if (
          target === undefined || target.closing || target.live.lost || !Number.isFinite(limit) ||
          (exchange !== "" && !target.asserted.has(exchange))
        ) return slow(exchange, items, timeout)
        const started = Date.now()
        return Effect.catch(
          writeAll(target, items, limit, timedOut),
          (error) => error.retryable ? slow(exchange, items, Math.max(0, limit - (Date.now() - started))) : Effect.fail(error)
        )
      })

    return { publish }
  })

/** With `limit` (ms), fails unconfirmed after that long, saying why `timedOut` tells. */
const writeAll = (
  session: Session,
  items: ReadonlyArray<Outgoing>,
  limit?: number,
  timedOut?: () => string
): Effect.Effect<void, ConfirmError> =>
  Effect.callback<void, ConfirmError>((resume) => {
    let unconfirmed = items.length
    let next = 0
    let done = false
    let timer: ReturnType<typeof setTimeout> | undefined
    const finish = (result: Effect.Effect<void, ConfirmError>) => {
      if (done) return
      done = true
      if (timer !== undefined) clearTimeout(timer)
      session.closeWaiters.delete(onClose)
      session.drainWaiters.delete(write)
      session.returnWaiters.delete(onReturn)
      resume(result)
    }
    // Another batch may carry the same message; failing this one too costs a redelivery, no loss.
    const onReturn = (returned: amqp.Message) => {
      const ours = items.some((item) =>
        item.options.mandatory === true && item.options.messageId === returned.properties.messageId &&
        item.exchange === returned.fields.exchange && item.routingKey === returned.fields.routingKey
      )
      if (!ours) return
      const { replyCode, replyText } = returned.fields as amqp.MessageFields & { replyCode?: number; replyText?: string }
      finish(Effect.fail(new ConfirmError({
        retryable: false,
        refused: true,
        cause: `no queue took it from "${returned.fields.exchange}" with key "${returned.fields.routingKey}" (${replyCode} ${replyText})`
      })))
    }
    const onClose = (closed: Closed) =>
      finish(Effect.fail(new ConfirmError({ retryable: closed.connectionLost, cause: closed.error ?? "channel closed" })))
    const onConfirm = (error: unknown) => {
      if (done) return
      if (error === null || error === undefined) {
        if (--unconfirmed === 0) finish(Effect.void)
      } else if (!session.closing) {
        finish(Effect.fail(new ConfirmError({ retryable: false, refused: true, cause: `broker refused a message (${describe(error)})` })))
      }
      // else: the channel is closing; `onClose` reports it once it is known why
    }
    const write = () => {
      session.drainWaiters.delete(write)
      while (next < items.length && !done) {
        const item = items[next++]!
        let room: boolean
        try {
          room = session.channel.publish(item.exchange, item.routingKey, item.content, item.options, onConfirm)
        } catch {
          // The channel is closing or closed; its close reaches `onClose`.
          return
        }
        if (!room && next < items.length) {
          session.drainWaiters.add(write)
          return
        }
      }
    }
    if (session.closed !== undefined) {
      onClose(session.closed)
      return
    }
    session.closeWaiters.add(onClose)
    if (items.some((item) => item.options.mandatory === true)) session.returnWaiters.add(onReturn)
    if (limit !== undefined) {
      timer = setTimeout(() => finish(Effect.fail(new ConfirmError({ retryable: false, cause: timedOut?.() ?? "not confirmed in time" }))), limit)
    }
    write()
    return Effect.sync(() => {
      done = true
      if (timer !== undefined) clearTimeout(timer)
      session.closeWaiters.delete(onClose)
      session.drainWaiters.delete(write)
      session.returnWaiters.delete(onReturn)
    })
  })

/** How messages published to the default exchange (`directTopic`, request/reply) are stored. */
export type DirectDelivery = "persistent" | "transient"

/**
 * The Publisher's raw send for `Publisher.make`. The retry exchange is refused: what arrives
 * through it is taken for a retry copy, attempt and origin included. Every publish waits for its
 * confirm, transient ones too: the broker confirms those once a queue took them (no disk write),
 * so a confirmed reply still means a reply in its queue.
 */
export const send = (confirms: Confirms, directDelivery: DirectDelivery = "persistent") =>
(topic: string, messages: ReadonlyArray<Message>): Effect.Effect<void, PublisherError> =>
  topic === retryExchange
    ? Effect.fail(new PublisherError({ operation: "publish", topic, cause: "reserved for the toolkit's retry copies", reason: "refused" }))
    : confirms.publish(topic, messages.map((message) => toAmqp(topic, message, topic !== directTopic || directDelivery === "persistent"))).pipe(
      Effect.mapError((error) =>
        new PublisherError({ operation: "publish", topic, cause: error.cause, reason: error.refused === true ? "refused" : "unavailable" })
      )
    )
