/**
 * Backoff policies: exponential, capped, jittered, bounded by attempts — one set of numbers that
 * serves both kinds of retry.
 *
 * - In process, `backoff(policy)` is a `Schedule` for `Effect.retry` (and the `retry` middleware).
 * - Across deliveries, a message comes back as a new delivery with no schedule state, so the
 *   `retryLater` middleware asks `delayFor(policy, attempt)` for the wait before the next one.
 *
 * Both compute the delay with the same function, so the two can never drift apart. Jitter draws
 * from Effect's `Random` (seed it with `Random.withSeed` in a test); waits run on Effect's
 * `Clock` (`TestClock` in a test).
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Random from "effect/Random"
import * as Schedule from "effect/Schedule"

export interface BackoffPolicy {
  /** Wait after the first failed attempt. */
  readonly base: Duration.Input
  /** Each wait is the previous one times this [2]. */
  readonly factor?: number
  /** No wait is longer than this, jitter included. */
  readonly max: Duration.Input
  /**
   * Spread of each wait, as a fraction: a wait `d` becomes uniform in `[d·(1−jitter), d·(1+jitter)]`,
   * then capped at `max` [0.2, the spread of `Schedule.jittered`]. 0 for exact waits.
   */
  readonly jitter?: number
  /** Attempts in all, the first included; unbounded when absent. */
  readonly maxAttempts?: number
}

/**
 * The outbox relay's numbers (SPEC §2), under the names of its environment variables, so a
 * config reader can use them as its defaults.
 */
export const outboxDefaults = {
  KAFKA_BASE_DELAY: Duration.seconds(1),
  KAFKA_MAX_DELAY: Duration.seconds(30),
  KAFKA_MULTIPLIER: 2.0,
  /** Retries after the first attempt; then the event is marked failed. */
  WORKER_MAX_RETRIES: 3
} as const

/** The outbox relay's default policy: 1 s, 2 s, 4 s between its four attempts, jittered. */
export const outboxBackoff: BackoffPolicy = {
  base: outboxDefaults.KAFKA_BASE_DELAY,
  factor: outboxDefaults.KAFKA_MULTIPLIER,
  max: outboxDefaults.KAFKA_MAX_DELAY,
  maxAttempts: 1 + outboxDefaults.WORKER_MAX_RETRIES
}

/**
 * The wait after failed attempt `attempt` (1 = the first) before jitter: `base · factor^(attempt−1)`,
 * capped at `max`.
 */
export const nominalDelay = (policy: BackoffPolicy, attempt: number): Duration.Duration => {
  const base = Duration.toMillis(Duration.fromInputUnsafe(policy.base))
  const max = Duration.toMillis(Duration.fromInputUnsafe(policy.max))
  // Past a few hundred attempts the power overflows to Infinity; the cap absorbs it.
  return Duration.millis(Math.min(max, base * Math.pow(policy.factor ?? 2, Math.max(0, attempt - 1))))
}

/**
 * The wait after failed attempt `attempt` (1 = the first), jittered with Effect's `Random`.
 *
 * @example
 * ```ts
 * // how long the runner should hold a message that failed on its 3rd delivery
 * const after = yield* delayFor(outboxBackoff, received.attempt) // ≈ 4 s
 * ```
 */
export const delayFor = (policy: BackoffPolicy, attempt: number): Effect.Effect<Duration.Duration> =>
  jitter(policy, nominalDelay(policy, attempt))

/** Whether attempt `attempt` was the last the policy allows. */
export const exhausted = (policy: BackoffPolicy, attempt: number): boolean =>
  policy.maxAttempts !== undefined && attempt >= policy.maxAttempts

/**
 * The policy as a `Schedule` for `Effect.retry`: its `n`-th step waits `delayFor(policy, n)` and
 * outputs that wait; it stops after `maxAttempts − 1` retries.
 *
 * Gotcha: the schedule's own state (the step count) lives only as long as one `Effect.retry`; a
 * redelivered message starts again at the first wait. Across deliveries use `delayFor` with the
 * delivery's attempt (the `retryLater` middleware does).
 */
export const backoff = (policy: BackoffPolicy): Schedule.Schedule<Duration.Duration> => {
  const waits = Schedule.fromStepWithMetadata(Effect.succeed(({ attempt }: Schedule.InputMetadata<unknown>) =>
    Effect.map(delayFor(policy, attempt), (delay): [Duration.Duration, Duration.Duration] => [delay, delay])
  ))
  return policy.maxAttempts === undefined ? waits : waits.pipe(Schedule.upTo({ times: Math.max(0, policy.maxAttempts - 1) }))
}

const jitter = (policy: BackoffPolicy, nominal: Duration.Duration): Effect.Effect<Duration.Duration> => {
  const spread = Math.min(1, Math.max(0, policy.jitter ?? 0.2))
  if (spread === 0) return Effect.succeed(nominal)
  const max = Duration.toMillis(Duration.fromInputUnsafe(policy.max))
  const millis = Duration.toMillis(nominal)
  // Capped after jitter: `max` stays the longest anyone waits, which is what an operator sets it for.
  return Effect.map(Random.next, (r) => Duration.millis(Math.round(Math.min(max, millis * (1 - spread + 2 * spread * r)))))
}
