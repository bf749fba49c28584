import { expect, test } from "bun:test"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import { TestClock } from "effect/testing"
import { bodyText } from "../../src/capabilities/Message.ts"
import { maxDeliveryCountExceeded, SessionQueue } from "../../src/capabilities/SessionQueue.ts"
import * as MemorySessionQueue from "../../layers/memory/sessionQueue.ts"
import { sessionQueueContract } from "../contract/sessionQueue.ts"

sessionQueueContract("memory", () => MemorySessionQueue.layer({ maxDeliveryCount: 3 }), {
  maxDeliveryCount: 3,
  loseLock: (queue, sessionId) => MemorySessionQueue.MemorySessionQueue.use((q) => q.expireLock(queue, sessionId))
})

// Time-driven behaviour, on TestClock: the lock duration and waits run on Effect's Clock.
const onTestClock = <A, E>(effect: Effect.Effect<A, E, SessionQueue | MemorySessionQueue.MemorySessionQueue | Scope.Scope>) =>
  Effect.runPromise(
    Effect.scoped(effect).pipe(
      Effect.provide(MemorySessionQueue.layer({ lockDuration: "30 seconds", maxDeliveryCount: 2 })),
      Effect.provide(TestClock.layer())
    )
  )

test("memory: a lock ends after the lock duration unless renewed; its messages go to the next acceptor and may dead-letter", () =>
  onTestClock(Effect.gen(function*() {
    const q = yield* SessionQueue
    yield* q.send("q", [{ key: "s", body: "1" }])
    const first = yield* q.accept("q", "s")
    expect(yield* first.lockedUntil).toBe(30_000)
    const [m] = yield* first.receive(1, "0 millis")
    yield* TestClock.adjust("20 seconds")
    expect(yield* first.renewLock).toBe(50_000)
    yield* TestClock.adjust("29 seconds")
    expect(yield* first.getState).toEqual(Option.none())
    yield* TestClock.adjust("1 second")
    expect((yield* Effect.flip(first.complete(m!)))._tag).toBe("SessionLockLostError")
    const second = Option.getOrThrow(yield* q.acceptNext("q", { timeout: "0 millis" }))
    const [again] = yield* second.receive(1, "0 millis")
    expect(again!.attempt).toBe(2)
    // The second expiry is the message's second delivery coming back: max count 2, so dead-lettered.
    yield* TestClock.adjust("30 seconds")
    expect(yield* q.depth("q")).toEqual({ active: 0, deadLettered: 1 })
    expect((yield* q.deadLettered("q", 1)).map((d) => d.reason)).toEqual([maxDeliveryCountExceeded])
  })))

test("memory: accept-next waits its timeout, and takes a session whose lock expires during the wait", () =>
  onTestClock(Effect.gen(function*() {
    const q = yield* SessionQueue
    const none = yield* Effect.forkChild(q.acceptNext("q", { timeout: "20 seconds" }), { startImmediately: true })
    yield* TestClock.adjust("19 seconds")
    expect(none.pollUnsafe()).toBeUndefined()
    yield* TestClock.adjust("1 second")
    expect(Option.isNone(yield* Fiber.join(none))).toBe(true)

    yield* q.send("q", [{ key: "s", body: "x" }])
    yield* q.accept("q", "s")
    const waiting = yield* Effect.forkChild(q.acceptNext("q", { timeout: "60 seconds" }), { startImmediately: true })
    yield* TestClock.adjust("29 seconds")
    expect(waiting.pollUnsafe()).toBeUndefined()
    yield* TestClock.adjust("1 second")
    const taken = Option.getOrThrow(yield* Fiber.join(waiting))
    expect(taken.sessionId).toBe("s")
    expect((yield* taken.receive(1, "0 millis")).map((m) => bodyText(m.message))).toEqual(["x"])
  })))

test("memory: receive waits up to maxWait for a message and fails with lock lost if the lock ends while it waits", () =>
  onTestClock(Effect.gen(function*() {
    const q = yield* SessionQueue
    const session = yield* q.accept("q", "s")
    const empty = yield* Effect.forkChild(session.receive(5, "10 seconds"), { startImmediately: true })
    yield* TestClock.adjust("10 seconds")
    expect(yield* Fiber.join(empty)).toEqual([])

    const fed = yield* Effect.forkChild(session.receive(5, "10 seconds"), { startImmediately: true })
    yield* q.send("q", [{ key: "s", body: "a" }, { key: "s", body: "b" }])
    expect((yield* Fiber.join(fed)).map((m) => bodyText(m.message))).toEqual(["a", "b"])

    const lost = yield* Effect.forkChild(session.receive(5, "60 seconds"), { startImmediately: true })
    yield* TestClock.adjust("20 seconds")
    expect((yield* Effect.flip(Fiber.join(lost)))._tag).toBe("SessionLockLostError")
  })))
