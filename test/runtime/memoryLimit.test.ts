import { describe, expect, test } from "bun:test"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as Metric from "effect/Metric"
import { TestClock } from "effect/testing"
import * as ConfigProvider from "effect/ConfigProvider"
import { containerMemoryLimit, MemoryLimitConfig, resolveMemoryLimit } from "../../layers/platform/memoryLimit.ts"
import { load, parseBytes } from "../../src/runtime/config.ts"
import { enforceMemoryLimit } from "../../src/runtime/memoryLimit.ts"

const MiB = 2 ** 20

/**
 * A process whose resident size the test sets, and whose collector brings it to `afterCollect`
 * (or leaves it, when that is undefined). Collections are recorded with the test clock's time.
 */
const simulated = () => {
  const state = { rss: 50 * MiB, afterCollect: undefined as number | undefined, collectedAt: [] as Array<number> }
  return {
    state,
    options: {
      limit: 90 * MiB,
      residentBytes: Effect.sync(() => state.rss),
      collect: Effect.flatMap(Clock.currentTimeMillis, (now) =>
        Effect.sync(() => {
          state.collectedAt.push(now)
          if (state.afterCollect !== undefined) state.rss = state.afterCollect
        }))
    }
  }
}

const warnings: Array<string> = []
const capture = Logger.make((options) => {
  if (options.logLevel === "Warn") warnings.push(String(options.message))
})

const run = <A>(effect: Effect.Effect<A>) =>
  Effect.runPromise(effect.pipe(
    Effect.provideService(Metric.MetricRegistry, new Map()),
    Effect.provide(Layer.mergeAll(TestClock.layer(), Logger.layer([capture])))
  ))

describe("soft memory limit", () => {
  test("under the limit nothing is collected", () =>
    run(Effect.gen(function*() {
      const { state, options } = simulated()
      const fiber = yield* Effect.forkChild(enforceMemoryLimit(options))
      yield* TestClock.adjust("1 minute")
      expect(state.collectedAt).toEqual([])
      yield* Fiber.interrupt(fiber)
    })))

  test("over the limit a collection runs at the next check, and again whenever memory climbs back", () =>
    run(Effect.gen(function*() {
      const { state, options } = simulated()
      state.rss = 95 * MiB
      state.afterCollect = 70 * MiB
      const fiber = yield* Effect.forkChild(enforceMemoryLimit(options))
      yield* TestClock.adjust("1 second")
      expect(state.collectedAt).toEqual([100])
      state.rss = 92 * MiB
      yield* TestClock.adjust("100 millis")
      expect(state.collectedAt).toEqual([100, 1100])

      // The gauge and the counter tell an operator what the limit is doing (their Prometheus
      // names are checked on the exporter's output in test/layers/telemetry.test.ts).
      const snapshots = yield* Metric.snapshot
      const metric = (id: string) => snapshots.find((s) => s.id === id)?.state
      expect(metric("memory_limit_collections")).toMatchObject({ count: 2, incremental: true })
      expect(metric("process_resident_memory_bytes")).toMatchObject({ value: 70 * MiB })
      yield* Fiber.interrupt(fiber)
    })))

  test("when collecting does not get under the limit, collections back off to the cap and warn once", () =>
    run(Effect.gen(function*() {
      warnings.length = 0
      const { state, options } = simulated()
      state.rss = 120 * MiB // live data larger than the limit: collecting never helps
      const fiber = yield* Effect.forkChild(enforceMemoryLimit({ ...options, maxBackoff: "1 second" }))
      yield* TestClock.adjust("5 seconds")
      // Waits of 100 ms plus a backoff doubling from 100 ms, capped at 1 s.
      expect(state.collectedAt).toEqual([100, 300, 600, 1100, 2000, 3100, 4200])
      expect(warnings).toHaveLength(1)
      expect(warnings[0]).toContain("MEMORY_LIMIT")

      // Back under the limit, the backoff is forgotten: the next excess is collected at once.
      state.rss = 60 * MiB
      yield* TestClock.adjust("1100 millis")
      const before = state.collectedAt.length
      state.rss = 100 * MiB
      state.afterCollect = 80 * MiB
      yield* TestClock.adjust("100 millis")
      expect(state.collectedAt.length).toBe(before + 1)
      yield* Fiber.interrupt(fiber)
    })))
})

describe("byte sizes in config", () => {
  test("units as containers write them, and plain bytes", () => {
    expect(parseBytes("90MiB")).toBe(90 * MiB)
    expect(parseBytes("96MB")).toBe(96_000_000)
    expect(parseBytes("1.5GiB")).toBe(1.5 * 2 ** 30)
    expect(parseBytes("512m")).toBe(512 * MiB)
    expect(parseBytes(" 1048576 ")).toBe(MiB)
    for (const bad of ["", "MiB", "12 parsecs", "-5MB", "1e6"]) expect(parseBytes(bad)).toBeUndefined()
  })

  test("MEMORY_LIMIT: unset means auto, off or 0 no limit, a size that many bytes; a bad value names the variable", async () => {
    const read = (env: Record<string, string>) =>
      Effect.runPromise(Effect.result(load(MemoryLimitConfig)).pipe(
        Effect.provideService(ConfigProvider.ConfigProvider, ConfigProvider.fromEnvRecord(env))
      ))
    expect(await read({})).toMatchObject({ _tag: "Success", success: "auto" })
    expect(await read({ MEMORY_LIMIT: "off" })).toMatchObject({ _tag: "Success", success: "off" })
    expect(await read({ MEMORY_LIMIT: "0" })).toMatchObject({ _tag: "Success", success: "off" })
    expect(await read({ MEMORY_LIMIT: "90MiB" })).toMatchObject({ _tag: "Success", success: 90 * MiB })
    const bad = await read({ MEMORY_LIMIT: "lots" })
    expect(bad._tag).toBe("Failure")
    if (bad._tag === "Failure") expect(bad.failure.message).toContain("MEMORY_LIMIT: expected a size such as 96MiB")
  })

  test("auto: 90% of the container's limit from cgroup v2 or v1, none when there is no real limit", () => {
    const GiB = 2 ** 30
    const files = (contents: Record<string, string>) => (path: string) => contents[path]
    const v2 = "/sys/fs/cgroup/memory.max"
    const v1 = "/sys/fs/cgroup/memory/memory.limit_in_bytes"
    expect(containerMemoryLimit(files({ [v2]: "201326592\n" }), 24 * GiB)).toBe(192 * MiB)
    expect(containerMemoryLimit(files({ [v2]: "max\n" }), 24 * GiB)).toBeUndefined()
    expect(containerMemoryLimit(files({ [v1]: "536870912\n" }), 24 * GiB)).toBe(512 * MiB)
    expect(containerMemoryLimit(files({ [v1]: "9223372036854771712\n" }), 24 * GiB)).toBeUndefined()
    expect(containerMemoryLimit(files({}), 24 * GiB)).toBeUndefined()
    // A "limit" above the machine's memory limits nothing.
    expect(containerMemoryLimit(files({ [v2]: String(32 * GiB) }), 24 * GiB)).toBeUndefined()

    expect(resolveMemoryLimit("auto", () => 200 * MiB)).toEqual({ bytes: 180 * MiB, source: "90% of the container's 200 MiB" })
    expect(resolveMemoryLimit("auto", () => undefined)).toBeUndefined()
    expect(resolveMemoryLimit("off", () => 200 * MiB)).toBeUndefined()
    expect(resolveMemoryLimit(64 * MiB, () => 200 * MiB)).toEqual({ bytes: 64 * MiB, source: "MEMORY_LIMIT" })
  })
})
