/**
 * `src/sql/listenOnDemand.ts` on PGlite: epochs name each LISTEN, `stop` works from inside
 * `onNotify`, and a stopped LISTEN hears nothing more.
 */
import { describe, expect, test } from "bun:test"
import * as Effect from "effect/Effect"
import * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"
import * as PgliteSql from "../../layers/pglite/sql.ts"
import { SqlDatabase } from "../../src/capabilities/SqlDatabase.ts"
import * as ListenOnDemand from "../../src/sql/listenOnDemand.ts"

const run = <A, E>(effect: Effect.Effect<A, E, SqlDatabase | Scope.Scope>) =>
  Effect.runPromise(effect.pipe(Effect.scoped, Effect.provide(PgliteSql.layer())))

describe("ListenOnDemand", () => {
  test("off until started; each start after a stop is a new epoch; stop from inside onNotify; nothing heard while off", () =>
    run(Effect.gen(function*() {
      const db = yield* SqlDatabase
      const heard = yield* Queue.unbounded<string>()
      const listener: ListenOnDemand.ListenOnDemand = yield* ListenOnDemand.make(db, "demand", (payload) =>
        Effect.andThen(Queue.offer(heard, payload), payload === "stop" ? listener.stop : Effect.void))
      expect(listener.epoch()).toBeUndefined()
      yield* db.notify("demand", "before")
      const first = yield* listener.start
      expect(listener.epoch()).toBe(first)
      expect(yield* listener.start).toBe(first)
      yield* db.notify("demand", "one")
      expect(yield* Queue.take(heard)).toBe("one")
      yield* db.notify("demand", "stop")
      expect(yield* Queue.take(heard)).toBe("stop")
      expect(listener.epoch()).toBeUndefined()
      yield* db.notify("demand", "while off")
      const second = yield* listener.start
      expect(second).toBeGreaterThan(first)
      yield* db.notify("demand", "two")
      // "before" and "while off" were never heard: the next payload is the one sent after the start.
      expect(yield* Queue.take(heard)).toBe("two")
      expect(yield* Queue.size(heard)).toBe(0)
    })))

  test("concurrent starts share one LISTEN", () =>
    run(Effect.gen(function*() {
      const db = yield* SqlDatabase
      const listener = yield* ListenOnDemand.make(db, "shared", () => Effect.void)
      const epochs = yield* Effect.all([listener.start, listener.start, listener.start], { concurrency: "unbounded" })
      expect(new Set(epochs).size).toBe(1)
      expect(listener.epoch()).toBe(epochs[0]!)
    })))
})
