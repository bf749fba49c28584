/**
 * User ids are arbitrary strings chosen by producers; the ones that name Object.prototype members
 * (`__proto__` above all) must be counted and written like any other.
 */
import { describe, expect, test } from "bun:test"
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as NodePath from "@effect/platform-node/NodePath"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import { TestClock } from "effect/testing"
import { mkdtempSync, readFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as MemoryBrokerLayer from "../../layers/memory/broker.ts"
import { MemoryBroker } from "../../layers/memory/broker.ts"
import * as Pglite from "../../layers/pglite/sql.ts"
import { receivedHeaders } from "../../src/capabilities/Message.ts"
import { Publisher } from "../../src/capabilities/Publisher.ts"
import { Subscriber } from "../../src/capabilities/Subscriber.ts"
import { CounterStore } from "../../src/counter/CounterStore.ts"
import { type CounterConfig, runCounter } from "../../src/counter/counter.ts"
import { bindingPattern, routingKey, sortedByUser } from "../../src/counter/events.ts"
import { counterTestConfig } from "../support/counter.ts"

const hostileUsers = ["__proto__", "constructor", "toString", "hasOwnProperty", "valueOf", "user1"]

// Two created events per user, one updated; each with its own id.
const messages = hostileUsers.flatMap((user) => [
  { id: `${user}-c1`, key: routingKey(user, "created"), body: JSON.stringify({ id: `${user}-c1` }) },
  { id: `${user}-c2`, key: routingKey(user, "created"), body: JSON.stringify({ id: `${user}-c2` }) },
  { id: `${user}-u1`, key: routingKey(user, "updated"), body: JSON.stringify({ id: `${user}-u1` }) }
])

// Built from entries: an object literal `{ __proto__: 2 }` would set the prototype instead.
const expectedFile = (n: number) => Object.fromEntries(hostileUsers.map((user) => [user, n]))

const config = (outputDir: string): CounterConfig => counterTestConfig(outputDir)

/** Runs the counter over `messages` on the memory broker until idle; returns the output directory. */
const countWith = (store: Layer.Layer<CounterStore, unknown>) => {
  const dir = mkdtempSync(join(tmpdir(), "counter-keys-"))
  const layer = Layer.mergeAll(MemoryBrokerLayer.layer, store, NodeFileSystem.layer, NodePath.layer, TestClock.layer())
  return Effect.runPromise(Effect.scoped(Effect.gen(function*() {
    const cfg = config(dir)
    yield* Subscriber.use((s) => s.declare({ topic: cfg.exchange, group: cfg.queue, filter: bindingPattern }))
    yield* Publisher.use((p) => p.publish(cfg.exchange, messages))
    const fiber = yield* Effect.forkChild(runCounter(cfg))
    const broker = yield* MemoryBroker
    while ((yield* broker.depth(cfg.queue)) + (yield* broker.inFlight(cfg.queue)) > 0) yield* Effect.yieldNow
    yield* TestClock.adjust("5 seconds")
    yield* Fiber.join(fiber)
  })).pipe(Effect.provide(layer))).then(() => dir)
}

const readFile = (dir: string, type: string): Record<string, number> => JSON.parse(readFileSync(join(dir, `${type}.json`), "utf8"))

describe("user ids that name Object.prototype members", () => {
  test("the memory store counts them and created.json holds them with their counts", async () => {
    const dir = await countWith(CounterStore.memory)
    const created = readFile(dir, "created")
    expect(Object.hasOwn(created, "__proto__")).toBe(true)
    expect(created).toEqual(expectedFile(2))
    expect(readFile(dir, "updated")).toEqual(expectedFile(1))
  })

  test("the SQL store (PGlite) counts them and created.json holds them with their counts", async () => {
    const dir = await countWith(CounterStore.sql.pipe(Layer.provide(Pglite.layer())))
    const created = readFile(dir, "created")
    expect(Object.hasOwn(created, "__proto__")).toBe(true)
    expect(created).toEqual(expectedFile(2))
    expect(readFile(dir, "updated")).toEqual(expectedFile(1))
  })

  test("a snapshot has them as own keys, and sortedByUser keeps them", async () => {
    const snapshot = await Effect.runPromise(Effect.gen(function*() {
      const store = yield* CounterStore
      yield* store.record(hostileUsers.map((userId) => ({ id: `id-${userId}`, userId, type: "deleted" as const })))
      return yield* store.snapshot
    }).pipe(Effect.provide(CounterStore.memory)))
    expect(Object.keys(snapshot.deleted).sort()).toEqual([...hostileUsers].sort())
    const sorted = sortedByUser(snapshot.deleted)
    expect(Object.keys(sorted).sort()).toEqual([...hostileUsers].sort())
    expect(JSON.parse(JSON.stringify(sorted))).toEqual(expectedFile(1))
  })
})

describe("received header names", () => {
  test("a header named __proto__ is kept as a header, and nothing inherited is read as one", () => {
    // What a driver's decoder makes of a header table whose entry `__proto__` is itself a table:
    // a plain object whose prototype is that table, so `for...in` would list its keys too.
    const inherited = { "x-smuggled": "yes" }
    const raw = Object.create(inherited) as Record<string, string>
    Object.defineProperty(raw, "__proto__", { value: "kept", enumerable: true })
    raw["traceparent"] = "00-abc"
    const headers = receivedHeaders(raw, new Set(), (v) => v)
    expect(Object.keys(headers).sort()).toEqual(["__proto__", "traceparent"])
    expect(headers["__proto__"]).toBe("kept")
    expect(headers["x-smuggled"]).toBeUndefined()
  })
})
