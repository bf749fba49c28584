/**
 * What a handler decides for a message; the consume runner settles the delivery accordingly.
 */
import * as Data from "effect/Data"

export type Outcome = Data.TaggedEnum<{
  /** Done: ack it. */
  Ack: {}
  /** Try again later (transient failure); dead-lettered once attempts run out. */
  Retry: { readonly reason: string }
  /** Never going to work (malformed, rejected by validation): dead-letter it now. */
  DeadLetter: { readonly reason: string }
}>

const { Ack, DeadLetter, Retry } = Data.taggedEnum<Outcome>()

export const ack: Outcome = Ack()
export const retry = (reason: string): Outcome => Retry({ reason })
export const deadLetter = (reason: string): Outcome => DeadLetter({ reason })
