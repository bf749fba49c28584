/**
 * A soft limit on resident memory, in the spirit of Go's GOMEMLIMIT.
 *
 * A garbage-collected runtime sizes its heap from the machine: JavaScriptCore lets garbage grow
 * to about twice the live data, and more on a host with much RAM, before a full collection. A
 * worker whose live data is a few MB then sits at several times that. With a limit, resident
 * memory is checked every `checkEvery` [100 ms]; above the limit a full collection runs, so the
 * heap reuses what it freed instead of growing.
 *
 * It never costs more than it can give back: when memory is still over the limit after a
 * collection (the live data itself is larger), the next one waits twice as long as the last, up to
 * `maxBackoff` [10 s], and one warning says so; once under the limit again it starts over.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import { formatMiB } from "./format.ts"

export interface MemoryLimitOptions {
  /** Resident bytes above which a collection is run. */
  readonly limit: number
  readonly residentBytes: Effect.Effect<number>
  /** A full, synchronous garbage collection. */
  readonly collect: Effect.Effect<void>
  readonly checkEvery?: Duration.Input | undefined
  readonly maxBackoff?: Duration.Input | undefined
}

const resident = Metric.gauge("process_resident_memory_bytes", { description: "Resident memory size in bytes" })
const collections = Metric.counter("memory_limit_collections", {
  description: "Full garbage collections run because resident memory was above MEMORY_LIMIT",
  incremental: true
})


/** Runs until interrupted. */
export const enforceMemoryLimit = (options: MemoryLimitOptions): Effect.Effect<never> =>
  Effect.gen(function*() {
    const checkEvery = Duration.toMillis(Duration.fromInputUnsafe(options.checkEvery ?? Duration.millis(100)))
    const maxBackoff = Duration.toMillis(Duration.fromInputUnsafe(options.maxBackoff ?? Duration.seconds(10)))
    let backoff = 0
    let warned = false
    while (true) {
      yield* Effect.sleep(Duration.millis(checkEvery + backoff))
      const before = yield* options.residentBytes
      yield* Metric.update(resident, before)
      if (before <= options.limit) {
        backoff = 0
        warned = false
        continue
      }
      yield* options.collect
      yield* Metric.update(collections, 1)
      const after = yield* options.residentBytes
      yield* Metric.update(resident, after)
      if (after <= options.limit) {
        backoff = 0
        continue
      }
      backoff = Math.min(Math.max(backoff * 2, checkEvery), maxBackoff)
      if (backoff === maxBackoff && !warned) {
        warned = true
        yield* Effect.logWarning(
          `resident memory stays above MEMORY_LIMIT after collecting: the live data needs more than ${formatMiB(options.limit)}; collecting at most every ${Duration.format(Duration.millis(maxBackoff))}`
        ).pipe(Effect.annotateLogs({ residentBytes: after, limitBytes: options.limit }))
      }
    }
  })
