/**
 * What a handler decides for a message; the runner settles the delivery accordingly.
 */
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"

export type Outcome = Data.TaggedEnum<{
  /** Done: ack it. */
  Ack: {}
  /**
   * Try again (transient failure); dead-lettered once attempts run out. With `after`, the
   * runner holds the message that long before handing it back (cut short by shutdown).
   */
  Retry: { readonly reason: string; readonly after?: Duration.Duration }
  /** Never going to work (malformed, rejected by validation): dead-letter it now. */
  DeadLetter: { readonly reason: string }
}>

const { Ack, DeadLetter, Retry } = Data.taggedEnum<Outcome>()

export const ack: Outcome = Ack()
export const retry = (reason: string, options: { readonly after?: Duration.Input } = {}): Outcome =>
  options.after === undefined ? Retry({ reason }) : Retry({ reason, after: Duration.fromInputUnsafe(options.after) })
export const deadLetter = (reason: string): Outcome => DeadLetter({ reason })
