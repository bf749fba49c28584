/**
 * Isolating poison items in a batch write: when a write of many items fails for good, split it
 * until each failing item is alone, so one bad item costs only itself.
 *
 * The rule (DESIGN.md, "Permanent and transient failures differ"): a failure that is permanent
 * for the data (`isPermanentForData` for SQL) is not retried; the batch is halved and each half
 * written again, recursively. An item that still fails alone is poison: it is returned with its
 * error, for the caller to dead-letter with the reason, and every other item was written.
 * Transient failures are not this helper's business: `write` retries them itself (with backoff)
 * and fails only with what it will not retry; any other failure ends the whole call.
 *
 * Cost: one write when nothing is poison; about 2·log2(n) more per poison item otherwise.
 */
import * as Effect from "effect/Effect"

export interface Isolated<A, B, E> {
  /** What each successful write returned, in the order the writes ran. */
  readonly written: ReadonlyArray<B>
  /** The items that failed alone with a permanent error, each with that error, in input order. */
  readonly poison: ReadonlyArray<{ readonly item: A; readonly error: E }>
}

/**
 * Writes `items` with `write`, isolating the items it fails on for good (`isPermanent`).
 *
 * @example
 * ```ts
 * const { written, poison } = yield* isolatePoison(rows, (rows) => store.insert(rows), {
 *   isPermanent: (error) => isPermanentForData(error)
 * })
 * ```
 *
 * Gotcha: `write` must be atomic per call (a statement, a transaction): a call that failed
 * must have written nothing, or the halves would write its items twice.
 */
export const isolatePoison = <A, B, E, R>(
  items: ReadonlyArray<A>,
  write: (items: ReadonlyArray<A>) => Effect.Effect<B, E, R>,
  options: { readonly isPermanent: (error: E) => boolean }
): Effect.Effect<Isolated<A, B, E>, E, R> =>
  Effect.suspend(() => {
    const written: Array<B> = []
    const poison: Array<{ item: A; error: E }> = []
    const go = (part: ReadonlyArray<A>): Effect.Effect<void, E, R> =>
      write(part).pipe(
        Effect.flatMap((result) => Effect.sync(() => void written.push(result))),
        Effect.catchIf(options.isPermanent, (error) => {
          if (part.length === 1) return Effect.sync(() => void poison.push({ item: part[0]!, error }))
          const half = Math.ceil(part.length / 2)
          // In order, one half after the other: both halves may share keys with each other.
          return Effect.andThen(go(part.slice(0, half)), Effect.suspend(() => go(part.slice(half))))
        })
      )
    return items.length === 0 ? Effect.succeed({ written, poison }) : Effect.as(go(items), { written, poison })
  })
