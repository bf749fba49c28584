/**
 * Idleness: a worker that stops by itself once its work has dried up.
 *
 * - An `Activity` is told when work begins and finishes (`track` does both around an effect). It
 *   keeps what the idle detector and the progress reports need: work in flight, work handled,
 *   when the first began and when anything last happened.
 * - `whenIdle` completes once `idleTimeout` has passed with nothing in flight and nothing new.
 *   Time counts only while `connected` says so: a broker that is down is not an empty queue,
 *   so after an outage the count starts over from the moment the connection is seen back.
 * - `connected` is looked at every `checkEvery` [1 s, at most `idleTimeout`]; an outage shorter
 *   than that can go unseen, which costs at worst a stop that the outage did not delay. Work
 *   itself is not polled: each look computes the deadline from the Clock and sleeps until it, so
 *   under `TestClock` it fires exactly `idleTimeout` after the last activity.
 */
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"

export interface ActivitySnapshot {
  readonly inFlight: number
  /** Units of work finished (successfully or not) so far. */
  readonly handled: number
  /** When the first unit of work began; undefined before any did. */
  readonly firstAt: number | undefined
  /** When work last began or finished, or when the activity was made if none has yet (epoch ms). */
  readonly lastAt: number
}

export interface Activity {
  /** Counts `n` units of work as begun. */
  readonly begin: (n: number) => Effect.Effect<void>
  /** Counts `n` units of work begun earlier as finished. */
  readonly finish: (n: number) => Effect.Effect<void>
  /** Runs `effect` as `n` units of work: finished however it ends, interruption included. */
  readonly track: <A, E, R>(n: number, effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  readonly snapshot: Effect.Effect<ActivitySnapshot>
}

/** A fresh activity; the idle clock starts now, as if something had just happened. */
export const makeActivity: Effect.Effect<Activity> = Effect.map(Clock.currentTimeMillis, (now) => {
  const state = { inFlight: 0, handled: 0, firstAt: undefined as number | undefined, lastAt: now }
  // Plain synchronous updates: this runs once per message (or batch) on the hot path.
  const begin = (n: number) =>
    Effect.map(Clock.currentTimeMillis, (now) => {
      state.firstAt ??= now
      state.lastAt = now
      state.inFlight += n
    })
  const finish = (n: number) =>
    Effect.map(Clock.currentTimeMillis, (now) => {
      state.lastAt = now
      state.inFlight -= n
      state.handled += n
    })
  return {
    begin,
    finish,
    track: (n, effect) => Effect.acquireUseRelease(begin(n), () => effect, () => finish(n)),
    snapshot: Effect.sync(() => ({ ...state }))
  }
})

export interface IdleOptions {
  /** How long nothing may happen, while connected, before the worker counts as idle. */
  readonly idleTimeout: Duration.Input
  /** Whether the source of work is reachable now [always]. Time while it is not does not count. */
  readonly connected?: Effect.Effect<boolean> | undefined
  /** How often `connected` is looked at [1 s, at most `idleTimeout`]. */
  readonly checkEvery?: Duration.Input | undefined
}

/**
 * Completes once `idleTimeout` of connected time has passed since the later of the last
 * activity and the last reconnection, with nothing in flight. Never fails; interrupt it to give up.
 *
 * @example
 * ```ts
 * const activity = yield* makeActivity
 * yield* Effect.raceFirst(
 *   consume(subscription, (received) => activity.track(1, handle(received))),
 *   whenIdle(activity, { idleTimeout: "5 seconds", connected: subscriber.healthy })
 * )
 * ```
 */
export const whenIdle = (activity: Activity, options: IdleOptions): Effect.Effect<void> =>
  Effect.suspend(() => {
    const idleMillis = Duration.toMillis(Duration.fromInputUnsafe(options.idleTimeout))
    // At least 1 ms: a wait of zero is the schedule's signal that the worker is idle.
    const checkMillis = Math.max(1, Math.min(idleMillis, Duration.toMillis(Duration.fromInputUnsafe(options.checkEvery ?? Duration.seconds(1)))))
    const connected = options.connected ?? Effect.succeed(true)
    let disconnected = false
    // Idle time counts from here at the earliest: the start, or when the connection came back.
    let countFrom = 0

    /** How long to sleep before the next look; zero when idle now. */
    const look = Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      if (!(yield* connected)) {
        disconnected = true
        return checkMillis
      }
      if (disconnected) {
        disconnected = false
        countFrom = now
      }
      const { inFlight, lastAt } = yield* activity.snapshot
      // Work in flight ends with a `finish`, which moves `lastAt` to at least now.
      if (inFlight > 0) return checkMillis
      const remaining = Math.max(lastAt, countFrom) + idleMillis - now
      return remaining <= 0 ? 0 : Math.min(remaining, checkMillis)
    })

    return Effect.asVoid(Effect.repeat(look, sleepAsTold))
  })

/** Sleeps as many milliseconds as the last look asked for; stops when it asked for none. */
const sleepAsTold: Schedule.Schedule<number, number> = Schedule.passthrough(Schedule.forever.pipe(Schedule.setInputType<number>())).pipe(
  Schedule.while(({ input }) => input > 0),
  Schedule.modifyDelay(({ input }) => Effect.succeed(Duration.millis(input)))
)
