/**
 * The scheduler's demonstration on its own (the main demo runs it too): a few `@every` jobs on
 * the in-memory store for a few seconds — one failing and retried, one overlapping itself — and
 * the resulting run history as a table. Exits 1 when the history is not what it should be.
 *
 *   bun run programs/scheduler-demo.ts
 */
import * as Effect from "effect/Effect"
import * as MemoryStore from "../layers/memory/schedulerStore.ts"
import { runMain } from "../layers/platform/runMain.ts"
import { schedulerDemo } from "../src/scheduler/demo.ts"

runMain(
  Effect.gen(function*() {
    const result = yield* schedulerDemo()
    if (result.problems.length > 0) return yield* Effect.die(new Error("the scheduler's history differs from what the demo expects"))
  }).pipe(Effect.provide(MemoryStore.layer())),
  { name: "scheduler-demo" }
)
