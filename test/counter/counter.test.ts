import { describe, expect, test } from "bun:test"
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as NodePath from "@effect/platform-node/NodePath"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as References from "effect/References"
import { TestClock } from "effect/testing"
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as MemoryBrokerLayer from "../../layers/memory/broker.ts"
import { bodyText, Headers } from "../../src/capabilities/Message.ts"
import { Publisher } from "../../src/capabilities/Publisher.ts"
import { deadLetterTopic, Subscriber } from "../../src/capabilities/Subscriber.ts"
import { CounterStore, CounterStoreError } from "../../src/counter/CounterStore.ts"
import { type CounterConfig, runCounter } from "../../src/counter/counter.ts"
import { bindingPattern, type Counts, totals } from "../../src/counter/events.ts"
import { generate } from "../../src/counter/generator.ts"
import { MemoryBroker } from "../../layers/memory/broker.ts"
import { counterTestConfig, readCounts } from "../support/counter.ts"

const config = (outputDir: string): CounterConfig => counterTestConfig(outputDir)

/** Log messages with the test clock's time they were written at; reset by the tests that read it. */
const logged: Array<{ readonly at: number; readonly message: string; readonly annotations: Record<string, unknown> }> = []
const captureLogs = Logger.layer([Logger.make((options) => {
  logged.push({
    at: options.date.getTime(),
    message: String(Array.isArray(options.message) ? options.message[0] : options.message),
    annotations: { ...options.fiber.getRef(References.CurrentLogAnnotations) }
  })
})])
/**
 * Lets the counter check its output directory (real file system calls, no clock) until it starts
 * consuming: a test that moves the clock before then would move it under no timer at all.
 */
const started = Effect.gen(function*() {
  while (!logged.some((line) => line.message === "counting events")) yield* Effect.yieldNow
})
/** When the counter decided it was idle; the fiber itself ends later, after writing its files. */
const stoppedIdleAt = () => logged.find((line) => line.message.startsWith("no message for"))?.at

const layer = Layer.mergeAll(MemoryBrokerLayer.layer, CounterStore.memory, NodeFileSystem.layer, NodePath.layer, TestClock.layer(), captureLogs)


/** Lets the counter's fibers run until the broker has nothing left for it; no clock moves. */
const settled = (queue: string) =>
  Effect.gen(function*() {
    const broker = yield* MemoryBroker
    while ((yield* broker.depth(queue)) + (yield* broker.inFlight(queue)) > 0) yield* Effect.yieldNow
  })

