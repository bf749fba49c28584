import { describe, expect, test } from "bun:test"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
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

  test("a finished run read back keeps its own fields after older ones were dropped and records moved", () =>
    Effect.runPromise(Effect.gen(function*() {
      const store = yield* MemoryStore.make({ maxRunsPerJob: 3 })
      const ids: Array<string> = []
      for (let s = 0; s < 7; s++) {
        const instance = s % 2 === 0 ? "even" : "odd"
        const trigger = s % 3 === 0 ? "manual" as const : "schedule" as const
        const claimed = yield* store.claim({ job: "j", scheduledAt: at(s), trigger }, { instance, now: at(s), until: at(s + 60) }, { overlap: "allow" })
        if (claimed._tag !== "Claimed") throw new Error("not claimed")
        ids.push(claimed.run.id)
        const outcome = s % 2 === 0 ? "succeeded" as const : "failed" as const
        yield* store.complete(claimed.run.id, instance, {
          outcome,
          now: at(s + 0.5),
          ...(outcome === "failed" ? { error: `boom ${s}`, errorStack: `stack ${s}` } : {})
        })
      }
      const runs = yield* store.recentRuns("j", 10)
      expect(runs.map((r) => r.id)).toEqual(ids.slice(4).reverse())
      expect(runs.map((r) => ({ s: (r.scheduledAt.getTime() - at(0).getTime()) / 1000, trigger: r.trigger, instance: r.instance, outcome: r.outcome, error: r.error, errorStack: r.errorStack, endedAt: r.endedAt?.getTime(), leaseUntil: r.leaseUntil, retryAt: r.retryAt, attempt: r.attempt }))).toEqual([
        { s: 6, trigger: "manual", instance: "even", outcome: "succeeded", error: null, errorStack: null, endedAt: at(6.5).getTime(), leaseUntil: null, retryAt: null, attempt: 1 },
        { s: 5, trigger: "schedule", instance: "odd", outcome: "failed", error: "boom 5", errorStack: "stack 5", endedAt: at(5.5).getTime(), leaseUntil: null, retryAt: null, attempt: 1 },
        { s: 4, trigger: "schedule", instance: "even", outcome: "succeeded", error: null, errorStack: null, endedAt: at(4.5).getTime(), leaseUntil: null, retryAt: null, attempt: 1 }
      ])
      // The lastOccurrence of a schedule leaves the manual run at 6 out.
      expect(Option.getOrUndefined(yield* store.lastOccurrence("j"))).toEqual(at(5))
      expect(yield* store.prune(at(5))).toBe(1)
      expect((yield* store.recentRuns("j", 10)).map((r) => [r.id, r.error])).toEqual([[ids[6]!, null], [ids[5]!, "boom 5"]])
    })))
})
