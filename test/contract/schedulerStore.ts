/**
 * The contract every SchedulerStore backend passes (memory, PGlite, PostgreSQL): an occurrence
 * is claimed once however many replicas race for it, leases expire and are taken over once,
 * retries are claimed once with the next attempt number, and the history and pause flags read
 * back as written.
 *
 * Each case opens a database of its own. `open` gives a way to make more clients of it: on a
 * server each client is another connection pool (another replica, as far as the database can
 * tell); embedded backends hand out the one store, raced by concurrent fibers.
 */
import { test as bunTest, describe, expect } from "bun:test"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import type { Occurrence, SchedulerStoreShape } from "../../src/capabilities/SchedulerStore.ts"

export type OpenStore = Effect.Effect<() => Effect.Effect<SchedulerStoreShape, unknown, Scope.Scope>, unknown, Scope.Scope>

const T0 = Date.parse("2026-01-01T00:00:00Z")
const at = (seconds: number) => new Date(T0 + seconds * 1000)
const lease = (instance: string, nowSeconds: number, forSeconds = 30) => ({
  instance,
  now: at(nowSeconds),
  until: at(nowSeconds + forSeconds)
})
const occurrence = (job: string, seconds: number, trigger: "schedule" | "manual" = "schedule"): Occurrence => ({
  job,
  scheduledAt: at(seconds),
  trigger
})

