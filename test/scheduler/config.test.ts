import { describe, expect, test } from "bun:test"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { load, providerFrom } from "../../src/runtime/config.ts"
import { jobDrainTimeout, schedulerConfig } from "../../src/scheduler/config.ts"

const read = (env: Record<string, string>) =>
  Effect.runPromise(Effect.result(load(schedulerConfig)).pipe(Effect.provideService(ConfigProvider.ConfigProvider, providerFrom([], env))))

const ok = async (env: Record<string, string>) => {
  const result = await read(env)
  if (result._tag !== "Success") throw new Error(`expected a config, got ${result.failure.message}`)
  return result.success
}

describe("scheduler config", () => {
  test("the original's defaults; UTC when TZ is unset, whatever the host's zone", async () => {
    const c = await ok({})
    expect(c.serviceName).toBe("scheduler")
    expect(c.maxConcurrent).toBe(10)
    expect([c.defaultTimeout, c.retention, c.shutdownTimeout, c.lease, c.sweepInterval].map(Duration.toMillis)).toEqual([
      300_000, 7 * 86_400_000, 30_000, 30_000, 5_000
    ])
    expect(c.timeZone).toBe("UTC")
    expect(c.instance).toBeUndefined()
  })

  test("the original's names and forms are read", async () => {
    const c = await ok({
      SERVICE_NAME_WORKER: "financial-worker",
      WORKER_DEFAULT_TIMEOUT_SECONDS: "120",
      WORKER_MAX_CONCURRENT_JOBS: "3",
      SCHEDULER_HISTORY_RETENTION: "1d12h",
      SHUTDOWN_TIMEOUT: "10s",
      TZ: "America/Sao_Paulo",
      SCHEDULER_INSTANCE_ID: "worker-2",
      SCHEDULER_LEASE: "1m",
      SCHEDULER_SWEEP_INTERVAL: "500ms"
    })
    expect(c.serviceName).toBe("financial-worker")
    expect(Duration.toMillis(c.defaultTimeout)).toBe(120_000)
    expect(c.maxConcurrent).toBe(3)
    expect(Duration.toMillis(c.retention)).toBe(36 * 3_600_000)
    expect(Duration.toMillis(c.shutdownTimeout)).toBe(10_000)
    expect(c.timeZone).toBe("America/Sao_Paulo")
    expect(c.instance).toBe("worker-2")
    expect(Duration.toMillis(c.lease)).toBe(60_000)
    expect(Duration.toMillis(c.sweepInterval)).toBe(500)
    expect(Duration.toMillis((await ok({ SCHEDULER_HISTORY_RETENTION: "7d" })).retention)).toBe(7 * 86_400_000)
    expect(Duration.toMillis((await ok({ SCHEDULER_HISTORY_RETENTION: "2 weeks" })).retention)).toBe(14 * 86_400_000)
    expect(Duration.toMillis((await ok({ WORKER_DEFAULT_TIMEOUT_SECONDS: "5m" })).defaultTimeout)).toBe(300_000)
    expect((await ok({ TZ: ":Europe/Berlin" })).timeZone).toBe("Europe/Berlin")
  })

  for (const [variable, value] of [
    ["WORKER_DEFAULT_TIMEOUT_SECONDS", "0"],
    ["WORKER_DEFAULT_TIMEOUT_SECONDS", "forever"],
    ["WORKER_MAX_CONCURRENT_JOBS", "0"],
    ["WORKER_MAX_CONCURRENT_JOBS", "ten"],
    ["SCHEDULER_HISTORY_RETENTION", "0d"],
    ["SCHEDULER_HISTORY_RETENTION", "a week"],
    ["SHUTDOWN_TIMEOUT", "-1s"],
    ["TZ", "Mars/Olympus_Mons"],
    ["TZ", "EST5EDT,M3.2.0,M11.1.0"],
    ["SERVICE_NAME_WORKER", "  "],
    ["SCHEDULER_INSTANCE_ID", "has space"],
    ["SCHEDULER_LEASE", "500ms"],
    ["SCHEDULER_SWEEP_INTERVAL", "0s"]
  ] as const) {
    test(`${variable}=${JSON.stringify(value)} is a ConfigError naming ${variable}`, async () => {
      const result = await read({ [variable]: value })
      expect(result._tag).toBe("Failure")
      if (result._tag === "Failure") expect(result.failure.message).toContain(variable)
    })
  }

  test("running jobs get SHUTDOWN_TIMEOUT less a tenth of it (1 s to 5 s) before they are interrupted", () => {
    expect(Duration.toMillis(jobDrainTimeout(Duration.seconds(30)))).toBe(27_000)
    expect(Duration.toMillis(jobDrainTimeout(Duration.seconds(5)))).toBe(4_000)
    expect(Duration.toMillis(jobDrainTimeout(Duration.minutes(10)))).toBe(595_000)
    expect(Duration.toMillis(jobDrainTimeout(Duration.millis(500)))).toBe(0)
  })
})
