/**
 * The one AMQP connection a RabbitMQ layer shares, and its reconnection.
 *
 * Everything else (the publisher's confirm channel, one channel per consumer) opens channels on
 * the connection `current` hands out. When the connection dies (broker restart, network cut,
 * heartbeat timeout) a supervisor fiber connects again on a capped, jittered exponential
 * schedule; meanwhile `current` waits, so callers bound it with their own timeout. Users of a
 * dead connection notice it through `Live.lost` and their channels' close events, and open new
 * channels on the next `current`.
 *
 * amqplib is loaded when the first connection is made, not with this module, so a program that
 * could run on RabbitMQ but runs on another broker never loads it.
 */
import type * as amqp from "amqplib"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import { BrokerError } from "../../src/capabilities/BrokerError.ts"
import { redactUrl } from "../../src/runtime/config.ts"
import { formatDuration } from "../../src/runtime/format.ts"

/** One established connection. Never reused after `lost` turns true. */
export interface Live {
  readonly model: amqp.ChannelModel
  /** Set synchronously by the connection's close event, before any awaiting fiber resumes. */
  lost: boolean
  lastError: unknown
  /** Why the broker stopped reading from this connection (a memory or disk alarm), while it does. */
  blocked: string | undefined
  readonly closed: Deferred.Deferred<void>
}

export interface Connection {
  /** The live connection, waiting for the reconnect when there is none. Never fails. */
  readonly current: Effect.Effect<Live>
  /** Connected and not blocked by a broker alarm: what readiness reports. Never waits. */
  readonly healthy: Effect.Effect<boolean>
  /** The URL with its password masked, for logs and error messages. */
  readonly safeUrl: string
}

export interface ConnectionOptions {
  readonly url: string
  /** Shown by `rabbitmqctl list_connections` and the management UI. */
  readonly connectionName?: string
  /** Between reconnect attempts; also used, bounded by `connectTimeout`, for the first connect. */
  readonly reconnectSchedule?: Schedule.Schedule<unknown, BrokerError>
  /** How long building the layer keeps trying to reach the broker. */
  readonly connectTimeout?: Duration.Input
}

/** Bounds closing a channel or the connection at shutdown. */
export const closeTimeout = "5 seconds"

export const defaultReconnectSchedule: Schedule.Schedule<unknown, BrokerError> = Schedule.min([
  Schedule.exponential("100 millis"),
  Schedule.spaced("5 seconds")
]).pipe(Schedule.jittered)

/**
 * One socket write for all the frames amqplib has ready at once, instead of one per frame.
 * amqplib queues each channel's frames and a muxer writes them to the socket, a write (and a
 * system call, with the broker's side of the loopback run in it) per message, an ack or a confirm
 * select alike; a batch's publishes went out as that many writes. Corking the socket while the
 * muxer empties its queues hands them to the socket as one write. The muxer is amqplib's own and
 * not public: when it is not what is expected, writes stay as they are (and a test says so).
 * Answers whether it applied.
 */
export const coalesceWrites = (model: amqp.ChannelModel): boolean => {
  const muxer = (model as unknown as { connection?: { muxer?: { _readIncoming?: unknown; out?: unknown } } }).connection?.muxer
  const out = muxer?.out as { cork?: unknown; uncork?: unknown } | undefined
  const readIncoming = muxer?._readIncoming
  if (muxer === undefined || typeof readIncoming !== "function" || typeof out?.cork !== "function" || typeof out.uncork !== "function") return false
  const socket = out as { cork: () => void; uncork: () => void }
  muxer._readIncoming = function(this: unknown) {
    socket.cork()
    try {
      return readIncoming.call(this)
    } finally {
      socket.uncork()
    }
  }
  return true
}

