/**
 * Kafka backend of Publisher and Subscriber (kafkajs).
 *
 * Mapping: a topic is a Kafka topic (created with `topicPartitions` partitions when missing), a
 * group a consumer group, the key the record key, the id the `message-id` header. Kafka routes
 * nothing, so a subscription's filter is applied on the client: records whose key does not match
 * are committed past without reaching a handler. See `publisher.ts`, `subscriber.ts` and
 * `ledger.ts` for producing, consuming and what gets committed when.
 *
 * What Kafka cannot do like the contract's reference broker (feature flags for the contract):
 * redelivery after a consumer went away is the group reading from the committed offset again,
 * so the attempt is not counted (`countsAbandonedAttempts: false`); `prefetch` holds exactly.
 *
 * `layer` gives both ends; `publisherLayer` only the idempotent producer (no consumer, and no
 * admin client but the health probe's, connected only when `healthy` is asked: what an outbox
 * relay needs), `subscriberLayer` the subscriber with the admin client that creates its topics
 * and the producer its retries and dead letters go through. The Publisher's `healthy` asks the
 * cluster (`health.ts`): the producer alone would not notice a broker that went away. Building any
 * of them fails with a `BrokerError` naming the brokers when they cannot be reached within
 * `connectTimeout`. Publishing to a topic that does not exist relies on the broker creating it
 * (`auto.create.topics.enable`), or on a subscriber having declared it.
 *
 * Closing the layer: consumers leave their groups as their own scopes close, which come first;
 * then the producer and the admin client disconnect.
 */
import * as Config from "effect/Config"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import type { BrokerError } from "../../src/capabilities/BrokerError.ts"
import { Publisher, type PublisherShape } from "../../src/capabilities/Publisher.ts"
import { defaultPrefetch, Subscriber, type SubscriberShape } from "../../src/capabilities/Subscriber.ts"
import { configIssue, duration, oneOf, positiveInt } from "../../src/runtime/config.ts"
import { type Client, type KafkaLogLevel, makeClient, makeTopics } from "./client.ts"
import { makeHealthProbe } from "./health.ts"
import { makeProducer, type Producer, send } from "./publisher.ts"
import { makeSubscriber } from "./subscriber.ts"
import { configuredLayers } from "../configured.ts"

export { KafkaClientHook, type KafkaLogLevel } from "./client.ts"

export interface KafkaOptions {
  /** `host:port` of one or more brokers to bootstrap from. */
  readonly brokers: ReadonlyArray<string>
  /** Shown in the broker's logs and quotas; default "queueworks". */
  readonly clientId?: string
  /** Unsettled deliveries per consumer when a subscription names none; default 100. */
  readonly prefetch?: number
  /** Partitions of a topic `declare`/`subscribe` creates; default 3, so a group can share it. */
  readonly topicPartitions?: number
  /** Replicas of a topic created here; default -1, the broker's `default.replication.factor`. */
  readonly replicationFactor?: number
  /** Bounds connecting the producer and the admin client when the layer is built; default 10 s. */
  readonly connectTimeout?: Duration.Input
  /** Bounds a publish, a retry or a dead letter; default 30 s. */
  readonly publishTimeout?: Duration.Input
  /** How long `subscribe` waits for its consumer to join the group; default 30 s. */
  readonly joinTimeout?: Duration.Input
  /** Consumer group session: a member silent this long is removed; default 30 s. */
  readonly sessionTimeout?: Duration.Input
  /** Between heartbeats; also how fast a member notices a rebalance; default 3 s. */
  readonly heartbeatInterval?: Duration.Input
  /** How long the group waits for its members to rejoin in a rebalance; default 60 s. */
  readonly rebalanceTimeout?: Duration.Input
  /** How long a fetch waits on the broker for new records; default 500 ms. */
  readonly maxWaitTime?: Duration.Input
  /** Longest delay between settling a record and committing it; default 1 s. */
  readonly commitInterval?: Duration.Input
  /** Partitions whose batches one consumer works on at once; default 16. */
  readonly partitionsConsumedConcurrently?: number
  /** How long stopping or closing a consumer waits to leave its group; default 30 s. */
  readonly closeTimeout?: Duration.Input
  /** kafkajs log entries from this level up become Effect logs; default "warn". */
  readonly logLevel?: KafkaLogLevel
  /**
   * The original relay's `KAFKA_REQUIRED_ACKS`, accepted so its configuration keeps working. The
   * producer is idempotent, which Kafka allows only with acks=all, so anything else is reported
   * at start and acks=all is used: a weaker setting would let a broker failover lose records the
   * outbox already marked published.
   */
  readonly requiredAcks?: RequiredAcks
}

/** `KAFKA_REQUIRED_ACKS` values: all (-1), leader only (1), none (0). */
export const requiredAcksValues = ["all", "-1", "1", "0"] as const
export type RequiredAcks = (typeof requiredAcksValues)[number]

export type Options = KafkaOptions

interface Link {
  readonly client: Client
  readonly producer: Producer
  readonly healthy: Effect.Effect<boolean>
}

