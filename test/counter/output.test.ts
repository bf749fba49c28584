/**
 * The counter's files under faults: an output directory that cannot be written (at start, at the
 * end), and a run stopped before the queue was idle, then run again in the same directory.
 */
import { describe, expect, test } from "bun:test"
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as NodePath from "@effect/platform-node/NodePath"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as Result from "effect/Result"
import { TestClock } from "effect/testing"
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as MemoryBrokerLayer from "../../layers/memory/broker.ts"
import { MemoryBroker } from "../../layers/memory/broker.ts"
import { Publisher } from "../../src/capabilities/Publisher.ts"
import { Subscriber } from "../../src/capabilities/Subscriber.ts"
import { CounterStore } from "../../src/counter/CounterStore.ts"
import { type CounterConfig, runCounter } from "../../src/counter/counter.ts"
import { bindingPattern, type Counts, eventTypes, totals } from "../../src/counter/events.ts"
import { generate } from "../../src/counter/generator.ts"
import { ConfigError } from "../../src/runtime/config.ts"
import { counterTestConfig, readCounts } from "../support/counter.ts"

const config = (outputDir: string): CounterConfig => counterTestConfig(outputDir, { prefetch: 10 })

const logged: Array<{ readonly message: string; readonly level: string }> = []
const captureLogs = Logger.layer([Logger.make((options) => {
  logged.push({ message: String(Array.isArray(options.message) ? options.message[0] : options.message), level: options.logLevel })
})])

/** One broker for the whole test, so a second run finds what the first left queued. */
const layer = Layer.mergeAll(MemoryBrokerLayer.layer, NodeFileSystem.layer, NodePath.layer, TestClock.layer(), captureLogs)
/** Each run gets a store of its own, as a restarted process would. */
const withFreshStore = <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.provide(effect, CounterStore.memory)

const readStatus = (dir: string) => JSON.parse(readFileSync(join(dir, "counter-status.json"), "utf8"))
const sum = (counts: Counts) => Object.values(totals(counts)).reduce((a, b) => a + b, 0)

const setUp = (cfg: CounterConfig, messages: ReturnType<typeof generate>["messages"]) =>
  Effect.gen(function*() {
    yield* Subscriber.use((s) => s.declare({ topic: cfg.exchange, group: cfg.queue, filter: bindingPattern }))
    yield* Publisher.use((p) => p.publish(cfg.exchange, messages))
  })

/** Lets the counter's fibers (and its file system calls) run until the broker has nothing left for it. */
const settled = (queue: string) =>
  Effect.gen(function*() {
    const broker = yield* MemoryBroker
    while ((yield* broker.depth(queue)) + (yield* broker.inFlight(queue)) > 0) yield* Effect.yieldNow
  })

/** Runs the counter until `depth` messages are left, then interrupts it, as SIGTERM does. */
const runUntilInterrupted = (cfg: CounterConfig, depth: number) =>
  Effect.gen(function*() {
    const fiber = yield* Effect.forkChild(withFreshStore(runCounter(cfg)))
    const broker = yield* MemoryBroker
    while ((yield* broker.depth(cfg.queue)) > depth) yield* Effect.yieldNow
    yield* Fiber.interrupt(fiber)
    return yield* Fiber.await(fiber)
  })

/** Runs the counter until the queue stayed idle for its timeout. */
const runUntilIdle = (cfg: CounterConfig) =>
  Effect.gen(function*() {
    const fiber = yield* Effect.forkChild(withFreshStore(runCounter(cfg)))
    yield* settled(cfg.queue)
    yield* TestClock.adjust(cfg.idleTimeout)
    return yield* Fiber.await(fiber)
  })

const failureOf = <A, E>(exit: Exit.Exit<A, E>) => (Exit.isFailure(exit) ? Cause.findError(exit.cause) : undefined)

