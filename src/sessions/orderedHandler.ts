/**
 * The example session handler (SPEC §1): it shows order being kept. Per session it keeps the
 * last processed `seq` in the session's state, so it survives a change of holder (another slot,
 * another process), and for each message:
 * - `seq` = last + 1: in order; the downstream is called, then the state moves to `seq` (the
 *   worker writes it with the batch's completions, so they commit together);
 * - `seq` = last: this message was processed and its settlement was lost (the lock ended
 *   first): counted in `session_messages_duplicate_total` and not processed again;
 * - anything else arrived out of sequence: counted in `session_messages_out_of_order_total`
 *   (it must stay 0), then processed. A gap the worker explains (a message it dead-lettered) is
 *   not out of sequence.
 *
 * The downstream runs behind the circuit breaker: while it is open the handler fails with
 * `CircuitOpenError` without calling it, and the worker releases the session untouched.
 */
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import type { LockedSession, SessionError, SessionMessage } from "../capabilities/SessionQueue.ts"
import type { CircuitBreaker, CircuitOpenError } from "../resilience/circuitBreaker.ts"
import { encodeLastSeq, lastSeqOf, parseBody, type SessionBody } from "./messages.ts"
import * as Metrics from "./metrics.ts"
import { type Handled, MalformedMessage, type SessionHandler } from "./worker.ts"

export interface OrderedHandlerOptions<E, R> {
  /** What processing a message means: the call the breaker protects. */
  readonly downstream: (body: SessionBody, message: SessionMessage) => Effect.Effect<void, E, R>
  readonly breaker: CircuitBreaker
}

interface Progress {
  lastSeq: number
  /** The worker dead-lettered a message whose seq it could not read: the next gap is explained. */
  gapExplained: boolean
}

export const orderedHandler = <E, R>(
  options: OrderedHandlerOptions<E, R>
): SessionHandler<E | CircuitOpenError | SessionError, R> => {
  // Read from the session state once per hold; a new hold (maybe after another holder) reads it again.
  const held = new WeakMap<LockedSession, Progress>()
  const progressOf = (session: LockedSession) =>
    Effect.gen(function*() {
      const known = held.get(session)
      if (known !== undefined) return known
      const progress: Progress = { lastSeq: lastSeqOf(yield* session.getState), gapExplained: false }
      held.set(session, progress)
      return progress
    })
  const advance = (session: LockedSession, progress: Progress, seq: number) =>
    Effect.gen(function*() {
      yield* session.setState(encodeLastSeq(seq))
      progress.lastSeq = seq
      progress.gapExplained = false
    })

  /** One message of a session whose progress is known; the worker's per-message path, so no generator. */
  const process = (
    message: SessionMessage,
    session: LockedSession,
    body: SessionBody,
    progress: Progress
  ): Effect.Effect<void | Handled, E | CircuitOpenError | SessionError, R> => {
    if (body.seq === progress.lastSeq) return Metric.update(Metrics.duplicates, 1)
    const call = Effect.map(options.breaker.protect(options.downstream(body, message)), () => {
      progress.lastSeq = body.seq
      progress.gapExplained = false
      return { state: encodeLastSeq(body.seq) }
    })
    if (body.seq === progress.lastSeq + 1 || (progress.gapExplained && body.seq > progress.lastSeq)) return call
    return Effect.andThen(
      Metric.update(Metrics.outOfOrder, 1).pipe(
        Effect.andThen(Effect.logError(`session message out of sequence: seq ${body.seq} after ${progress.lastSeq}`)),
        Effect.annotateLogs({ sessionId: session.sessionId, messageId: message.message.id })
      ),
      call
    )
  }

  return {
    handle: (message, session) =>
      Effect.suspend((): Effect.Effect<void | Handled, E | CircuitOpenError | SessionError | MalformedMessage, R> => {
        const body = parseBody(message.message)
        if ("malformed" in body) return Effect.fail(new MalformedMessage({ reason: body.malformed }))
        const known = held.get(session)
        return known !== undefined
          ? process(message, session, body, known)
          : Effect.flatMap(progressOf(session), (progress) => process(message, session, body, progress))
      }),
    deadLettered: (message, session) =>
      Effect.gen(function*() {
        const progress = held.get(session)
        if (progress === undefined) return
        const body = parseBody(message.message)
        if ("malformed" in body) progress.gapExplained = true
        else if (body.seq > progress.lastSeq) yield* advance(session, progress, body.seq).pipe(Effect.ignore)
      })
  }
}
