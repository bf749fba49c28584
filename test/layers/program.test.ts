import { describe, expect, test } from "bun:test"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as MemoryBroker from "../../layers/memory/broker.ts"
import { asWorker, withReadiness } from "../../layers/platform/program.ts"
import { Readiness } from "../../src/runtime/Readiness.ts"

const report = Readiness.use((readiness) => readiness.report)

// No Subscriber is provided to the first two: readiness needs none for a program without one.
describe("withReadiness", () => {
  test("its checks are reported while the program runs and gone when it returns", () =>
    Effect.runPromise(Effect.gen(function*() {
      const started = yield* Deferred.make<void>()
      const finish = yield* Deferred.make<void>()
      let breakerOpen = true
      const program = Deferred.succeed(started, undefined).pipe(Effect.andThen(Deferred.await(finish)), Effect.as("done"))
      const running = yield* Effect.forkChild(withReadiness(program, {
        database: Effect.succeed(true),
        breaker: Effect.sync(() => !breakerOpen)
      }))
      yield* Deferred.await(started)
      expect(yield* report).toEqual({ ready: false, checks: { database: true, breaker: false }, shuttingDown: false })
      breakerOpen = false
      expect((yield* report).ready).toBe(true)
      yield* Deferred.succeed(finish, undefined)
      expect(yield* Fiber.join(running)).toBe("done")
      expect(yield* report).toEqual({ ready: true, checks: {}, shuttingDown: false })
    }).pipe(Effect.provide(Readiness.layer))))

  test("an interrupted program leaves the process shutting down, so /readyz stays 503", () =>
    Effect.runPromise(Effect.gen(function*() {
      const started = yield* Deferred.make<void>()
      const running = yield* Effect.forkChild(
        withReadiness(Deferred.succeed(started, undefined).pipe(Effect.andThen(Effect.never)), { database: Effect.succeed(true) })
      )
      yield* Deferred.await(started)
      expect((yield* report).ready).toBe(true)
      yield* Fiber.interrupt(running)
      const after = yield* report
      expect(after.shuttingDown).toBe(true)
      expect(after.ready).toBe(false)
    }).pipe(Effect.provide(Readiness.layer))))

  test("asWorker checks the subscriber's broker and the worker", () =>
    Effect.runPromise(Effect.gen(function*() {
      const seen = yield* asWorker(report)
      expect(seen).toEqual({ ready: true, checks: { broker: true, worker: true }, shuttingDown: false })
    }).pipe(Effect.provide(Layer.mergeAll(Readiness.layer, MemoryBroker.layer)))))
})
