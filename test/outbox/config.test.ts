import { describe, expect, test } from "bun:test"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { relayConfig } from "../../src/outbox/config.ts"
import { retryPolicy } from "../../src/outbox/relay.ts"
import { load, providerFrom } from "../../src/runtime/config.ts"

const read = (env: Record<string, string>) =>
  Effect.runPromise(Effect.result(load(relayConfig)).pipe(Effect.provideService(ConfigProvider.ConfigProvider, providerFrom([], env))))

describe("outbox relay config", () => {
  test("the original's defaults", async () => {
    const result = await read({})
    if (result._tag !== "Success") throw new Error("expected defaults")
    const c = result.success
    expect([c.poolSize, c.batchSize, c.maxRetries, c.topic, c.multiplier, c.failureThreshold, c.successThreshold]).toEqual([3, 10, 3, "txstream.events", 2, 5, 3])
    expect([c.pollInterval, c.baseDelay, c.maxDelay, c.resetTimeout, c.publishTimeout].map(Duration.toMillis)).toEqual([5000, 1000, 30000, 30000, 10000])
    expect([c.exponentialRetry, c.circuitBreaker, c.asyncCommit]).toEqual([true, true, true])
  })

  test("the original's names are read; booleans false turn the breaker and the exponential retry off", async () => {
    const result = await read({
      WORKER_POOL_SIZE: "7", WORKER_BATCH_SIZE: "50", WORKER_INTERVAL: "250ms", WORKER_MAX_RETRIES: "0",
      KAFKA_TOPIC_EVENTS: "t", KAFKA_BASE_DELAY: "2s", KAFKA_MULTIPLIER: "1.5",
      KAFKA_CIRCUIT_BREAKER_ENABLED: "false", KAFKA_EXPONENTIAL_RETRY_ENABLED: "FALSE", WORKER_RETRY_DELAY: "750ms",
      WORKER_ASYNC_COMMIT: "0"
    })
    if (result._tag !== "Success") throw new Error("expected a config")
    const c = result.success
    expect([c.poolSize, c.batchSize, Duration.toMillis(c.pollInterval), c.maxRetries, c.topic, c.multiplier]).toEqual([7, 50, 250, 0, "t", 1.5])
    expect([c.circuitBreaker, c.exponentialRetry, c.asyncCommit]).toEqual([false, false, false])
    // fixed waits of WORKER_RETRY_DELAY, unjittered
    expect(retryPolicy(c)).toMatchObject({ factor: 1, jitter: 0, maxAttempts: 1 })
    expect([retryPolicy(c).base, retryPolicy(c).max].map((d) => Duration.toMillis(Duration.fromInputUnsafe(d)))).toEqual([750, 750])
  })

  for (const [variable, value] of [
    ["WORKER_POOL_SIZE", "0"],
    ["WORKER_BATCH_SIZE", "ten"],
    ["WORKER_INTERVAL", "0s"],
    ["KAFKA_MULTIPLIER", "0.5"],
    ["KAFKA_RESET_TIMEOUT", "soon"],
    ["KAFKA_CIRCUIT_BREAKER_ENABLED", "maybe"],
    ["WORKER_RETRY_DELAY", "0s"]
  ] as const) {
    test(`${variable}=${value} is a ConfigError naming ${variable}`, async () => {
      const result = await read({ [variable]: value })
      expect(result._tag).toBe("Failure")
      if (result._tag === "Failure") expect(result.failure.message).toContain(variable)
    })
  }
})
