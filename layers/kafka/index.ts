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
 * Closing the layer: consumers leave their groups as their own scopes close, which come first;
 * then the producer and the admin client disconnect.
 */
import * as Config from "effect/Config"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { Publisher } from "../../src/capabilities/Publisher.ts"
import { defaultPrefetch, Subscriber, type SubscriberError } from "../../src/capabilities/Subscriber.ts"
import { type KafkaLogLevel, makeClient, makeTopics } from "./client.ts"
import { makeProducer, send } from "./publisher.ts"
import { makeSubscriber } from "./subscriber.ts"

export type { KafkaLogLevel } from "./client.ts"

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
}

export const layer = (options: KafkaOptions): Layer.Layer<Publisher | Subscriber, SubscriberError> =>
  Layer.effectContext(Effect.gen(function*() {
    const client = yield* makeClient({
      brokers: options.brokers,
      clientId: options.clientId ?? "queueworks",
      logLevel: options.logLevel ?? "warn"
    })
    const topics = yield* makeTopics(client, {
      partitions: options.topicPartitions ?? 3,
      replicationFactor: options.replicationFactor ?? -1
    })
    const producer = yield* makeProducer(client, options.publishTimeout ?? "30 seconds")
    const subscriber = makeSubscriber(client, topics, producer, {
      prefetch: options.prefetch ?? defaultPrefetch,
      sessionTimeout: options.sessionTimeout ?? "30 seconds",
      heartbeatInterval: options.heartbeatInterval ?? "3 seconds",
      rebalanceTimeout: options.rebalanceTimeout ?? "60 seconds",
      maxWaitTime: options.maxWaitTime ?? "500 millis",
      commitInterval: options.commitInterval ?? "1 second",
      partitionsConsumedConcurrently: options.partitionsConsumedConcurrently ?? 16,
      joinTimeout: options.joinTimeout ?? "30 seconds",
      closeTimeout: options.closeTimeout ?? "30 seconds"
    })
    return Context.make(Publisher, Publisher.make("kafka", send(producer))).pipe(
      Context.add(Subscriber, Subscriber.of(subscriber))
    )
  }))

/** `KAFKA_BROKERS` [localhost:9092], comma-separated, and `KAFKA_CLIENT_ID` [queueworks]. */
export const layerConfig: Layer.Layer<Publisher | Subscriber, SubscriberError | Config.ConfigError> = Layer.unwrap(
  Effect.gen(function*() {
    const brokers = yield* brokerList("KAFKA_BROKERS").pipe(Config.withDefault(["localhost:9092"]))
    const clientId = yield* Config.String("KAFKA_CLIENT_ID").pipe(Config.withDefault("queueworks"))
    return layer({ brokers, clientId })
  })
)

const brokerList = (variable: string) =>
  Config.String(variable).pipe(
    Config.mapEffect((text) => {
      const brokers = text.split(",").map((broker) => broker.trim()).filter((broker) => broker !== "")
      if (brokers.length > 0) return Effect.succeed(brokers)
      // Shaped like src/runtime/config.ts's issues, so `load` names the variable.
      const issue = { variable, expected: "comma-separated host:port pairs", detail: `got "${text}"` }
      return Effect.fail(
        new Config.ConfigError(new ConfigProvider.SourceError({ message: `${variable}: expected ${issue.expected} (${issue.detail})`, cause: issue }))
      )
    })
  )
