/**
 * The consume runner's handler timeout, kept by one watchdog fiber per runner instead of a race
 * per message.
 *
 * A race (`Effect.timeout`) forks two fibers for every handler call, the handler's and a sleep's,
 * which costs a third of what the runner spends on a message. Here each call forks only its
 * handler and records its deadline; the watchdog sleeps (on Effect's Clock, so TestClock drives
 * it) until the oldest deadline and interrupts that handler if it is still running. All calls get
 * the same limit, so deadlines come in the order calls start and the oldest is the first.
 *
 * The watchdog must outlive the workers (fork it in the runner's scope, closed after they
 * finished), so handlers still running during a shutdown stay bounded.
 */
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Latch from "effect/Latch"

interface Watched {
  readonly at: number
  readonly fiber: Fiber.Fiber<unknown, unknown>
  timedOut: boolean
}

export interface Deadlines {
  /** Runs `effect` in a fiber of its own; interrupted after the limit, it fails with `onTimeout()`. */
  readonly run: <A, E, R, E2>(effect: Effect.Effect<A, E, R>, onTimeout: () => E2) => Effect.Effect<A, E | E2, R>
  readonly limit: Duration.Duration
  /** The watchdog: runs until interrupted. */
  readonly watchdog: Effect.Effect<never>
}

export const makeDeadlines = (limit: Duration.Duration): Deadlines => {
  const millis = Duration.toMillis(limit)
  // Insertion order is deadline order: same limit for all, start times only move forward.
  const watched = new Set<Watched>()
  const wake = Latch.makeUnsafe(false)

  const run = <A, E, R, E2>(effect: Effect.Effect<A, E, R>, onTimeout: () => E2): Effect.Effect<A, E | E2, R> =>
    Effect.withFiber((parent) => {
      const at = parent.getRef(Clock.Clock).currentTimeMillisUnsafe() + millis
      return Effect.flatMap(Effect.forkChild(effect, { startImmediately: true, uninterruptible: false }), (fiber) => {
        const entry: Watched = { at, fiber, timedOut: false }
        watched.add(entry)
        wake.openUnsafe()
        return Effect.flatMap(Fiber.await(fiber), (exit): Effect.Effect<A, E | E2> => {
          watched.delete(entry)
          return entry.timedOut && Exit.isFailure(exit) ? Effect.fail(onTimeout()) : exit
        })
      })
    })

  const step = Effect.withFiber((fiber) => {
    const clock = fiber.getRef(Clock.Clock)
    return Effect.suspend((): Effect.Effect<void> => {
      const first: Watched | undefined = watched.values().next().value
      if (first === undefined) {
        wake.closeUnsafe()
        return wake.await
      }
      const wait = first.at - clock.currentTimeMillisUnsafe()
      if (wait > 0) return clock.sleep(Duration.millis(wait))
      watched.delete(first)
      first.timedOut = true
      first.fiber.interruptUnsafe(fiber.id)
      return Effect.void
    })
  })

  return { run, limit, watchdog: Effect.forever(step) }
}
