/**
 * The `...Config` layers every broker backend exports, written once: each reads the backend's
 * `config` and builds the layer of the same name from it, so a bad variable fails the layer with
 * a ConfigError naming it before anything connects.
 */
import type * as Config from "effect/Config"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type { BrokerError } from "../src/capabilities/BrokerError.ts"
import type { Publisher } from "../src/capabilities/Publisher.ts"
import type { Subscriber } from "../src/capabilities/Subscriber.ts"

export const configuredLayers = <O>(
  config: Config.Config<O>,
  layers: {
    readonly layer: (options: O) => Layer.Layer<Publisher | Subscriber, BrokerError>
    readonly publisherLayer: (options: O) => Layer.Layer<Publisher, BrokerError>
    readonly subscriberLayer: (options: O) => Layer.Layer<Subscriber, BrokerError>
  }
): {
  readonly layerConfig: Layer.Layer<Publisher | Subscriber, BrokerError | Config.ConfigError>
  readonly publisherLayerConfig: Layer.Layer<Publisher, BrokerError | Config.ConfigError>
  readonly subscriberLayerConfig: Layer.Layer<Subscriber, BrokerError | Config.ConfigError>
} => ({
  layerConfig: Layer.unwrap(Effect.map(config, layers.layer)),
  publisherLayerConfig: Layer.unwrap(Effect.map(config, layers.publisherLayer)),
  subscriberLayerConfig: Layer.unwrap(Effect.map(config, layers.subscriberLayer))
})
