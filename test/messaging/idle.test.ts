import { describe, expect, test } from "bun:test"
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import { TestClock } from "effect/testing"
import { makeActivity, whenIdle } from "../../src/messaging/idle.ts"

const run = <A>(effect: Effect.Effect<A>) => Effect.runPromise(effect.pipe(Effect.provide(TestClock.layer())))

/** Moves the test clock to `millis` after the start. */
const at = (millis: number) => Effect.flatMap(Clock.currentTimeMillis, (now) => TestClock.adjust(millis - now))

const done = (fiber: Fiber.Fiber<unknown, unknown>) => fiber.pollUnsafe() !== undefined

describe("whenIdle", () => {
  test("completes exactly idleTimeout after the last activity, not a millisecond earlier", () =>
    run(Effect.gen(function*() {
      const activity = yield* makeActivity
      const idle = yield* Effect.forkChild(whenIdle(activity, { idleTimeout: "5 seconds" }))
      yield* at(2_000)
      yield* activity.begin(3)
      yield* activity.finish(3)
      yield* at(6_999)
      expect(done(idle)).toBe(false)
      yield* at(7_000)
      expect(done(idle)).toBe(true)
      expect(yield* activity.snapshot).toEqual({ inFlight: 0, handled: 3, firstAt: 2_000, lastAt: 2_000 })
    })))

  test("with no activity at all it completes idleTimeout after the activity was made", () =>
    run(Effect.gen(function*() {
      const activity = yield* makeActivity
      const idle = yield* Effect.forkChild(whenIdle(activity, { idleTimeout: "3 seconds" }))
      yield* at(2_999)
      expect(done(idle)).toBe(false)
      yield* at(3_000)
      expect(done(idle)).toBe(true)
    })))

  test("work in flight holds it off for as long as it runs; it counts from when that work finished", () =>
    run(Effect.gen(function*() {
      const activity = yield* makeActivity
      const release = yield* Deferred.make<void>()
      const idle = yield* Effect.forkChild(whenIdle(activity, { idleTimeout: "5 seconds" }))
      yield* at(1_000)
      const work = yield* Effect.forkChild(activity.track(1, Deferred.await(release)))
      yield* at(60_000)
      expect(done(idle)).toBe(false)
      expect((yield* activity.snapshot).inFlight).toBe(1)
      yield* Deferred.succeed(release, undefined)
      yield* Fiber.join(work)
      yield* at(64_999)
      expect(done(idle)).toBe(false)
      yield* at(65_000)
      expect(done(idle)).toBe(true)
    })))

  test("activity just before the deadline moves it: it does not fire early", () =>
    run(Effect.gen(function*() {
      const activity = yield* makeActivity
      const idle = yield* Effect.forkChild(whenIdle(activity, { idleTimeout: "5 seconds", checkEvery: "5 seconds" }))
      yield* at(4_999)
      yield* activity.track(1, Effect.void)
      yield* at(5_000)
      expect(done(idle)).toBe(false)
      yield* at(9_998)
      expect(done(idle)).toBe(false)
      yield* at(9_999)
      expect(done(idle)).toBe(true)
    })))

  test("time while disconnected does not count; the count starts over once connected again", () =>
    run(Effect.gen(function*() {
      const activity = yield* makeActivity
      let connected = true
      const idle = yield* Effect.forkChild(
        whenIdle(activity, { idleTimeout: "5 seconds", checkEvery: "1 second", connected: Effect.sync(() => connected) })
      )
      yield* at(2_500)
      connected = false
      // Far past any deadline: an outage is not an empty queue.
      yield* at(60_000)
      expect(done(idle)).toBe(false)
      connected = true
      // Seen connected at the next look (61 s); five connected seconds from there.
      yield* at(65_999)
      expect(done(idle)).toBe(false)
      yield* at(66_000)
      expect(done(idle)).toBe(true)
    })))

  test("an outage that is still on at the deadline keeps it from firing", () =>
    run(Effect.gen(function*() {
      const activity = yield* makeActivity
      let connected = true
      const idle = yield* Effect.forkChild(
        whenIdle(activity, { idleTimeout: "5 seconds", connected: Effect.sync(() => connected) })
      )
      yield* at(4_500)
      connected = false
      yield* at(5_000)
      expect(done(idle)).toBe(false)
      connected = true
      yield* at(10_999)
      expect(done(idle)).toBe(false)
      yield* at(11_000)
      expect(done(idle)).toBe(true)
    })))

  test("track counts work that fails or is interrupted as finished", () =>
    run(Effect.gen(function*() {
      const activity = yield* makeActivity
      yield* Effect.exit(activity.track(2, Effect.fail("boom")))
      const stuck = yield* Effect.forkChild(activity.track(1, Effect.never), { startImmediately: true })
      expect((yield* activity.snapshot).inFlight).toBe(1)
      yield* Fiber.interrupt(stuck)
      const snapshot = yield* activity.snapshot
      expect(snapshot.inFlight).toBe(0)
      expect(snapshot.handled).toBe(3)
    })))
})