describe("event counter", () => {
  test("counts each unique event once per user and type, dead-letters malformed ones with the reason", async () => {
    const dir = mkdtempSync(join(tmpdir(), "counter-"))
    const run = generate({ count: 2000, users: 7, duplicateRatio: 0.2, malformed: 25, seed: 7 })
    expect(run.duplicates).toBeGreaterThan(100)

    const dead = await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const cfg = config(dir)
      const subscriber = yield* Subscriber
      yield* subscriber.declare({ topic: cfg.exchange, group: cfg.queue, filter: bindingPattern })
      yield* Publisher.use((p) => p.publish(cfg.exchange, run.messages))
      const fiber = yield* Effect.forkChild(runCounter(cfg))
      yield* settled(cfg.queue)
      yield* TestClock.adjust("5 seconds")
      yield* Fiber.join(fiber)
      const dlq = yield* subscriber.subscribe({ topic: deadLetterTopic(cfg.queue), group: deadLetterTopic(cfg.queue) })
      return yield* Effect.forEach(Array.from({ length: run.malformed }), () => dlq.take)
    })).pipe(Effect.provide(layer)))

    expect(readCounts(dir)).toEqual(run.expected)
    const reasons = dead.map((d) => d.message.headers[Headers.deadLetterReason] ?? "")
    expect(reasons.filter((r) => r.includes("does not have the form")).length).toBe(5)
    expect(reasons.filter((r) => r === "body is not valid JSON").length).toBe(5)
    expect(reasons.filter((r) => r.includes(`no "id"`)).length).toBe(5)
    expect(reasons.filter((r) => r.includes(`unknown event type "archived"`)).length).toBe(5)
    expect(reasons.filter((r) => r.includes("over the limit")).length).toBe(5)
    expect(bodyText(dead.find((d) => d.message.headers[Headers.deadLetterReason] === "body is not valid JSON")!.message)).toBe("{not json")
  })

  test("a store that fails for a while holds the counter back, and nothing is lost or dead-lettered", async () => {
    const dir = mkdtempSync(join(tmpdir(), "counter-"))
    const run = generate({ count: 400, duplicateRatio: 0.1, seed: 9 })
    let failures = 0
    const flaky = Layer.effect(CounterStore, Effect.gen(function*() {
      const real = yield* CounterStore
      return CounterStore.of({
        ...real,
        record: (events) =>
          Effect.suspend(() =>
            failures++ < 4 ? Effect.fail(new CounterStoreError({ operation: "record", cause: "database is down" })) : real.record(events)
          )
      })
    })).pipe(Layer.provide(CounterStore.memory))
    const dead = await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const cfg = config(dir)
      yield* Subscriber.use((s) => s.declare({ topic: cfg.exchange, group: cfg.queue, filter: bindingPattern }))
      yield* Publisher.use((p) => p.publish(cfg.exchange, run.messages))
      const fiber = yield* Effect.forkChild(runCounter(cfg))
      const broker = yield* MemoryBroker
      while ((yield* broker.depth(cfg.queue)) + (yield* broker.inFlight(cfg.queue)) > 0) {
        yield* TestClock.adjust("1 second")
        yield* Effect.yieldNow
      }
      yield* TestClock.adjust("5 seconds")
      yield* Fiber.join(fiber)
      return yield* broker.depth(deadLetterTopic(cfg.queue))
    })).pipe(Effect.provide(Layer.mergeAll(MemoryBrokerLayer.layer, flaky, NodeFileSystem.layer, NodePath.layer, TestClock.layer()))))
    expect(failures).toBeGreaterThan(4)
    expect(dead).toBe(0)
    expect(readCounts(dir)).toEqual(run.expected)
  })

  test("stops only after the idle timeout has passed since the last message", async () => {
    const dir = mkdtempSync(join(tmpdir(), "counter-"))
    logged.length = 0
    const result = await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const cfg = config(dir)
      yield* Subscriber.use((s) => s.declare({ topic: cfg.exchange, group: cfg.queue, filter: bindingPattern }))
      const publish = (id: string) =>
        Publisher.use((p) => p.publish(cfg.exchange, [{ key: "u1.event.created", body: JSON.stringify({ id }) }]))
      const fiber = yield* Effect.forkChild(runCounter(cfg))
      yield* publish("a")
      yield* settled(cfg.queue)
      yield* TestClock.adjust("4 seconds")
      const early = fiber.pollUnsafe()
      yield* publish("b")
      yield* settled(cfg.queue)
      yield* TestClock.adjust("4 seconds")
      const stillRunning = fiber.pollUnsafe()
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(fiber)
      return { early, stillRunning }
    })).pipe(Effect.provide(layer)))
    expect(result.early).toBeUndefined()
    expect(result.stillRunning).toBeUndefined()
    // Five seconds after the second message, handled at 4 s.
    expect(stoppedIdleAt()).toBe(9_000)
    // The summary the benchmark reads: two messages, from the first (0 s) to the last (4 s).
    expect(logged.find((line) => line.message === "counter finished")?.annotations).toEqual({ messages: 2, seconds: 4, perSecond: 1 })
    expect(readCounts(dir).created).toEqual({ u1: 2 })
  })

  test("time while the broker is unreachable does not count towards the idle timeout", async () => {
    const dir = mkdtempSync(join(tmpdir(), "counter-"))
    let reachable = false
    logged.length = 0
    const result = await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const cfg = config(dir)
      const subscriber = yield* Subscriber
      yield* subscriber.declare({ topic: cfg.exchange, group: cfg.queue, filter: bindingPattern })
      const fiber = yield* Effect.forkChild(runCounter(cfg).pipe(
        Effect.provideService(Subscriber, Subscriber.of({ ...subscriber, healthy: Effect.sync(() => reachable) }))
      ))
      yield* started
      yield* TestClock.adjust("1 minute")
      const duringOutage = fiber.pollUnsafe()
      reachable = true
      // Back at 60 s: the idle count starts over, so at 64 s it is still waiting for messages.
      yield* TestClock.adjust("4 seconds")
      const soonAfter = fiber.pollUnsafe()
      yield* TestClock.adjust("2 seconds")
      yield* Fiber.join(fiber)
      return { duringOutage, soonAfter }
    })).pipe(Effect.provide(layer)))
    expect(result.duringOutage).toBeUndefined()
    expect(result.soonAfter).toBeUndefined()
    // The broker came back at 60 s (seen at the next look, within a second): five seconds from there.
    expect(stoppedIdleAt()).toBeGreaterThanOrEqual(65_000)
    expect(stoppedIdleAt()).toBeLessThanOrEqual(66_000)
    expect(readCounts(dir).created).toEqual({})
  })

  test("an interrupted counter finishes in-flight work, writes its files and leaves the rest queued", async () => {
    const dir = mkdtempSync(join(tmpdir(), "counter-"))
    const run = generate({ count: 300, duplicateRatio: 0, seed: 3 })
    const left = await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const cfg = { ...config(dir), prefetch: 10 }
      yield* Subscriber.use((s) => s.declare({ topic: cfg.exchange, group: cfg.queue, filter: bindingPattern }))
      yield* Publisher.use((p) => p.publish(cfg.exchange, run.messages))
      const fiber = yield* Effect.forkChild(runCounter(cfg))
      const broker = yield* MemoryBroker
      while ((yield* broker.depth(cfg.queue)) > 200) yield* Effect.yieldNow
      yield* Fiber.interrupt(fiber)
      return { depth: yield* broker.depth(cfg.queue), inFlight: yield* broker.inFlight(cfg.queue) }
    })).pipe(Effect.provide(layer)))
    const written = readCounts(dir)
    const total = Object.values(totals(written as Counts)).reduce((a, b) => a + b, 0)
    expect(left.inFlight).toBe(0)
    expect(total).toBeGreaterThanOrEqual(90)
    expect(total + left.depth).toBe(300)
  })
})