// Every variant needs the client and the producer: the subscriber's retries and dead letters
// are produced records too. The admin client is the subscriber's alone.
const connect = (options: KafkaOptions): Effect.Effect<Link, BrokerError, Scope.Scope> =>
  Effect.gen(function*() {
    const client = yield* makeClient({
      brokers: options.brokers,
      clientId: options.clientId ?? "queueworks",
      logLevel: options.logLevel ?? "warn",
      connectTimeout: options.connectTimeout ?? "10 seconds"
    })
    const producer = yield* makeProducer(client, options.publishTimeout ?? "30 seconds")
    if (options.requiredAcks !== undefined && options.requiredAcks !== "all" && options.requiredAcks !== "-1") {
      yield* Effect.logWarning(
        `KAFKA_REQUIRED_ACKS=${options.requiredAcks} is not used: the idempotent producer always waits for all in-sync replicas (acks=all)`
      )
    }
    // Shorter than a readiness check's own bound, so a cluster that does not answer reads as
    // this check failing, by name.
    const healthy = yield* makeHealthProbe(client, "1 second")
    return { client, producer, healthy }
  })

const publisherOf = (link: Link): PublisherShape => Publisher.make("kafka", send(link.producer), link.healthy)

const subscriberOf = (options: KafkaOptions, link: Link): Effect.Effect<SubscriberShape, BrokerError, Scope.Scope> =>
  Effect.map(
    makeTopics(link.client, { partitions: options.topicPartitions ?? 3, replicationFactor: options.replicationFactor ?? -1 }),
    (topics) =>
      Subscriber.of(makeSubscriber(link.client, topics, link.producer, link.healthy, {
        prefetch: options.prefetch ?? defaultPrefetch,
        sessionTimeout: options.sessionTimeout ?? "30 seconds",
        heartbeatInterval: options.heartbeatInterval ?? "3 seconds",
        rebalanceTimeout: options.rebalanceTimeout ?? "60 seconds",
        maxWaitTime: options.maxWaitTime ?? "500 millis",
        commitInterval: options.commitInterval ?? "1 second",
        partitionsConsumedConcurrently: options.partitionsConsumedConcurrently ?? 16,
        joinTimeout: options.joinTimeout ?? "30 seconds",
        closeTimeout: options.closeTimeout ?? "30 seconds"
      }))
  )

/** Publisher and Subscriber on one client and one producer. */
export const layer = (options: KafkaOptions): Layer.Layer<Publisher | Subscriber, BrokerError> =>
  Layer.effectContext(Effect.gen(function*() {
    const link = yield* connect(options)
    const subscriber = yield* subscriberOf(options, link)
    return Context.make(Publisher, publisherOf(link)).pipe(Context.add(Subscriber, subscriber))
  }))

/** Publisher only: the idempotent producer, and no admin client or consumer. */
export const publisherLayer = (options: KafkaOptions): Layer.Layer<Publisher, BrokerError> =>
  Layer.effect(Publisher, Effect.map(connect(options), publisherOf))

/** Subscriber only. */
export const subscriberLayer = (options: KafkaOptions): Layer.Layer<Subscriber, BrokerError> =>
  Layer.effect(Subscriber, Effect.flatMap(connect(options), (link) => subscriberOf(options, link)))

/**
 * `KAFKA_BROKERS` [localhost:9092] (comma-separated), `KAFKA_CLIENT_ID` [queueworks],
 * `KAFKA_PREFETCH` [100], and the original relay's `KAFKA_TIMEOUT` [30s] (bounds a publish) and
 * `KAFKA_SESSION_TIMEOUT` [30s] (consumer group session). `KAFKA_REQUIRED_ACKS` [all] is read
 * and checked (all, -1, 1, 0) but acks=all is always used; see `KafkaOptions.requiredAcks`.
 */
export const config: Config.Config<KafkaOptions> = Config.all({
  brokers: brokerList("KAFKA_BROKERS").pipe(Config.withDefault<ReadonlyArray<string>>(["localhost:9092"])),
  clientId: Config.String("KAFKA_CLIENT_ID").pipe(Config.withDefault("queueworks")),
  prefetch: positiveInt("KAFKA_PREFETCH").pipe(Config.withDefault(defaultPrefetch)),
  publishTimeout: positiveDuration("KAFKA_TIMEOUT").pipe(Config.withDefault<Duration.Input>("30 seconds")),
  sessionTimeout: positiveDuration("KAFKA_SESSION_TIMEOUT").pipe(Config.withDefault<Duration.Input>("30 seconds")),
  requiredAcks: oneOf("KAFKA_REQUIRED_ACKS", requiredAcksValues, { caseInsensitive: true }).pipe(
    Config.withDefault<RequiredAcks>("all")
  )
})

/** `layerConfig`, `publisherLayerConfig`, `subscriberLayerConfig`: the layers above, from `config`. */
export const { layerConfig, publisherLayerConfig, subscriberLayerConfig } = configuredLayers(config, { layer, publisherLayer, subscriberLayer })

// A zero timeout would fail every publish, or every group session, at once.
function positiveDuration(variable: string) {
  return duration(variable).pipe(
    Config.mapEffect((value) =>
      Duration.toMillis(value) > 0
        ? Effect.succeed<Duration.Input>(value)
        : Effect.fail(configIssue(variable, "a duration greater than 0, such as 30s", `got ${Duration.format(value)}`))
    )
  )
}

function brokerList(variable: string) {
  return Config.String(variable).pipe(
    Config.mapEffect((text) => {
      const brokers = text.split(",").map((broker) => broker.trim()).filter((broker) => broker !== "")
      return brokers.length > 0
        ? Effect.succeed<ReadonlyArray<string>>(brokers)
        : Effect.fail(configIssue(variable, "comma-separated host:port pairs", `got "${text}"`))
    })
  )
}
