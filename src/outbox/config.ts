/**
 * The outbox relay's settings under the original service's variable names and defaults
 * (SPEC §2). A bad value stops the relay at start with a ConfigError naming the variable.
 *
 * `KAFKA_EXPONENTIAL_RETRY_ENABLED=false` keeps the retries but waits the original's fixed
 * `WORKER_RETRY_DELAY` [1s] between each, unjittered; `KAFKA_CIRCUIT_BREAKER_ENABLED=false` publishes without a breaker.
 *
 * `WORKER_ASYNC_COMMIT` [true] (not the original's) commits a batch's marks without waiting for
 * PostgreSQL to flush them: see `RelayConfig.asyncCommit`.
 */
import * as Config from "effect/Config"
import * as Duration from "effect/Duration"
import { outboxDefaults } from "../resilience/backoff.ts"
import { outboxBreakerDefaults } from "../resilience/circuitBreaker.ts"
import { intInRange, numberInRange, oneOf, positiveDuration, positiveInt } from "../runtime/config.ts"

const flag = (name: string) =>
  oneOf(name, ["true", "false", "1", "0"], { caseInsensitive: true }).pipe(
    Config.map((word) => word === "true" || word === "1"),
    Config.withDefault(true)
  )

export interface RelayConfig {
  readonly poolSize: number
  readonly batchSize: number
  readonly pollInterval: Duration.Duration
  readonly maxRetries: number
  readonly topic: string
  readonly baseDelay: Duration.Duration
  readonly maxDelay: Duration.Duration
  readonly multiplier: number
  readonly exponentialRetry: boolean
  /** The fixed wait between attempts when `exponentialRetry` is off. */
  readonly retryDelay: Duration.Duration
  readonly circuitBreaker: boolean
  readonly failureThreshold: number
  readonly successThreshold: number
  readonly resetTimeout: Duration.Duration
  /** A publish not acknowledged within this counts as failed. */
  readonly publishTimeout: Duration.Duration
  /** How often `txstream_events_in_queue` is read from the table. */
  readonly queueGaugeInterval: Duration.Duration
  /**
   * Commit a batch's marks with `synchronous_commit = off`: the worker claims again without
   * waiting for the WAL flush, which on a slow disk took most of its time at a steady load. What
   * it costs: a PostgreSQL crash can lose the last fraction of a second of marks (never rows,
   * which the writers commit durably), so those events are published again, as after a relay
   * crash between Kafka's ack and the commit; delivery stays at-least-once, and a later durable
   * commit (any insert) flushes the earlier marks with it. `false` waits for each flush.
   */
  readonly asyncCommit: boolean
}

export const relayDefaults: RelayConfig = {
  poolSize: 3,
  batchSize: 10,
  pollInterval: Duration.seconds(5),
  maxRetries: outboxDefaults.WORKER_MAX_RETRIES,
  topic: "txstream.events",
  baseDelay: outboxDefaults.KAFKA_BASE_DELAY,
  maxDelay: outboxDefaults.KAFKA_MAX_DELAY,
  multiplier: outboxDefaults.KAFKA_MULTIPLIER,
  exponentialRetry: true,
  retryDelay: Duration.seconds(1),
  circuitBreaker: true,
  failureThreshold: outboxBreakerDefaults.KAFKA_FAILURE_THRESHOLD,
  successThreshold: outboxBreakerDefaults.KAFKA_SUCCESS_THRESHOLD,
  resetTimeout: outboxBreakerDefaults.KAFKA_RESET_TIMEOUT,
  publishTimeout: Duration.seconds(10),
  queueGaugeInterval: Duration.seconds(15),
  asyncCommit: true
}

export const relayConfig: Config.Config<RelayConfig> = Config.all({
  poolSize: positiveInt("WORKER_POOL_SIZE").pipe(Config.withDefault(relayDefaults.poolSize)),
  batchSize: intInRange("WORKER_BATCH_SIZE", 1, 10_000).pipe(Config.withDefault(relayDefaults.batchSize)),
  pollInterval: positiveDuration("WORKER_INTERVAL").pipe(Config.withDefault(relayDefaults.pollInterval)),
  maxRetries: intInRange("WORKER_MAX_RETRIES", 0, 1_000).pipe(Config.withDefault(relayDefaults.maxRetries)),
  topic: Config.String("KAFKA_TOPIC_EVENTS").pipe(Config.withDefault(relayDefaults.topic)),
  baseDelay: positiveDuration("KAFKA_BASE_DELAY").pipe(Config.withDefault(relayDefaults.baseDelay)),
  maxDelay: positiveDuration("KAFKA_MAX_DELAY").pipe(Config.withDefault(relayDefaults.maxDelay)),
  multiplier: numberInRange("KAFKA_MULTIPLIER", 1, 100).pipe(Config.withDefault(relayDefaults.multiplier)),
  exponentialRetry: flag("KAFKA_EXPONENTIAL_RETRY_ENABLED"),
  retryDelay: positiveDuration("WORKER_RETRY_DELAY").pipe(Config.withDefault(relayDefaults.retryDelay)),
  circuitBreaker: flag("KAFKA_CIRCUIT_BREAKER_ENABLED"),
  failureThreshold: positiveInt("KAFKA_FAILURE_THRESHOLD").pipe(Config.withDefault(relayDefaults.failureThreshold)),
  successThreshold: positiveInt("KAFKA_SUCCESS_THRESHOLD").pipe(Config.withDefault(relayDefaults.successThreshold)),
  resetTimeout: positiveDuration("KAFKA_RESET_TIMEOUT").pipe(Config.withDefault(relayDefaults.resetTimeout)),
  publishTimeout: positiveDuration("KAFKA_TIMEOUT_DURATION").pipe(Config.withDefault(relayDefaults.publishTimeout)),
  queueGaugeInterval: positiveDuration("METRICS_QUEUE_INTERVAL").pipe(Config.withDefault(relayDefaults.queueGaugeInterval)),
  asyncCommit: flag("WORKER_ASYNC_COMMIT")
})