export const make = (options: ConnectionOptions): Effect.Effect<Connection, BrokerError, Scope.Scope> =>
  Effect.gen(function*() {
    // `amqp://user:***@host:port/vhost`: connection errors and logs never carry the password.
    const safeUrl = redactUrl(options.url)
    const schedule = options.reconnectSchedule ?? defaultReconnectSchedule
    const clientProperties = { connection_name: options.connectionName ?? "queueworks" }
    const { connect } = yield* Effect.promise(() => import("amqplib"))

    // amqp.connect cannot be aborted: if the fiber waiting for it is interrupted (layer closing
    // mid-reconnect), the connection that still arrives is closed instead of leaking.
    const connectOnce = Effect.callback<amqp.ChannelModel, BrokerError>((resume) => {
      let abandoned = false
      connect(options.url, { clientProperties }).then(
        (model) => {
          if (abandoned) model.close().catch(() => {})
          else resume(Effect.succeed(model))
        },
        (cause: unknown) => resume(Effect.fail(new BrokerError({ operation: "connect", broker: safeUrl, cause })))
      )
      return Effect.sync(() => {
        abandoned = true
      })
    })

    let live: Live | undefined
    let ready = Deferred.makeUnsafe<Live>()
    let closing = false

    const install = (model: amqp.ChannelModel): Live => {
      coalesceWrites(model)
      const next: Live = {
        model,
        lost: false,
        lastError: undefined,
        blocked: undefined,
        closed: Deferred.makeUnsafe()
      }
      // An 'error' without a listener would be thrown out of amqplib's frame handling; 'close' always follows it.
      model.on("error", (error: Error) => {
        next.lastError = error
      })
      model.on("blocked", (reason: string) => {
        next.blocked = reason
      })
      model.on("unblocked", () => {
        next.blocked = undefined
      })
      model.on("close", (error?: Error) => {
        next.lost = true
        if (error !== undefined) next.lastError = error
        if (live === next) {
          live = undefined
          ready = Deferred.makeUnsafe()
        }
        Deferred.doneUnsafe(next.closed, Effect.void)
      })
      live = next
      Deferred.doneUnsafe(ready, Effect.succeed(next))
      return next
    }

    let lastFailure: unknown = "no answer"
    const connectTimeout = options.connectTimeout ?? "10 seconds"
    const first = yield* connectOnce.pipe(
      Effect.tapError((error) => Effect.sync(() => (lastFailure = error.cause))),
      Effect.retry(schedule),
      Effect.timeoutOrElse({
        duration: connectTimeout,
        orElse: () =>
          Effect.fail(new BrokerError({
            operation: "connect",
            broker: safeUrl,
            cause: `not connected within ${formatDuration(connectTimeout)}; ` +
              `last error: ${describe(lastFailure)}`
          }))
      })
    )
    yield* Effect.logDebug(`rabbitmq: connected to ${safeUrl}`)

    const supervise = (initial: Live) => Effect.gen(function*() {
      let watched = initial
      while (true) {
        yield* Deferred.await(watched.closed)
        if (closing) return
        yield* Effect.logWarning(`rabbitmq: connection to ${safeUrl} lost (${describe(watched.lastError)}); reconnecting`)
        const model = yield* connectOnce.pipe(
          Effect.tapError((error) => Effect.logWarning(`rabbitmq: reconnect failed: ${describe(error.cause)}`)),
          Effect.retry(schedule)
        )
        if (closing) {
          yield* Effect.promise(() => model.close().catch(() => {})).pipe(Effect.timeoutOption(closeTimeout))
          return
        }
        watched = install(model)
        yield* Effect.logInfo(`rabbitmq: reconnected to ${safeUrl}`)
      }
    })
    yield* Effect.forkScoped(supervise(install(first)))

    // Registered after the supervisor, so it runs first on close: the supervisor must see
    // `closing` before the close event it causes. Consumers and the publisher close their
    // channels in scopes that end before this one.
    yield* Effect.addFinalizer(() =>
      Effect.gen(function*() {
        closing = true
        const last = live
        live = undefined
        if (last !== undefined && !last.lost) {
          // A blocked connection (broker alarm) may never answer the close; do not hang shutdown on it.
          yield* Effect.promise(() => last.model.close().catch(() => {})).pipe(Effect.timeoutOption(closeTimeout))
        }
      })
    )

    const current: Effect.Effect<Live> = Effect.suspend(() =>
      live !== undefined && !live.lost ? Effect.succeed(live) : Deferred.await(ready)
    )

    const healthy = Effect.sync(() => live !== undefined && !live.lost && live.blocked === undefined)

    return { current, healthy, safeUrl }
  })

/**
 * Calls `onClose` once when `channel` closes, telling whether its connection died with it
 * (reconnect and carry on) or the broker closed just this channel (an error in how it was used).
 */
export const watchChannel = (
  live: Live,
  channel: amqp.Channel,
  onClose: (connectionLost: boolean, error: unknown) => void
): void => {
  let error: unknown
  channel.on("error", (cause: Error) => {
    error = cause
  })
  channel.on("close", () => {
    // A dying connection closes its channels first and only then emits its own close (which
    // sets `live.lost`), all in one synchronous call; one microtask later the answer is known.
    queueMicrotask(() => onClose(live.lost, error ?? live.lastError))
  })
}

export const describe = (cause: unknown): string =>
  cause instanceof Error ? cause.message : cause === undefined ? "closed" : String(cause)
