import { describe, expect, test } from "bun:test"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Scope from "effect/Scope"
import * as KeyedQueue from "../../src/messaging/keyed.ts"

const run = <A, E>(effect: Effect.Effect<A, E, Scope.Scope>) => Effect.runPromise(Effect.scoped(effect))

/** A `process` that records each call, and waits for a gate when one is set for an item. */
const recorder = () => {
  const calls: Array<string> = []
  const gates = new Map<string, Deferred.Deferred<void>>()
  const entered = new Map<string, Deferred.Deferred<void>>()
  const gate = (item: string) => {
    const open = Deferred.makeUnsafe<void>()
    const started = Deferred.makeUnsafe<void>()
    gates.set(item, open)
    entered.set(item, started)
    return { open: Deferred.succeed(open, undefined), started: Deferred.await(started) }
  }
  const process = (key: string, items: ReadonlyArray<string>) =>
    Effect.gen(function*() {
      calls.push(`${key}:${items.join(",")}`)
      for (const item of items) {
        const started = entered.get(item)
        if (started) yield* Deferred.succeed(started, undefined)
        const open = gates.get(item)
        if (open) yield* Deferred.await(open)
      }
    })
  return { calls, gate, process }
}

/** Submits in this order, each queued before the next starts; returns the waiting fibers. */
const submitAll = <E>(queue: KeyedQueue.KeyedQueue<string, string, E>, items: ReadonlyArray<readonly [string, string]>) =>
  Effect.forEach(items, ([key, item]) => Effect.forkChild(queue.submit(key, item), { startImmediately: true }))

describe("keyed queue", () => {
  test("items of one key are processed in submission order, one batch at a time", () =>
    run(Effect.gen(function*() {
      const r = recorder()
      const queue = yield* KeyedQueue.make({ process: r.process })
      const a1 = r.gate("a1")
      const fibers = yield* submitAll(queue, [["a", "a1"], ["a", "a2"], ["a", "a3"], ["a", "a4"]])
      yield* a1.started
      // The worker is busy with a1: nothing else of key a may start meanwhile.
      expect(r.calls).toEqual(["a:a1"])
      yield* a1.open
      yield* Fiber.joinAll(fibers)
      expect(r.calls).toEqual(["a:a1", "a:a2", "a:a3", "a:a4"])
    })))

  test("keys are processed concurrently: a blocked key does not hold up another", () =>
    run(Effect.gen(function*() {
      const r = recorder()
      const queue = yield* KeyedQueue.make({ process: r.process })
      const a1 = r.gate("a1")
      const blocked = yield* Effect.forkChild(queue.submit("a", "a1"), { startImmediately: true })
      yield* a1.started
      yield* queue.submit("b", "b1")
      yield* queue.submit("b", "b2")
      expect(r.calls).toEqual(["a:a1", "b:b1", "b:b2"])
      expect(blocked.pollUnsafe()).toBeUndefined()
      yield* a1.open
      yield* Fiber.join(blocked)
    })))

  test("items that queued up while a batch ran are processed together, at most maxBatch at once", () =>
    run(Effect.gen(function*() {
      const r = recorder()
      const queue = yield* KeyedQueue.make({ process: r.process, maxBatch: 3 })
      const a1 = r.gate("a1")
      const first = yield* Effect.forkChild(queue.submit("a", "a1"), { startImmediately: true })
      yield* a1.started
      const rest = yield* submitAll(queue, [["a", "a2"], ["a", "a3"], ["a", "a4"], ["a", "a5"]])
      yield* a1.open
      yield* Fiber.joinAll([first, ...rest])
      expect(r.calls).toEqual(["a:a1", "a:a2,a3,a4", "a:a5"])
    })))

  test("a failing batch fails its own submissions only; the worker goes on", () =>
    run(Effect.gen(function*() {
      const seen: Array<string> = []
      const queue = yield* KeyedQueue.make({
        process: (_key: string, items: ReadonlyArray<string>) => {
          seen.push(...items)
          if (items.includes("bad")) return Effect.fail(`cannot store ${items.join(",")}`)
          if (items.includes("crash")) return Effect.die(new Error("bug"))
          return Effect.void
        }
      })
      const bad = yield* Effect.exit(queue.submit("a", "bad"))
      expect(bad).toEqual(Exit.fail("cannot store bad"))
      const crash = yield* Effect.exit(queue.submit("a", "crash"))
      expect(Exit.hasDies(crash)).toBe(true)
      yield* queue.submit("a", "good")
      expect(seen).toEqual(["bad", "crash", "good"])
    })))

  test("closing the scope drains: queued items are processed before it closes; later submits fail", async () => {
    const r = recorder()
    const a1 = r.gate("a1")
    const result = await Effect.runPromise(Effect.gen(function*() {
      const scope = yield* Scope.make()
      const queue = yield* KeyedQueue.make({ process: r.process }).pipe(Scope.provide(scope))
      yield* Effect.forkChild(queue.submit("a", "a1"), { startImmediately: true })
      yield* a1.started
      yield* submitAll(queue, [["a", "a2"], ["__proto__", "p1"], ["a", "a3"]])
      const closing = yield* Effect.forkChild(Scope.close(scope, Exit.void), { startImmediately: true })
      yield* Effect.yieldNow
      const closedEarly = closing.pollUnsafe() !== undefined
      yield* a1.open
      yield* Fiber.join(closing)
      const late = yield* Effect.flip(queue.submit("b", "b1"))
      return { closedEarly, late }
    }))
    expect(result.closedEarly).toBe(false)
    expect(r.calls.filter((c) => c.startsWith("a:"))).toEqual(["a:a1", "a:a2", "a:a3"])
    expect(r.calls).toContain("__proto__:p1")
    expect(result.late).toBeInstanceOf(KeyedQueue.KeyedQueueClosedError)
  })
})
