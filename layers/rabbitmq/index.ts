/**
 * RabbitMQ backend of Publisher and Subscriber (amqplib, AMQP 0-9-1).
 *
 * One connection per layer, reconnected on loss; one confirm channel for publishing; one channel
 * per consumer. Mapping: a topic is a durable topic exchange, a group a durable queue bound with
 * the subscription's filter, `deadLetterTopic(group)` an exchange with a queue of the same name;
 * retries come back to the group's queue through the toolkit's direct exchange `queueworks.retry`,
 * the only place their attempt and origin headers are believed from. The layer's user therefore
 * needs configure, write and read permission on `queueworks.retry`; other clients need none.
 * See `topology.ts`, `publisher.ts`, `subscriber.ts` and `ackBatcher.ts` for the details.
 *
 * `layer` gives both ends on one connection; `publisherLayer` and `subscriberLayer` one each, for
 * programs that only publish or only consume. The subscriber-only layer still opens the confirm
 * channel: its retries and dead letters are publishes. Building any of them fails with a
 * `BrokerError` naming the URL (password masked) when the broker cannot be reached within
 * `connectTimeout`.
 *
 * Closing the layer closes consumers' channels first (their scopes end before it), then the
 * confirm channel, then the connection.
 */
import * as Config from "effect/Config"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import type * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import type { BrokerError } from "../../src/capabilities/BrokerError.ts"
import { Publisher, type PublisherShape } from "../../src/capabilities/Publisher.ts"
import { defaultPrefetch, Subscriber, type SubscriberShape } from "../../src/capabilities/Subscriber.ts"
import * as Connection from "./connection.ts"
import { type Confirms, type DirectDelivery, makeConfirms, send } from "./publisher.ts"
import { makeSubscriber } from "./subscriber.ts"
import { oneOf, positiveInt, url } from "../../src/runtime/config.ts"
import { configuredLayers } from "../configured.ts"

export interface RabbitMqOptions {
  /**
   * `amqp://user:password@host:port/vhost`; the password never appears in logs or errors. `config`
   * keeps it Redacted so printing the options does not show it either.
   */
  readonly url: string | Redacted.Redacted<string>
  /** Unsettled deliveries per consumer when a subscription names none; default 100. */
  readonly prefetch?: number
  /** Shown by `rabbitmqctl list_connections`; default "queueworks". */
  readonly connectionName?: string
  /** Bounds a publish, a retry or a dead letter, waiting for a reconnect included; default 30 s. */
  readonly publishTimeout?: Duration.Input
  /** Bounds the first connect, and `subscribe`/`declare` waiting for a connection; default 10 s. */
  readonly connectTimeout?: Duration.Input
  /** Longest time an ack is held back for batching; default 20 ms. */
  readonly ackFlushInterval?: Duration.Input
  /** Between reconnect attempts; default exponential from 100 ms, capped at 5 s, jittered. */
  readonly reconnectSchedule?: Schedule.Schedule<unknown, BrokerError>
  /**
   * How what this layer publishes to `directTopic` (the default exchange: requests and replies
   * sent straight to a queue) is stored; default "persistent", like every other message.
   * "transient" keeps those messages in memory only: no disk write per message on a durable
   * queue (a persistent confirm waits for one), at the price that a broker restart loses the ones
   * still queued. For request/reply traffic whose client times out anyway, a lost request is a
   * timeout it handles already. Topics, retries and dead letters stay persistent either way.
   */
  readonly directDelivery?: DirectDelivery
}

export type Options = RabbitMqOptions

interface Link {
  readonly connection: Connection.Connection
  readonly confirms: Confirms
  readonly directDelivery: DirectDelivery
}

// Every variant needs the connection and the confirm channel: the subscriber's retries and dead
// letters are publishes too.
const connect = (options: RabbitMqOptions): Effect.Effect<Link, BrokerError, Scope.Scope> =>
  Effect.gen(function*() {
    const connection = yield* Connection.make({
      url: Redacted.isRedacted(options.url) ? Redacted.value(options.url) : options.url,
      connectTimeout: connectTimeoutOf(options),
      ...(options.connectionName === undefined ? {} : { connectionName: options.connectionName }),
      ...(options.reconnectSchedule === undefined ? {} : { reconnectSchedule: options.reconnectSchedule })
    })
    const confirms = yield* makeConfirms(connection, options.publishTimeout ?? "30 seconds")
    return { connection, confirms, directDelivery: options.directDelivery ?? "persistent" }
  })

const connectTimeoutOf = (options: RabbitMqOptions): Duration.Input => options.connectTimeout ?? "10 seconds"

const publisherOf = (link: Link): PublisherShape => Publisher.make("rabbitmq", send(link.confirms, link.directDelivery), link.connection.healthy)

const subscriberOf = (options: RabbitMqOptions, link: Link): SubscriberShape =>
  Subscriber.of(makeSubscriber(link.connection, link.confirms, {
    prefetch: options.prefetch ?? defaultPrefetch,
    ackFlushInterval: options.ackFlushInterval ?? "20 millis",
    connectTimeout: connectTimeoutOf(options)
  }))

/** Publisher and Subscriber on one connection. */
export const layer = (options: RabbitMqOptions): Layer.Layer<Publisher | Subscriber, BrokerError> =>
  Layer.effectContext(Effect.map(connect(options), (link) =>
    Context.make(Publisher, publisherOf(link)).pipe(Context.add(Subscriber, subscriberOf(options, link)))))

/** Publisher only: a connection and its confirm channel. */
export const publisherLayer = (options: RabbitMqOptions): Layer.Layer<Publisher, BrokerError> =>
  Layer.effect(Publisher, Effect.map(connect(options), publisherOf))

/** Subscriber only. */
export const subscriberLayer = (options: RabbitMqOptions): Layer.Layer<Subscriber, BrokerError> =>
  Layer.effect(Subscriber, Effect.map(connect(options), (link) => subscriberOf(options, link)))

/**
 * `RABBITMQ_URL` [amqp://guest:guest@localhost:5672], `RABBITMQ_PREFETCH` [100] and
 * `RABBITMQ_DIRECT_DELIVERY` [persistent] (or transient: see `directDelivery`).
 */
export const config: Config.Config<RabbitMqOptions> = Config.all({
  // Checked at start, so a wrong scheme stops the program (exit 2) instead of a reconnect loop.
  url: url("RABBITMQ_URL", ["amqp", "amqps"]).pipe(
    Config.withDefault("amqp://guest:guest@localhost:5672"),
    Config.map((text) => Redacted.make(text))
  ),
  prefetch: positiveInt("RABBITMQ_PREFETCH").pipe(Config.withDefault(defaultPrefetch)),
  directDelivery: oneOf("RABBITMQ_DIRECT_DELIVERY", ["persistent", "transient"] as const).pipe(Config.withDefault("persistent" as const))
})

/** `layerConfig`, `publisherLayerConfig`, `subscriberLayerConfig`: the layers above, from `config`. */
export const { layerConfig, publisherLayerConfig, subscriberLayerConfig } = configuredLayers(config, { layer, publisherLayer, subscriberLayer })
