/**
 * Timeouts kept by one watchdog fiber instead of a race per call: the consume runner's handler
 * timeout (one per runner) and the scheduler's job timeouts (one per scheduler).
 *
 * A race (`Effect.timeout`) forks two fibers and arms a runtime timer for every call, which at
 * thousands of messages or fires a second is a good part of what each costs. Here a call forks
 * only its effect, and only an effect that does not finish at once is watched. The watchdog sleeps (on Effect's Clock, so TestClock drives it)
 * until the earliest deadline and interrupts that job if it still runs.
 *
 * Calls may have limits of their own (a job's timeout): calls under one limit wait in one list, whose insertion
 * order is their deadline order (the clock only moves forward), so the earliest deadline is the
 * earliest of the lists' first entries. An attempt due before the time the watchdog sleeps to
 * starts a new watchdog (the old one is interrupted, and a stale one stops at its next step).
 * The watchdog runs while attempts are watched and ends when none is, like the lease renewer:
 * it outlives a stop's drain (a handler or a job hung during a shutdown stays bounded) and keeps
 * the timeouts of manual runs too.
 */
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import { IntrusiveList, type Links } from "../runtime/intrusiveList.ts"

interface Watched extends Links<Watched> {
  readonly at: number
  readonly fiber: Fiber.Fiber<unknown, unknown>
  readonly list: IntrusiveList<Watched>
  timedOut: boolean
}

export interface Timeouts {
  /** Runs `effect` in a fiber of its own; interrupted after `limit`, it fails with `onTimeout()`. */
  readonly run: <A, E, R, E2>(effect: Effect.Effect<A, E, R>, limit: Duration.Duration, onTimeout: () => E2) => Effect.Effect<A, E | E2, R>
}

export const makeTimeouts = (): Timeouts => {
  // Lists, not Sets: an entry is added and removed at every watched call (intrusiveList.ts says why).
  const byLimit = new Map<number, IntrusiveList<Watched>>()
  let generation = 0
  let watchdog: Fiber.Fiber<void> | undefined
  /** When the current watchdog wakes next. */
  let target = Infinity

  const earliest = () => {
    let first: Watched | undefined
    for (const list of byLimit.values()) {
      const entry = list.first
      if (entry !== undefined && (first === undefined || entry.at < first.at)) first = entry
    }
    return first
  }

  const watch = (mine: number): Effect.Effect<void> =>
    Effect.withFiber((self) => {
      const clock = self.getRef(Clock.Clock)
      const step: Effect.Effect<void> = Effect.suspend(() => {
        if (mine !== generation) return Effect.void
        const first = earliest()
        if (first === undefined) {
          watchdog = undefined
          target = Infinity
          return Effect.void
        }
        const wait = first.at - clock.currentTimeMillisUnsafe()
        if (wait > 0) {
          target = first.at
          return Effect.flatMap(clock.sleep(Duration.millis(wait)), () => step)
        }
        first.list.remove(first)
        first.timedOut = true
        first.fiber.interruptUnsafe(self.id)
        return step
      })
      return step
    })

  const run = <A, E, R, E2>(effect: Effect.Effect<A, E, R>, limit: Duration.Duration, onTimeout: () => E2): Effect.Effect<A, E | E2, R> =>
    Effect.withFiber((parent) => {
      const millis = Duration.toMillis(limit)
      const at = parent.getRef(Clock.Clock).currentTimeMillisUnsafe() + millis
      return Effect.flatMap(Effect.forkChild(effect, { startImmediately: true, uninterruptible: false }), (fiber): Effect.Effect<A, E | E2> => {
        // Most jobs of a busy scheduler end at once: nothing to watch.
        const ended = fiber.pollUnsafe()
        if (ended !== undefined) return ended
        let list = byLimit.get(millis)
        if (list === undefined) byLimit.set(millis, list = new IntrusiveList())
        const entry: Watched = { at, fiber, list, timedOut: false, prev: undefined, next: undefined, linked: false }
        list.push(entry)
        const waiting = Fiber.await(fiber).pipe(
          // Interrupted itself (a stop, a run taken over), the attempt ends its job first, as a race would.
          Effect.onInterrupt(() => Fiber.interrupt(fiber)),
          Effect.ensuring(Effect.sync(() => entry.list.remove(entry))),
          Effect.flatMap((exit): Effect.Effect<A, E | E2> => (entry.timedOut && Exit.isFailure(exit) ? Effect.fail(onTimeout()) : exit))
        )
        if (watchdog !== undefined && !(at < target)) return waiting
        watchdog?.interruptUnsafe(parent.id)
        target = at
        return Effect.flatMap(
          Effect.forkDetach(watch(++generation)),
          (fiber) => {
            watchdog = fiber
            return waiting
          }
        )
      })
    })

  return { run }
}
