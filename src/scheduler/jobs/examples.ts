/**
 * Example jobs that need nothing but the scheduler, for the program's embedded run and the
 * demonstration: one that always succeeds and one that fails its first attempt at every
 * occurrence, so the history shows a retry with backoff.
 */
import * as Effect from "effect/Effect"
import { job } from "../job.ts"
import { CurrentRun } from "../scheduler.ts"

export const heartbeat = job({
  name: "heartbeat",
  schedule: "@every 2s",
  run: Effect.logInfo("heartbeat")
})

export const flaky = job({
  name: "flaky",
  schedule: "@every 5s",
  timeout: "10 seconds",
  retry: { base: "1 second", max: "5 seconds", jitter: 0, maxAttempts: 3 },
  run: Effect.gen(function*() {
    const run = yield* CurrentRun
    if (run?.attempt === 1) return yield* Effect.fail(new Error("flaky: the first attempt always fails"))
    yield* Effect.logInfo(`flaky: attempt ${run?.attempt} got through`)
  })
})

export const examples = [heartbeat, flaky]
