/**
 * Progress of a long run, for the operator watching its log.
 *
 * - `reportProgress` logs a line every `interval` with a snapshot of the work, but only when the
 *   snapshot changed since the last line: a worker waiting for messages stays quiet instead of
 *   repeating itself. The snapshot when it starts counts as reported, so nothing done means no
 *   line at all.
 * - `rate` is the summary of a run: how many, over how many seconds, how many per second. The
 *   benchmarks read these fields from a program's last log line, so their names are fixed.
 */
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Equal from "effect/Equal"
import type * as Equivalence from "effect/Equivalence"
import * as Schedule from "effect/Schedule"

export interface ProgressOptions<A, E, R> {
  readonly interval: Duration.Input
  /** The log message of each line. */
  readonly message: string
  readonly snapshot: Effect.Effect<A, E, R>
  /** The annotations of a line. */
  readonly annotations: (snapshot: A) => Record<string, unknown>
  /** When two snapshots are the same for the reader [structural equality, `Equal.equals`]. */
  readonly equivalence?: Equivalence.Equivalence<A> | undefined
}

/**
 * Logs `message` at Info every `interval` while the snapshot keeps changing; runs until
 * interrupted (fork it in the worker's scope).
 *
 * @example
 * ```ts
 * yield* Effect.forkScoped(reportProgress({
 *   interval: "10 seconds",
 *   message: "counting",
 *   snapshot: activity.snapshot,
 *   annotations: (s) => ({ ...rate(s.handled, s.firstAt ?? s.lastAt, s.lastAt) }),
 *   equivalence: (a, b) => a.handled === b.handled
 * }))
 * ```
 */
export const reportProgress = <A, E, R>(options: ProgressOptions<A, E, R>): Effect.Effect<void, E, R> =>
  Effect.gen(function*() {
    const same = options.equivalence ?? Equal.equals
    let reported = yield* options.snapshot
    const report = Effect.flatMap(options.snapshot, (current) => {
      if (same(reported, current)) return Effect.void
      reported = current
      return Effect.logInfo(options.message).pipe(Effect.annotateLogs(options.annotations(current)))
    })
    // `Effect.schedule` waits the first interval before the first look.
    yield* Effect.schedule(report, Schedule.spaced(options.interval))
  })

/** The summary of a run: `messages` handled over `seconds`, `perSecond` rounded. */
export interface Rate {
  readonly messages: number
  readonly seconds: number
  readonly perSecond: number
}

/**
 * `count` things handled from `fromMillis` to `toMillis`. Nothing handled is all zeros; a span
 * under a millisecond counts as one, so a single burst does not divide by zero.
 */
export const rate = (count: number, fromMillis: number, toMillis: number): Rate => {
  if (count === 0) return { messages: 0, seconds: 0, perSecond: 0 }
  const seconds = Math.max(toMillis - fromMillis, 1) / 1000
  return { messages: count, seconds, perSecond: Math.round(count / seconds) }
}
