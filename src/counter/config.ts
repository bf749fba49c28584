/**
 * The counter's settings, under the original challenge's names where it had them.
 */
import { Config, Duration } from "effect"
import { duration, positiveInt } from "../runtime/config.ts"
import type { CounterConfig } from "./counter.ts"
import { defaultExchange, defaultQueue } from "./events.ts"

export const counterConfig: Config.Config<CounterConfig> = Config.all({
  exchange: Config.String("RABBITMQ_EXCHANGE").pipe(Config.withDefault(defaultExchange)),
  queue: Config.String("RABBITMQ_QUEUE").pipe(Config.withDefault(defaultQueue)),
  outputDir: Config.String("OUTPUT_DIR").pipe(Config.withDefault(".")),
  idleTimeout: duration("IDLE_TIMEOUT").pipe(Config.withDefault(Duration.seconds(5))),
  prefetch: positiveInt("PREFETCH").pipe(Config.withDefault(500)),
  batchSize: positiveInt("COUNTER_BATCH_SIZE").pipe(Config.withDefault(500)),
  maxMessageBytes: positiveInt("MAX_MESSAGE_BYTES").pipe(Config.withDefault(64 * 1024))
})

export const storeKind = Config.String("COUNTER_STORE").pipe(Config.withDefault("memory"))
