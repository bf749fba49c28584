import { describe, expect, test } from "bun:test"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Random from "effect/Random"
import { TestClock } from "effect/testing"
import { backoff, type BackoffPolicy, delayFor, exhausted, nominalDelay, outboxBackoff, outboxDefaults } from "../../src/resilience/backoff.ts"

const runTest = <A, E>(effect: Effect.Effect<A, E>) => Effect.runPromise(effect.pipe(Effect.provide(TestClock.layer())))

const exact: BackoffPolicy = {
  base: outboxDefaults.KAFKA_BASE_DELAY,
  factor: outboxDefaults.KAFKA_MULTIPLIER,
  max: outboxDefaults.KAFKA_MAX_DELAY,
  jitter: 0
}

const seconds = (d: Duration.Duration) => Duration.toMillis(d) / 1000

/** Times (ms after the start) at which an always-failing effect was tried under `policy`. */
const attemptTimes = (policy: BackoffPolicy, run: Duration.Input) =>
  Effect.gen(function*() {
    const at: Array<number> = []
    const fiber = yield* Effect.forkChild(
      Effect.gen(function*() {
        at.push(yield* Clock.currentTimeMillis)
        return yield* Effect.fail("down" as const)
      }).pipe(Effect.retry(backoff(policy)), Effect.flip)
    )
    yield* TestClock.adjust(run)
    yield* Fiber.interrupt(fiber)
    return at
  })

describe("backoff", () => {
  test("the outbox defaults wait 1, 2, 4, 8, 16 s, then 30 s (the cap) from then on", async () => {
    expect([1, 2, 3, 4, 5, 6, 7].map((n) => seconds(nominalDelay(exact, n)))).toEqual([1, 2, 4, 8, 16, 30, 30])
    const jitterless = await runTest(Effect.forEach([1, 2, 3, 4, 5, 6, 7], (n) => delayFor(exact, n)))
    expect(jitterless.map(seconds)).toEqual([1, 2, 4, 8, 16, 30, 30])
  })

  test("the schedule retries at the same waits, on the clock", async () => {
    const at = await runTest(attemptTimes(exact, "200 seconds"))
    // 0, +1, +2, +4, +8, +16, +30, +30, +30 …
    expect(at.slice(0, 9)).toEqual([0, 1000, 3000, 7000, 15000, 31000, 61000, 91000, 121000])
  })

  test("maxAttempts caps the attempts, and the last failure is what the retry returns", async () => {
    const at = await runTest(attemptTimes({ ...exact, maxAttempts: 4 }, "1 hour"))
    expect(at).toEqual([0, 1000, 3000, 7000])
    expect(exhausted({ ...exact, maxAttempts: 4 }, 3)).toBe(false)
    expect(exhausted({ ...exact, maxAttempts: 4 }, 4)).toBe(true)
    expect(exhausted(exact, 1000)).toBe(false)
    const error = await runTest(Effect.fail("last").pipe(Effect.retry(backoff({ ...exact, maxAttempts: 1 })), Effect.flip))
    expect(error).toBe("last")
  })

  test("the outbox policy makes its first attempt and WORKER_MAX_RETRIES retries", async () => {
    const at = await runTest(attemptTimes({ ...outboxBackoff, jitter: 0 }, "1 hour"))
    expect(at).toHaveLength(1 + outboxDefaults.WORKER_MAX_RETRIES)
  })

  test("jitter stays within ±jitter of the nominal wait, never above max, and a seed repeats it", async () => {
    const policy: BackoffPolicy = { ...exact, jitter: 0.2 }
    const attempts = Array.from({ length: 8 }, (_, i) => i + 1)
    const sample = Effect.forEach(Array.from({ length: 50 }), () => Effect.forEach(attempts, (n) => delayFor(policy, n)))
    const [first, again, other] = await runTest(Effect.all([
      sample.pipe(Random.withSeed(42)),
      sample.pipe(Random.withSeed(42)),
      sample.pipe(Random.withSeed(7))
    ]))
    for (const row of first!) {
      row.forEach((delay, i) => {
        const nominal = Duration.toMillis(nominalDelay(policy, i + 1))
        expect(Duration.toMillis(delay)).toBeGreaterThanOrEqual(nominal * 0.8)
        expect(Duration.toMillis(delay)).toBeLessThanOrEqual(Math.min(nominal * 1.2, 30_000))
      })
    }
    // Spread, not a constant factor: the first wait takes many values, some below and some above 1 s.
    const firstWaits = first!.map((row) => Duration.toMillis(row[0]!))
    expect(new Set(firstWaits).size).toBeGreaterThan(20)
    expect(firstWaits.some((ms) => ms < 1000)).toBe(true)
    expect(firstWaits.some((ms) => ms > 1000)).toBe(true)
    expect(again).toEqual(first!)
    expect(other).not.toEqual(first!)
  })

  test("the schedule's jittered waits are delayFor's under the same seed", async () => {
    const policy: BackoffPolicy = { ...exact, jitter: 0.5, maxAttempts: 6 }
    const [gaps, direct] = await runTest(Effect.all([
      attemptTimes(policy, "10 minutes").pipe(
        Effect.map((at) => at.slice(1).map((t, i) => t - at[i]!)),
        Random.withSeed("backoff")
      ),
      Effect.forEach([1, 2, 3, 4, 5], (n) => delayFor(policy, n)).pipe(Random.withSeed("backoff"))
    ]))
    expect(gaps).toEqual(direct.map(Duration.toMillis))
    expect(gaps).not.toEqual([1000, 2000, 4000, 8000, 16000])
  })
})
