/**
 * The broker a program runs on, chosen by configuration, so programs carry no choice of their own.
 *
 * `BROKER` = `memory` | `rabbitmq` | `kafka` (any case). Unset, it is the program's own default
 * (`configWithDefault`): `rabbitmq` for the event counter and generator, whose wire contract is
 * AMQP's; `memory`, the embedded broker that needs no server, for everything else (`config`).
 * Then the chosen backend reads its own variables (`RABBITMQ_*`, `KAFKA_*`; memory has none),
 * and only those: a program on Kafka is not stopped by a malformed `RABBITMQ_URL`.
 *
 * The memory variants of one layer build share one broker (`publisherLayer` and
 * `subscriberLayer` merged into one layer publish to and consume from the same queues).
 * Importing this module loads no driver: each backend loads its own when it first connects.
 */
import * as Config from "effect/Config"
import * as Layer from "effect/Layer"
import type { BrokerError } from "../src/capabilities/BrokerError.ts"
import type { Publisher } from "../src/capabilities/Publisher.ts"
import type { Subscriber } from "../src/capabilities/Subscriber.ts"
import { oneOf } from "../src/runtime/config.ts"
import * as Kafka from "./kafka/index.ts"
import * as Memory from "./memory/broker.ts"
import * as RabbitMq from "./rabbitmq/index.ts"
import { configuredLayers } from "./configured.ts"

export type Kind = "memory" | "rabbitmq" | "kafka"

export const kinds: ReadonlyArray<Kind> = ["memory", "rabbitmq", "kafka"]

export type Options =
  | { readonly kind: "memory"; readonly options: Memory.MemoryOptions }
  | { readonly kind: "rabbitmq"; readonly options: RabbitMq.RabbitMqOptions }
  | { readonly kind: "kafka"; readonly options: Kafka.KafkaOptions }

/** `BROKER` [`fallback`], then the chosen backend's variables. */
export const configWithDefault = (fallback: Kind): Config.Config<Options> =>
  oneOf("BROKER", kinds, { caseInsensitive: true }).pipe(
    Config.withDefault(fallback),
    Config.flatMap((kind): Config.Config<Options> => {
      switch (kind) {
        case "memory":
          return Config.map(Memory.config, (options) => ({ kind, options }))
        case "rabbitmq":
          return Config.map(RabbitMq.config, (options) => ({ kind, options }))
        case "kafka":
          return Config.map(Kafka.config, (options) => ({ kind, options }))
      }
    })
  )

/** `BROKER` [memory], then the chosen backend's variables. */
export const config: Config.Config<Options> = configWithDefault("memory")

// Memory's ends take their broker from `brokerLayer`, one value, so every memory end of one
// layer build gets the same broker.
const memoryPublisher = Memory.publisherLayer.pipe(Layer.provide(Memory.brokerLayer))
const memorySubscriber = Memory.subscriberLayer.pipe(Layer.provide(Memory.brokerLayer))

/** Publisher and Subscriber on the chosen broker. */
export const layer = (options: Options): Layer.Layer<Publisher | Subscriber, BrokerError> => {
  switch (options.kind) {
    case "memory":
      return Memory.layer
    case "rabbitmq":
      return RabbitMq.layer(options.options)
    case "kafka":
      return Kafka.layer(options.options)
  }
}

/** Publisher only, for programs that never consume (an outbox relay, a load generator). */
export const publisherLayer = (options: Options): Layer.Layer<Publisher, BrokerError> => {
  switch (options.kind) {
    case "memory":
      return memoryPublisher
    case "rabbitmq":
      return RabbitMq.publisherLayer(options.options)
    case "kafka":
      return Kafka.publisherLayer(options.options)
  }
}

/** Subscriber only. */
export const subscriberLayer = (options: Options): Layer.Layer<Subscriber, BrokerError> => {
  switch (options.kind) {
    case "memory":
      return memorySubscriber
    case "rabbitmq":
      return RabbitMq.subscriberLayer(options.options)
    case "kafka":
      return Kafka.subscriberLayer(options.options)
  }
}

/** `layerConfig`, `publisherLayerConfig`, `subscriberLayerConfig`: the layers above, from `config`. */
export const { layerConfig, publisherLayerConfig, subscriberLayerConfig } = configuredLayers(config, { layer, publisherLayer, subscriberLayer })