describe("event counter output", () => {
  test("an OUTPUT_DIR that is not a writable directory stops it before it takes a message", async () => {
    const file = join(mkdtempSync(join(tmpdir(), "counter-")), "a-file")
    writeFileSync(file, "")
    const run = generate({ count: 50, duplicateRatio: 0, seed: 1 })
    const result = await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const cfg = config(join(file, "out"))
      yield* setUp(cfg, run.messages)
      const exit = yield* Effect.exit(withFreshStore(runCounter(cfg)))
      return { exit, depth: yield* MemoryBroker.use((b) => b.depth(cfg.queue)) }
    })).pipe(Effect.provide(layer)))
    const error = failureOf(result.exit)
    expect(error !== undefined && Result.isSuccess(error) && error.success instanceof ConfigError).toBe(true)
    if (error !== undefined && Result.isSuccess(error) && error.success instanceof ConfigError) {
      expect(error.success.variable).toBe("OUTPUT_DIR")
      expect(error.success.message).toContain(join(file, "out"))
    }
    expect(result.depth).toBe(50)
  })

  test("counts that cannot be written at the end are saved in a directory the log names, and the run fails", async () => {
    const dir = join(mkdtempSync(join(tmpdir(), "counter-")), "out")
    const run = generate({ count: 200, users: 4, duplicateRatio: 0.1, seed: 2 })
    logged.length = 0
    const exit = await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const cfg = config(dir)
      yield* setUp(cfg, run.messages)
      const fiber = yield* Effect.forkChild(withFreshStore(runCounter(cfg)))
      yield* settled(cfg.queue)
      // The directory goes away under the running counter (a volume unmounted, a cleanup script).
      rmSync(dir, { recursive: true })
      writeFileSync(dir, "")
      yield* TestClock.adjust(cfg.idleTimeout)
      return yield* Fiber.await(fiber)
    })).pipe(Effect.provide(layer)))
    const error = failureOf(exit)
    const failure = error !== undefined && Result.isSuccess(error) ? error.success as { _tag?: string; savedIn?: string } : undefined
    expect(failure?._tag).toBe("CounterOutputError")
    const line = logged.find((l) => l.message.startsWith(`writing the counts to ${dir} failed; they are saved in `))
    expect(line?.level).toBe("Error")
    expect(line?.message.endsWith(failure?.savedIn ?? "?")).toBe(true)
    expect(readCounts(failure!.savedIn!)).toEqual(run.expected)
    expect(readStatus(failure!.savedIn!)).toMatchObject({ complete: true, stoppedBy: "idle", runs: 1 })
  })

  test("an interrupted run whose counts cannot be written fails rather than ending as a clean stop", async () => {
    const dir = join(mkdtempSync(join(tmpdir(), "counter-")), "out")
    const run = generate({ count: 300, duplicateRatio: 0, seed: 3 })
    const exit = await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const cfg = config(dir)
      yield* setUp(cfg, run.messages)
      const fiber = yield* Effect.forkChild(withFreshStore(runCounter(cfg)))
      const broker = yield* MemoryBroker
      while ((yield* broker.depth(cfg.queue)) > 200) yield* Effect.yieldNow
      rmSync(dir, { recursive: true })
      writeFileSync(dir, "")
      yield* Fiber.interrupt(fiber)
      return yield* Fiber.await(fiber)
    })).pipe(Effect.provide(layer)))
    // What the program runner reads: interruption alone would exit 0.
    expect(Exit.isFailure(exit) && Cause.hasInterruptsOnly(exit.cause)).toBe(false)
    const error = failureOf(exit)
    const failure = error !== undefined && Result.isSuccess(error) ? error.success as { savedIn?: string } : undefined
    const saved = readCounts(failure!.savedIn!)
    expect(sum(saved)).toBeGreaterThanOrEqual(90)
    expect(readStatus(failure!.savedIn!)).toMatchObject({ complete: false, stoppedBy: "signal" })
  })

  test("a run interrupted mid-queue and the next one in the same directory count exactly; files say partial, then complete", async () => {
    const dir = mkdtempSync(join(tmpdir(), "counter-"))
    const run = generate({ count: 400, users: 6, duplicateRatio: 0, seed: 4 })
    logged.length = 0
    const result = await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const cfg = config(dir)
      yield* setUp(cfg, run.messages)
      const first = yield* runUntilInterrupted(cfg, 250)
      const afterFirst = { counts: readCounts(dir), status: readStatus(dir), line: logged.findLast((l) => l.message.startsWith("counts written"))?.message }
      const second = yield* runUntilIdle(cfg)
      return { first, second, afterFirst }
    })).pipe(Effect.provide(layer)))
    // The first run was stopped: a clean stop, but its files say they are partial.
    expect(Exit.isFailure(result.first) && Cause.hasInterruptsOnly(result.first.cause)).toBe(true)
    expect(result.afterFirst.status).toMatchObject({ complete: false, stoppedBy: "signal", runs: 1 })
    expect(result.afterFirst.line).toContain("partial")
    const firstCounted = sum(result.afterFirst.counts)
    expect(firstCounted).toBeGreaterThanOrEqual(100)
    expect(firstCounted).toBeLessThan(400)
    expect(result.afterFirst.status.totals).toEqual(totals(result.afterFirst.counts))
    // The second added to them: together, every message counted once.
    expect(Exit.isSuccess(result.second)).toBe(true)
    expect(readCounts(dir)).toEqual(run.expected)
    expect(readStatus(dir)).toMatchObject({ complete: true, stoppedBy: "idle", runs: 2, totals: totals(run.expected) })
    expect(logged.some((l) => l.message === "resuming from the partial counts of an earlier run")).toBe(true)
    expect(logged.at(-1)?.message).toBe("counts written")
  })

  test("a complete run's files are replaced by the next run's, as the original program did", async () => {
    const dir = mkdtempSync(join(tmpdir(), "counter-"))
    const result = await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const cfg = config(dir)
      yield* setUp(cfg, generate({ count: 30, duplicateRatio: 0, seed: 5 }).messages)
      yield* runUntilIdle(cfg)
      const second = generate({ count: 20, duplicateRatio: 0, seed: 6 })
      yield* Publisher.use((p) => p.publish(cfg.exchange, second.messages))
      yield* runUntilIdle(cfg)
      return second
    })).pipe(Effect.provide(layer)))
    expect(readCounts(dir)).toEqual(result.expected)
    expect(readStatus(dir)).toMatchObject({ complete: true, runs: 1 })
  })

  test("partial counts keep a user named __proto__", async () => {
    const dir = mkdtempSync(join(tmpdir(), "counter-"))
    writeFileSync(join(dir, "created.json"), `{ "__proto__": 2, "u1": 1 }`)
    writeFileSync(join(dir, "updated.json"), "{}")
    writeFileSync(join(dir, "deleted.json"), "{}")
    writeFileSync(join(dir, "counter-status.json"), JSON.stringify({
      complete: false, stoppedBy: "signal", runs: 1, exchange: "eventcounter", queue: "eventcountertest"
    }))
    await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const cfg = config(dir)
      yield* setUp(cfg, [{ key: "u1.event.created", body: JSON.stringify({ id: "x" }) }])
      yield* runUntilIdle(cfg)
    })).pipe(Effect.provide(layer)))
    const created = JSON.parse(readFileSync(join(dir, "created.json"), "utf8"))
    expect(Object.entries(created).sort()).toEqual([["__proto__", 2], ["u1", 2]])
  })

  test("partial counts of another queue are not overwritten: the run refuses to start and says why", async () => {
    const dir = mkdtempSync(join(tmpdir(), "counter-"))
    for (const type of eventTypes) writeFileSync(join(dir, `${type}.json`), `{ "u1": 3 }`)
    const status = JSON.stringify({ complete: false, stoppedBy: "signal", runs: 1, exchange: "eventcounter", queue: "other" })
    writeFileSync(join(dir, "counter-status.json"), status)
    const exit = await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const cfg = config(dir)
      yield* setUp(cfg, generate({ count: 10, seed: 7 }).messages)
      return yield* Effect.exit(withFreshStore(runCounter(cfg)))
    })).pipe(Effect.provide(layer)))
    const error = failureOf(exit)
    const message = error !== undefined && Result.isSuccess(error) ? (error.success as Error).message : ""
    expect(message).toContain("OUTPUT_DIR")
    expect(message).toContain(`partial counts of queue "other"`)
    expect(readFileSync(join(dir, "created.json"), "utf8")).toBe(`{ "u1": 3 }`)
    expect(readFileSync(join(dir, "counter-status.json"), "utf8")).toBe(status)
  })
})
