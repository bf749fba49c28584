import { describe, expect, test } from "bun:test"
import * as Effect from "effect/Effect"
import * as MemoryStore from "../../layers/memory/schedulerStore.ts"
import { schedulerStoreContract } from "../contract/schedulerStore.ts"

// One store per case; its clients are the one store, raced by concurrent fibers.
schedulerStoreContract("memory", Effect.map(MemoryStore.make(), (store) => () => Effect.succeed(store)))

describe("memory scheduler store: bounded history", () => {
  const at = (s: number) => new Date(Date.parse("2026-01-01T00:00:00Z") + s * 1000)

  test("keeps the latest maxRunsPerJob finished runs of each job, never dropping a running run or one owed a retry", () =>
    Effect.runPromise(Effect.gen(function*() {
      const store = yield* MemoryStore.make({ maxRunsPerJob: 3 })
      const lease = (s: number) => ({ instance: "a", now: at(s), until: at(s + 1_000_000) })
      // second 0: runs on and on; second 1: failed, owed a retry; then finished runs
      const longRunning = yield* store.claim({ job: "j", scheduledAt: at(0), trigger: "schedule" }, lease(0), { overlap: "allow" })
      const owed = yield* store.claim({ job: "j", scheduledAt: at(1), trigger: "schedule" }, lease(1), { overlap: "allow" })
      if (longRunning._tag !== "Claimed" || owed._tag !== "Claimed") throw new Error("not claimed")
      yield* store.complete(owed.run.id, "a", { outcome: "failed", now: at(1), retryAt: at(9999) })
      for (let s = 2; s < 10; s++) yield* store.skip({ job: "j", scheduledAt: at(s), trigger: "schedule" }, { instance: "a", now: at(s), reason: "x" })
      yield* store.skip({ job: "other", scheduledAt: at(5), trigger: "schedule" }, { instance: "a", now: at(5), reason: "x" })
      const kept = (yield* store.recentRuns("j", 100)).map((r) => r.scheduledAt.getTime() - at(0).getTime())
      expect(kept).toEqual([9000, 1000, 0])
      expect((yield* store.recentRuns("other", 100)).length).toBe(1)
      expect((yield* store.dueRetries(at(9999), 10)).map((r) => r.id)).toEqual([owed.run.id])
    })))
})