export const schedulerStoreContract = (name: string, open: OpenStore, options: { readonly timeout?: number } = {}) => {
  const run = <A, E>(body: (client: () => Effect.Effect<SchedulerStoreShape, unknown, Scope.Scope>) => Effect.Effect<A, E, Scope.Scope>) =>
    Effect.runPromise(Effect.scoped(Effect.flatMap(open, body)))
  const test = (title: string, body: () => Promise<unknown>) => bunTest(title, body, options.timeout ?? 30_000)

  describe(`scheduler store contract: ${name}`, () => {
    test("two clients racing for the same occurrences: each is claimed by exactly one", () =>
      run((client) =>
        Effect.gen(function*() {
          const a = yield* client()
          const b = yield* client()
          const occurrences = Array.from({ length: 20 }, (_, i) => occurrence("race", i))
          const results = yield* Effect.forEach(
            occurrences.flatMap((o) => [
              Effect.map(a.claim(o, lease("a", 0), { overlap: "allow" }), (r) => ({ o, by: "a", r })),
              Effect.map(b.claim(o, lease("b", 0), { overlap: "allow" }), (r) => ({ o, by: "b", r }))
            ]),
            (claim) => claim,
            { concurrency: "unbounded" }
          )
          for (const o of occurrences) {
            const mine = results.filter((x) => x.o === o)
            expect(mine.map((x) => x.r._tag).sort()).toEqual(["Claimed", "Taken"])
            const won = mine.find((x) => x.r._tag === "Claimed")!
            if (won.r._tag === "Claimed") expect(won.r.run.instance).toBe(won.by)
          }
          const history = yield* a.recentRuns("race", 100)
          expect(history.length).toBe(20)
          expect(new Set(history.map((r) => r.scheduledAt.getTime())).size).toBe(20)
        })
      ))

    test("a claim records the occurrence, attempt 1, the instance and its lease; manual and scheduled runs of one instant are distinct", () =>
      run((client) =>
        Effect.gen(function*() {
          const store = yield* client()
          const claimed = yield* store.claim(occurrence("fields", 60), lease("replica-1", 61, 30), { overlap: "allow" })
          expect(claimed._tag).toBe("Claimed")
          if (claimed._tag !== "Claimed") return
          expect(claimed.run).toMatchObject({
            job: "fields",
            scheduledAt: at(60),
            trigger: "schedule",
            attempt: 1,
            instance: "replica-1",
            startedAt: at(61),
            endedAt: null,
            leaseUntil: at(91),
            outcome: "running",
            error: null,
            errorStack: null,
            retryAt: null
          })
          const manual = yield* store.claim(occurrence("fields", 60, "manual"), lease("replica-1", 61), { overlap: "allow" })
          expect(manual._tag).toBe("Claimed")
          expect((yield* store.claim(occurrence("fields", 60), lease("replica-2", 62), { overlap: "allow" }))._tag).toBe("Taken")
        })
      ))

    test("renew and complete act only on the caller's own running run; complete records outcome, error and stack", () =>
      run((client) =>
        Effect.gen(function*() {
          const store = yield* client()
          const claimed = yield* store.claim(occurrence("own", 0), lease("a", 0, 10), { overlap: "allow" })
          if (claimed._tag !== "Claimed") throw new Error("not claimed")
          const id = claimed.run.id
          expect(yield* store.renew([id], "b", at(100))).toEqual(new Set())
          expect(yield* store.renew([id], "a", at(40))).toEqual(new Set([id]))
          expect((yield* store.recentRuns("own", 1))[0]!.leaseUntil).toEqual(at(40))
          expect(yield* store.complete(id, "b", { outcome: "succeeded", now: at(5) })).toBe(false)
          const done = yield* store.complete(id, "a", {
            outcome: "failed",
            now: at(7),
            error: "boom: it's broken",
            errorStack: "Error: boom\n    at job (jobs.ts:1:1)"
          })
          expect(done).toBe(true)
          expect((yield* store.recentRuns("own", 1))[0]).toMatchObject({
            outcome: "failed",
            endedAt: at(7),
            leaseUntil: null,
            error: "boom: it's broken",
            errorStack: "Error: boom\n    at job (jobs.ts:1:1)",
            retryAt: null
          })
          expect(yield* store.complete(id, "a", { outcome: "succeeded", now: at(8) })).toBe(false)
          expect(yield* store.renew([id], "a", at(50))).toEqual(new Set())
          expect((yield* store.recentRuns("own", 1))[0]!.outcome).toBe("failed")
        })
      ))

    test("renew extends every given run that is the instance's and running, in one call, and names them", () =>
      run((client) =>
        Effect.gen(function*() {
          const store = yield* client()
          const ids: Array<string> = []
          for (const [job, instance] of [["r1", "a"], ["r2", "a"], ["r3", "b"], ["r4", "a"]] as const) {
            const claimed = yield* store.claim(occurrence(job, 0), lease(instance, 0, 10), { overlap: "allow" })
            if (claimed._tag !== "Claimed") throw new Error("not claimed")
            ids.push(claimed.run.id)
          }
          yield* store.complete(ids[3]!, "a", { outcome: "succeeded", now: at(1) })
          expect(yield* store.renew([...ids, "999999"], "a", at(60))).toEqual(new Set([ids[0]!, ids[1]!]))
          expect(yield* store.renew([], "a", at(60))).toEqual(new Set())
          const leases = yield* Effect.forEach(["r1", "r2", "r3"], (job) => Effect.map(store.recentRuns(job, 1), (runs) => runs[0]!.leaseUntil))
          expect(leases).toEqual([at(60), at(60), at(10)])
          // a lease extended past `now` is no longer expired
          expect((yield* store.expiredLeases(at(30), 10)).map((r) => r.job)).toEqual(["r3"])
        })
      ))

    test("overlap skip: a claim that finds the job running records a skip with the reason; allow runs beside it; an expired lease does not count", () =>
      run((client) =>
        Effect.gen(function*() {
          const store = yield* client()
          const first = yield* store.claim(occurrence("long", 0), lease("a", 0, 30), { overlap: "skip" })
          if (first._tag !== "Claimed") throw new Error("not claimed")
          const second = yield* store.claim(occurrence("long", 10), lease("b", 10), { overlap: "skip" })
          expect(second._tag).toBe("Overlap")
          if (second._tag === "Overlap") expect(second.running.id).toBe(first.run.id)
          const skipped = (yield* store.recentRuns("long", 10)).find((r) => r.scheduledAt.getTime() === at(10).getTime())!
          expect(skipped).toMatchObject({ outcome: "skipped", instance: "b", attempt: 1, endedAt: at(10), leaseUntil: null })
          expect(skipped.error).toContain("overlap")
          expect(skipped.error).toContain(first.run.id)
          // the skipped occurrence is settled: nobody claims it afterwards
          expect((yield* store.claim(occurrence("long", 10), lease("c", 11), { overlap: "allow" }))._tag).toBe("Taken")
          expect((yield* store.claim(occurrence("long", 20), lease("b", 20), { overlap: "allow" }))._tag).toBe("Claimed")
          // 31 s: the first run's lease has passed, so it no longer blocks (its replica is presumed gone)
          yield* store.complete((yield* store.recentRuns("long", 1))[0]!.id, "b", { outcome: "succeeded", now: at(25) })
          expect((yield* store.claim(occurrence("long", 31), lease("b", 31), { overlap: "skip" }))._tag).toBe("Claimed")
        })
      ))

    test("overlap skip under a race: two occurrences of one job claimed at once by two clients, one runs and one is skipped", () =>
      run((client) =>
        Effect.gen(function*() {
          const a = yield* client()
          const b = yield* client()
          for (let round = 0; round < 10; round++) {
            const job = `pair${round}`
            const results = yield* Effect.all([
              a.claim(occurrence(job, 0), lease("a", 1), { overlap: "skip" }),
              b.claim(occurrence(job, 1), lease("b", 1), { overlap: "skip" })
            ], { concurrency: "unbounded" })
            expect(results.map((r) => r._tag).sort()).toEqual(["Claimed", "Overlap"])
            expect((yield* a.recentRuns(job, 10)).map((r) => r.outcome).sort()).toEqual(["running", "skipped"])
          }
        })
      ))

    test("claimAll answers for each occurrence, in order, what claim would: taken, overlap (recorded as skipped), claimed", () =>
      run((client) =>
        Effect.gen(function*() {
          const store = yield* client()
          yield* store.claim(occurrence("done", 10), lease("a", 10), { overlap: "allow" })
          const long = yield* store.claim(occurrence("long", 0), lease("a", 0, 60), { overlap: "skip" })
          if (long._tag !== "Claimed") throw new Error("not claimed")
          yield* store.skip(occurrence("busy", 10), { instance: "a", now: at(10), reason: "concurrency limit" })
          const results = yield* store.claimAll([
            { occurrence: occurrence("done", 10), overlap: "allow" },
            { occurrence: occurrence("long", 10), overlap: "skip" },
            { occurrence: occurrence("fresh", 10), overlap: "skip" },
            { occurrence: occurrence("busy", 10), overlap: "allow" },
            { occurrence: occurrence("manual", 10, "manual"), overlap: "allow" }
          ], lease("b", 11, 30))
          expect(results.map((r) => r._tag)).toEqual(["Taken", "Overlap", "Claimed", "Taken", "Claimed"])
          const overlap = results[1]!
          if (overlap._tag === "Overlap") expect(overlap.running.id).toBe(long.run.id)
          const fresh = results[2]!
          if (fresh._tag !== "Claimed") throw new Error("not claimed")
          expect(fresh.run).toMatchObject({
            job: "fresh",
            scheduledAt: at(10),
            trigger: "schedule",
            attempt: 1,
            instance: "b",
            startedAt: at(11),
            endedAt: null,
            leaseUntil: at(41),
            outcome: "running"
          })
          const manual = results[4]!
          if (manual._tag === "Claimed") expect(manual.run).toMatchObject({ job: "manual", trigger: "manual", scheduledAt: at(10) })
          const skipped = (yield* store.recentRuns("long", 10)).find((r) => r.scheduledAt.getTime() === at(10).getTime())!
          expect(skipped).toMatchObject({ outcome: "skipped", instance: "b", endedAt: at(11) })
          expect(skipped.error).toContain(long.run.id)
          expect((yield* store.recentRuns("done", 10)).map((r) => r.instance)).toEqual(["a"])
          expect((yield* store.recentRuns("busy", 10)).map((r) => r.outcome)).toEqual(["skipped"])
          // A job twice in one batch: the second sees the first's claim for its overlap check.
          const twice = yield* store.claimAll([
            { occurrence: occurrence("twice", 0), overlap: "skip" },
            { occurrence: occurrence("twice", 1), overlap: "skip" }
          ], lease("b", 1))
          expect(twice.map((r) => r._tag)).toEqual(["Claimed", "Overlap"])
        })
      ))

    test("a batch of 600 occurrences: each answered in its place", () =>
      run((client) =>
        Effect.gen(function*() {
          const store = yield* client()
          yield* store.claim(occurrence("many-450", 0), lease("a", 0), { overlap: "allow" })
          const results = yield* store.claimAll(
            Array.from({ length: 600 }, (_, i) => ({ occurrence: occurrence(`many-${i}`, 0), overlap: "skip" as const })),
            lease("b", 0)
          )
          expect(results.length).toBe(600)
          results.forEach((r, i) => {
            expect(r._tag).toBe(i === 450 ? "Taken" : "Claimed")
            if (r._tag === "Claimed") expect(r.run.job).toBe(`many-${i}`)
          })
        })
      ))

    test("clients racing with batches and single claims for the same occurrences: each is claimed by exactly one", () =>
      run((client) =>
        Effect.gen(function*() {
          const a = yield* client()
          const b = yield* client()
          const c = yield* client()
          for (let round = 0; round < 3; round++) {
            const batch = Array.from({ length: 30 }, (_, i) => ({ occurrence: occurrence(`batch${i}`, round), overlap: "skip" as const }))
            // b's batch is in the reverse order: the locks are taken in one order whatever the batch's.
            const [ra, rb, rc] = yield* Effect.all([
              a.claimAll(batch, lease("a", round)),
              b.claimAll([...batch].reverse(), lease("b", round)),
              c.claim(batch[7]!.occurrence, lease("c", round), { overlap: "skip" })
            ], { concurrency: "unbounded" })
            const reversed = [...rb].reverse()
            batch.forEach((_, i) => {
              const tags = [ra[i]!._tag, reversed[i]!._tag, ...(i === 7 ? [rc._tag] : [])].sort()
              expect(tags).toEqual(i === 7 ? ["Claimed", "Taken", "Taken"] : ["Claimed", "Taken"])
            })
            for (let i = 0; i < 30; i++) {
              const runs = yield* a.recentRuns(`batch${i}`, 10)
              expect(runs.filter((r) => r.scheduledAt.getTime() === at(round).getTime()).length).toBe(1)
            }
            // Finish this round's runs so the next round's overlap check finds none running.
            for (let i = 0; i < 30; i++) {
              const run = (yield* a.recentRuns(`batch${i}`, 1))[0]!
              yield* a.complete(run.id, run.instance, { outcome: "succeeded", now: at(round) })
            }
          }
        })
      ))

    test("skip records an unclaimed occurrence as skipped with its reason, once; a claimed one stays claimed", () =>
      run((client) =>
        Effect.gen(function*() {
          const store = yield* client()
          expect(yield* store.skip(occurrence("busy", 0), { instance: "a", now: at(0), reason: "concurrency limit 10 reached" })).toBe(true)
          expect(yield* store.skip(occurrence("busy", 0), { instance: "b", now: at(0), reason: "again" })).toBe(false)
          expect((yield* store.claim(occurrence("busy", 0), lease("b", 0), { overlap: "allow" }))._tag).toBe("Taken")
          expect((yield* store.claim(occurrence("busy", 5), lease("b", 5), { overlap: "allow" }))._tag).toBe("Claimed")
          expect(yield* store.skip(occurrence("busy", 5), { instance: "a", now: at(5), reason: "late" })).toBe(false)
          const runs = yield* store.recentRuns("busy", 10)
          expect(runs.map((r) => [r.scheduledAt.getTime() - T0, r.outcome, r.error])).toEqual([
            [5000, "running", null],
            [0, "skipped", "concurrency limit 10 reached"]
          ])
        })
      ))

    test("an expired lease is taken over once: interrupted with the reason, then attempt 2 claimed by exactly one racer", () =>
      run((client) =>
        Effect.gen(function*() {
          const a = yield* client()
          const b = yield* client()
          const c = yield* client()
          const claimed = yield* a.claim(occurrence("crash", 0), lease("dead", 0, 10), { overlap: "skip" })
          if (claimed._tag !== "Claimed") throw new Error("not claimed")
          expect(yield* b.expiredLeases(at(10), 10)).toEqual([])
          const expired = yield* b.expiredLeases(at(11), 10)
          expect(expired.map((r) => r.id)).toEqual([claimed.run.id])
          const expiries = yield* Effect.all([b.expire(claimed.run.id, at(11), at(12)), c.expire(claimed.run.id, at(11), at(12))], {
            concurrency: "unbounded"
          })
          expect(expiries.filter(Boolean).length).toBe(1)
          const interrupted = (yield* a.recentRuns("crash", 1))[0]!
          expect(interrupted).toMatchObject({ outcome: "interrupted", endedAt: at(11), leaseUntil: null, retryAt: at(12) })
          expect(interrupted.error).toContain("lease expired")
          expect(interrupted.error).toContain("dead")
          // the dead instance comes back: its run is no longer its own
          expect(yield* a.renew([claimed.run.id], "dead", at(60))).toEqual(new Set())
          expect(yield* a.complete(claimed.run.id, "dead", { outcome: "succeeded", now: at(13) })).toBe(false)

          expect(yield* b.dueRetries(at(11), 10)).toEqual([])
          const due = yield* b.dueRetries(at(12), 10)
          expect(due.map((r) => r.id)).toEqual([claimed.run.id])
          const retries = yield* Effect.all([b.claimRetry(due[0]!, lease("b", 12)), c.claimRetry(due[0]!, lease("c", 12))], {
            concurrency: "unbounded"
          })
          const won = retries.filter(Option.isSome).map((r) => r.value)
          expect(won.length).toBe(1)
          expect(won[0]).toMatchObject({ job: "crash", scheduledAt: at(0), trigger: "schedule", attempt: 2, outcome: "running" })
          expect(yield* b.dueRetries(at(100), 10)).toEqual([])
          const history = yield* a.recentRuns("crash", 10)
          expect(history.map((r) => [r.attempt, r.outcome])).toEqual([[2, "running"], [1, "interrupted"]])
        })
      ))

    test("an expired lease with no retry left is marked interrupted and owes nothing", () =>
      run((client) =>
        Effect.gen(function*() {
          const store = yield* client()
          const claimed = yield* store.claim(occurrence("once", 0), lease("dead", 0, 5), { overlap: "skip" })
          if (claimed._tag !== "Claimed") throw new Error("not claimed")
          expect(yield* store.expire(claimed.run.id, at(4))).toBe(false)
          expect(yield* store.expire(claimed.run.id, at(6))).toBe(true)
          expect(yield* store.expire(claimed.run.id, at(7))).toBe(false)
          expect(yield* store.dueRetries(at(1000), 10)).toEqual([])
          expect(yield* store.expiredLeases(at(1000), 10)).toEqual([])
        })
      ))

    test("a failed run's retry is due at its time, not before; a second claim of it gets nothing", () =>
      run((client) =>
        Effect.gen(function*() {
          const store = yield* client()
          const claimed = yield* store.claim(occurrence("flaky", 0), lease("a", 0), { overlap: "skip" })
          if (claimed._tag !== "Claimed") throw new Error("not claimed")
          yield* store.complete(claimed.run.id, "a", { outcome: "timed_out", now: at(3), error: "timed out after 3s", retryAt: at(30) })
          const failed = (yield* store.recentRuns("flaky", 1))[0]!
          expect(failed.retryAt).toEqual(at(30))
          expect(yield* store.dueRetries(at(29), 10)).toEqual([])
          expect(Option.isNone(yield* store.claimRetry(failed, lease("a", 29)))).toBe(true)
          const second = yield* store.claimRetry(failed, lease("a", 30))
          expect(Option.getOrThrow(second)).toMatchObject({ attempt: 2, instance: "a", startedAt: at(30), leaseUntil: at(60) })
          expect(Option.isNone(yield* store.claimRetry(failed, lease("b", 31)))).toBe(true)
          // attempt 2 fails too and owes attempt 3
          yield* store.complete(Option.getOrThrow(second).id, "a", { outcome: "failed", now: at(31), retryAt: at(40) })
          const third = yield* store.claimRetry((yield* store.dueRetries(at(40), 10))[0]!, lease("b", 40))
          expect(Option.getOrThrow(third).attempt).toBe(3)
        })
      ))

    test("lastOccurrence is the latest scheduled occurrence, manual runs aside", () =>
      run((client) =>
        Effect.gen(function*() {
          const store = yield* client()
          expect(Option.isNone(yield* store.lastOccurrence("last"))).toBe(true)
          yield* store.claim(occurrence("last", 60), lease("a", 60), { overlap: "allow" })
          yield* store.skip(occurrence("last", 120), { instance: "a", now: at(120), reason: "limit" })
          yield* store.claim(occurrence("last", 500, "manual"), lease("a", 500), { overlap: "allow" })
          yield* store.claim(occurrence("other", 900), lease("a", 900), { overlap: "allow" })
          expect(Option.getOrThrow(yield* store.lastOccurrence("last"))).toEqual(at(120))
        })
      ))

    test("recentRuns: one job's runs, newest first, at most the limit", () =>
      run((client) =>
        Effect.gen(function*() {
          const store = yield* client()
          for (const s of [10, 30, 20]) yield* store.claim(occurrence("hist", s), lease("a", s), { overlap: "allow" })
          yield* store.claim(occurrence("noise", 25), lease("a", 25), { overlap: "allow" })
          expect((yield* store.recentRuns("hist", 10)).map((r) => r.startedAt)).toEqual([at(30), at(20), at(10)])
          expect((yield* store.recentRuns("hist", 2)).map((r) => r.startedAt)).toEqual([at(30), at(20)])
          expect(yield* store.recentRuns("nobody", 10)).toEqual([])
        })
      ))

    test("prune deletes runs that ended before the cut-off, never a running one nor one still owed a retry", () =>
      run((client) =>
        Effect.gen(function*() {
          const store = yield* client()
          const finish = (s: number, ended: number, retryAt?: Date) =>
            Effect.gen(function*() {
              const claimed = yield* store.claim(occurrence("prune", s), lease("a", s), { overlap: "allow" })
              if (claimed._tag !== "Claimed") throw new Error("not claimed")
              yield* store.complete(claimed.run.id, "a", { outcome: "failed", now: at(ended), ...(retryAt ? { retryAt } : {}) })
            })
          yield* finish(0, 1)
          yield* finish(10, 11)
          yield* finish(20, 21, at(5000))
          yield* store.skip(occurrence("prune", 30), { instance: "a", now: at(30), reason: "limit" })
          yield* store.claim(occurrence("prune", 40), lease("a", 40, 100000), { overlap: "allow" })
          yield* finish(100, 101)
          expect(yield* store.prune(at(50))).toBe(3)
          expect((yield* store.recentRuns("prune", 10)).map((r) => r.scheduledAt.getTime() - T0)).toEqual([100_000, 40_000, 20_000])
          expect(yield* store.prune(at(50))).toBe(0)
        })
      ))

    test("pause flags persist and every client sees them", () =>
      run((client) =>
        Effect.gen(function*() {
          const a = yield* client()
          const b = yield* client()
          expect([...(yield* b.paused)]).toEqual([])
          yield* a.setPaused("report", true, at(0))
          yield* a.setPaused("cleanup", true, at(0))
          yield* a.setPaused("cleanup", false, at(1))
          expect([...(yield* b.paused)]).toEqual(["report"])
          yield* b.setPaused("report", true, at(2))
          expect([...(yield* a.paused)]).toEqual(["report"])
        })
      ))
  })
}
