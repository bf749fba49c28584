/**
 * The counter's settings, under the original challenge's names where it had them.
 */
import * as Config from "effect/Config"
import * as Duration from "effect/Duration"
import { intInRange, numberInRange, oneOf, positiveDuration, positiveInt } from "../runtime/config.ts"
import type { CounterConfig } from "./counter.ts"
import { defaultExchange, defaultQueue } from "./events.ts"
import { defaultGeneratorOptions, type GeneratorOptions } from "./generator.ts"

export const counterConfig = (
  defaults: { readonly outputDir: string; readonly idleTimeout: Duration.Duration } = { outputDir: ".", idleTimeout: Duration.seconds(5) }
): Config.Config<CounterConfig> => Config.all({
  exchange: Config.String("RABBITMQ_EXCHANGE").pipe(Config.withDefault(defaultExchange)),
  queue: Config.String("RABBITMQ_QUEUE").pipe(Config.withDefault(defaultQueue)),
  outputDir: Config.String("OUTPUT_DIR").pipe(Config.withDefault(defaults.outputDir)),
  idleTimeout: positiveDuration("IDLE_TIMEOUT").pipe(Config.withDefault(defaults.idleTimeout)),
  prefetch: positiveInt("PREFETCH").pipe(Config.withDefault(500)),
  batchSize: positiveInt("COUNTER_BATCH_SIZE").pipe(Config.withDefault(500)),
  maxMessageBytes: positiveInt("MAX_MESSAGE_BYTES").pipe(Config.withDefault(64 * 1024))
})

/** Where the seen ids and counts live: `memory` [default] or `postgres` (durable across restarts). */
export const storeKind = oneOf("COUNTER_STORE", ["memory", "postgres"]).pipe(Config.withDefault("memory" as const))

/** The generator's traffic: `COUNT` [100], `USERS` [5], `DUPLICATE_RATIO` [0.1], `MALFORMED` [0], `SEED` [42]. */
export const trafficConfig = (defaults: GeneratorOptions = defaultGeneratorOptions): Config.Config<GeneratorOptions> => Config.all({
  count: positiveInt("COUNT").pipe(Config.withDefault(defaults.count)),
  users: positiveInt("USERS").pipe(Config.withDefault(defaults.users)),
  duplicateRatio: numberInRange("DUPLICATE_RATIO", 0, 1).pipe(Config.withDefault(defaults.duplicateRatio)),
  malformed: intInRange("MALFORMED", 0, 1_000_000).pipe(Config.withDefault(defaults.malformed)),
  seed: intInRange("SEED", 0, 2 ** 31 - 1).pipe(Config.withDefault(defaults.seed)),
  oversizedBytes: Config.succeed(defaults.oversizedBytes)
})
