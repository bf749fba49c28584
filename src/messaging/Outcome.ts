/**
 * What a handler decides for a message; the runner settles the delivery accordingly.
 */
import * as Cause from "effect/Cause"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import { describeCause } from "../capabilities/describeCause.ts"

export type Outcome = Data.TaggedEnum<{
  /** Done: ack it. */
  Ack: {}
  /**
   * Try again (transient failure); dead-lettered once attempts run out. With `after`, the
   * runner holds the message that long before handing it back (cut short by shutdown). With
   * `countsAsAttempt: false` the message is not at fault (its downstream is down): the runner
   * keeps it, waits `after` and runs the handler on it again as the same attempt, so an outage
   * never uses up its attempts; a shutdown during the wait hands it back.
   */
  Retry: { readonly reason: string; readonly after?: Duration.Duration; readonly countsAsAttempt?: false }
  /** Never going to work (malformed, rejected by validation): dead-letter it now. */
  DeadLetter: { readonly reason: string }
}>

const { Ack, DeadLetter, Retry } = Data.taggedEnum<Outcome>()

export const ack: Outcome = Ack()
export const retry = (
  reason: string,
  options: { readonly after?: Duration.Input; readonly countsAsAttempt?: false } = {}
): Outcome =>
  Retry({
    reason,
    ...(options.after === undefined ? {} : { after: Duration.fromInputUnsafe(options.after) }),
    ...(options.countsAsAttempt === false ? { countsAsAttempt: false as const } : {})
  })
export const deadLetter = (reason: string): Outcome => DeadLetter({ reason })

/** Why a handler call failed, in one line: its typed error, or what it died of. */
export const failureReason = (cause: Cause.Cause<unknown>): string => {
  const failure = Cause.findError(cause)
  if (failure._tag === "Success") return describeCause(failure.success)
  return `handler died: ${Cause.pretty(cause).split("\n")[0]}`
}
