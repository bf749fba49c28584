/**
 * The session worker (SPEC §1), over any SessionQueue backend.
 *
 * `workerCount` slots run at once (the original's semaphore: one fiber per permit). Each slot
 * loops: accept the next free session (waiting up to `receiveTimeout`; none came → wait
 * `retryDelay`, try again); receive its messages in order and hand each to the handler; release
 * it after `idleThreshold` empty receives in a row. While a session is held its lock is renewed
 * at half of what is left of it.
 *
 * Settling, per message:
 * - handled → complete, together with the other handled messages of the batch and the state the
 *   handler answered, in one `completeAll` (one commit on PostgreSQL), before any other
 *   settlement of the batch;
 * - `MalformedMessage` → dead-letter at once (reason `MalformedBody`): retrying cannot help;
 * - any other failure → abandon, so it comes back first; at its `maxDelivery`th delivery,
 *   dead-letter it instead (reason `MaxDeliveryCountExceeded`, the failure as description) and
 *   go on with the session's next message. After a failure, the rest of the batch is abandoned
 *   too and the session is read one message at a time until the failing one is settled: a later
 *   message must not pass it, and must not use up its own deliveries while it waits.
 * - `CircuitOpenError` (the handler's downstream breaker refused) → nothing is settled and the
 *   session is released, so an outage does not drain sessions into failures; slots accept no
 *   session while the breaker is open.
 * - the lock was lost → nothing more is settled on that session (its messages go to the next
 *   holder); counted in `session_lock_lost_total`.
 *
 * Shutdown is interruption: a batch being handled is finished and settled (handling and
 * settling a received batch are one uninterruptible step), waits for sessions and messages stop, and closing each
 * session's scope releases it, so its received but unhandled messages return at once.
 */
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import * as Tracer from "effect/Tracer"
import { describeCause } from "../capabilities/describeCause.ts"
import { Headers } from "../capabilities/Message.ts"
import {
  type LockedSession,
  maxDeliveryCountExceeded,
  type SessionError,
  SessionLockLostError,
  type SessionMessage,
  SessionQueue
} from "../capabilities/SessionQueue.ts"
import { parseTraceparent } from "../messaging/traceContext.ts"
import { CircuitOpenError, type CircuitState } from "../resilience/circuitBreaker.ts"
import type { WorkerConfig } from "./config.ts"
import * as Metrics from "./metrics.ts"

/** A message no handler can process (bad JSON, wrong shape): dead-lettered at once. */
export class MalformedMessage extends Data.TaggedError("MalformedMessage")<{ readonly reason: string }> {
  override get message() {
    return this.reason
  }
}

export const malformedBody = "MalformedBody"

/** What handling a message asks of the worker besides completing it. */
export interface Handled {
  /** The session state to set with the completion (`undefined` clears it). */
  readonly state: Uint8Array | undefined
}

export interface SessionHandler<E, R> {
  /**
   * Processes one message of a held session; the worker settles it by the result. A handler that
   * keeps its progress in the session state answers the new state instead of setting it: the
   * worker sets it together with the completion of the batch's messages (`completeAll`).
   */
  readonly handle: (message: SessionMessage, session: LockedSession) => Effect.Effect<void | Handled, E | MalformedMessage, R>
  /** Told of each message the worker dead-lettered, so the handler can account for the gap. */
  readonly deadLettered?: (message: SessionMessage, session: LockedSession) => Effect.Effect<void, never, R>
}

export interface SessionWorkerOptions<E, R> {
  readonly config: WorkerConfig
  readonly handler: SessionHandler<E, R>
  /** The breaker around the handler's downstream, when it has one. */
  readonly breaker?: { readonly state: Effect.Effect<CircuitState> }
}

type Settled = "completed" | "abandoned" | "dead_lettered" | "refused"

/** Why a session was let go. */
export type SessionEnd = "idle" | "breaker-open" | "lock-lost" | "error"

export const makeWorker = <E, R>(options: SessionWorkerOptions<E, R>) =>
  Effect.gen(function*() {
    const { config, handler } = options
    const breakerOpen = options.breaker === undefined
      ? Effect.succeed(false)
      : Effect.map(options.breaker.state, (state) => state === "open")
    const active = yield* Ref.make(0)
    // Whether the queue answered the last accept: what readiness reports. Not the depth: Service
    // Bus answers it through an administration API the emulator does not have.
    const reachable = yield* Ref.make(true)
    const setActive = (delta: number) => Ref.updateAndGet(active, (n) => n + delta).pipe(Effect.flatMap((n) => Metric.update(Metrics.activeSessions, n)))

    // Tagged once (see metrics.ts): every settled batch is counted.
    const completedTotal = Metrics.messagesBy("completed")
    const completed: Effect.Effect<Settled> = Effect.succeed("completed")

    /**
     * Settles a message the handler failed on. Any settlement first flushes the batch's pending
     * completions, so settlements and state keep the session's order.
     */
    const settleFailure = (
      session: LockedSession,
      message: SessionMessage,
      started: number,
      cause: Cause.Cause<E | MalformedMessage>,
      flush: Effect.Effect<void, SessionError>
    ): Effect.Effect<Settled, SessionError, R> =>
      Effect.gen(function*() {
        let settled: Exclude<Settled, "completed">
        const failure = Cause.findErrorOption(cause)
        const error = Option.getOrUndefined(failure)
        if (error instanceof SessionLockLostError) return yield* Effect.fail(error)
        if (error instanceof CircuitOpenError) return "refused"
        yield* flush
        if (error instanceof MalformedMessage) {
          yield* session.deadLetter(message, { reason: malformedBody, description: error.reason })
          yield* Effect.logWarning("malformed session message dead-lettered").pipe(
            Effect.annotateLogs({ sessionId: session.sessionId, messageId: message.message.id, reason: error.reason })
          )
          settled = "dead_lettered"
        } else {
          const description = describeCause(Option.isSome(failure) ? failure.value : Cause.squash(cause))
          if (message.attempt >= config.maxDelivery) {
            yield* session.deadLetter(message, { reason: maxDeliveryCountExceeded, description })
            yield* Effect.logWarning(`session message dead-lettered after ${message.attempt} deliveries`).pipe(
              Effect.annotateLogs({ sessionId: session.sessionId, messageId: message.message.id, error: description })
            )
            settled = "dead_lettered"
          } else {
            yield* session.abandon(message)
            settled = "abandoned"
          }
        }
        if (settled === "dead_lettered" && handler.deadLettered !== undefined) yield* handler.deadLettered(message, session)
        yield* Metric.update(Metrics.messagesBy(settled), 1)
        yield* Metric.update(Metrics.processingSeconds, ((yield* Clock.currentTimeMillis) - started) / 1000)
        return settled
      })

    /**
     * Handles one message. A handled one is not completed here: `handled` records it among the
     * batch's pending completions (`flush` completes them with the latest state in one call).
     * The handler is called when the effect is built: build it where it runs.
     */
    const handleOne = (
      session: LockedSession,
      message: SessionMessage,
      started: number,
      flush: Effect.Effect<void, SessionError>,
      handled: (message: SessionMessage, started: number, result: void | Handled) => void,
      traced: boolean
    ): Effect.Effect<Settled, SessionError, R> => {
      const settle = Effect.matchCauseEffect(handler.handle(message, session), {
        onSuccess: (result) => {
          handled(message, started, result)
          return completed
        },
        onFailure: (cause) => settleFailure(session, message, started, cause, flush)
      })
      // The sender's span is the parent when the message carries its traceparent. Under
      // Effect's own tracer (no tracing backend) the span would record nothing and cost a
      // third of the handling of a message, so none is made (as `consumeBatches` does).
      if (!traced) return settle
      const parent = parseTraceparent(message.message.headers[Headers.traceparent])
      const annotated = Effect.tap(settle, (settled) => Effect.annotateCurrentSpan("messaging.session.outcome", settled))
      return Effect.withSpan(annotated, "session message", {
        kind: "consumer",
        attributes: {
          "messaging.destination.name": config.queue,
          "messaging.message.id": message.message.id,
          "messaging.session.id": session.sessionId,
          "messaging.delivery.attempt": message.attempt
        },
        ...(parent === undefined ? {} : { parent }),
        captureStackTrace: false
      })
    }

    /**
     * Handles a received batch in order and settles it: the handled messages with one
     * `completeAll` carrying the handler's last state (one commit on PostgreSQL), however many
     * there are. Handling a message (and recording it as pending) is uninterruptible, and an
     * interruption between messages completes the pending ones, so a shutdown finishes the
     * message in hand, settles what was handled and leaves the rest to the release.
     * Answers how the batch ended: "done", "abandoned" (the rest was returned) or "refused".
     */
    const handleBatch = (
      session: LockedSession,
      got: ReadonlyArray<SessionMessage>
    ): Effect.Effect<"done" | "abandoned" | "refused", SessionError, R> => {
      let pending: Array<SessionMessage> = []
      let startedAt: Array<number> = []
      let state: { readonly state: Uint8Array | undefined } | undefined
      const handled = (message: SessionMessage, started: number, result: void | Handled) => {
        pending.push(message)
        startedAt.push(started)
        if (result !== undefined) state = { state: result.state }
      }
      const flush = Effect.suspend(() => {
        if (pending.length === 0 && state === undefined) return Effect.void
        const done = pending
        const started = startedAt
        const options = state
        pending = []
        startedAt = []
        state = undefined
        return Effect.flatMap(session.completeAll(done, options), () =>
          // The batch's metrics in one synchronous step, not an effect per message.
          Effect.withFiber((fiber) => {
            const now = fiber.getRef(Clock.Clock).currentTimeMillisUnsafe()
            completedTotal.updateUnsafe(done.length, fiber.context)
            for (const at of started) Metrics.processingSeconds.updateUnsafe((now - at) / 1000, fiber.context)
            return Effect.void
          }))
      }).pipe(Effect.uninterruptible)
      return Effect.gen(function*() {
        const traced = (yield* Effect.tracer) !== Tracer.nativeTracer
        const clock = yield* Effect.clockWith(Effect.succeed)
        for (let i = 0; i < got.length; i++) {
          const message = got[i]!
          // Suspended, so the handler is called inside the uninterruptible region.
          const settled = yield* Effect.uninterruptible(
            Effect.suspend(() => handleOne(session, message, clock.currentTimeMillisUnsafe(), flush, handled, traced))
          )
          if (settled === "refused") {
            yield* flush
            return "refused" as const
          }
          if (settled === "abandoned") {
            yield* Effect.forEach(got.slice(i + 1), (later) => session.abandon(later), { discard: true }).pipe(Effect.uninterruptible)
            return "abandoned" as const
          }
        }
        yield* flush
        return "done" as const
      }).pipe(Effect.onInterrupt(() => Effect.ignore(flush)))
    }

    /** Renews the lock at half of what is left of it, until the session ends or the lock is lost. */
    const keepLock = (session: LockedSession, lost: Ref.Ref<boolean>) =>
      Effect.gen(function*() {
        while (true) {
          const until = yield* session.lockedUntil
          const now = yield* Clock.currentTimeMillis
          yield* Effect.sleep(Duration.millis(Math.max(500, (until - now) / 2)))
          const renewed = yield* Effect.exit(session.renewLock)
          if (renewed._tag === "Success") {
            yield* Metric.update(Metrics.lockRenewals, 1)
            continue
          }
          const error = Cause.findErrorOption(renewed.cause)
          if (Option.isSome(error) && error.value instanceof SessionLockLostError) {
            yield* Ref.set(lost, true)
            return
          }
          yield* Effect.logWarning("renewing a session lock failed; trying again", renewed.cause)
        }
      })

    /** Processes one held session until it is idle, the breaker opens, or its lock is lost. */
    const processSession = (session: LockedSession) =>
      Effect.gen(function*() {
        const lost = yield* Ref.make(false)
        yield* Effect.forkScoped(keepLock(session, lost))
        let empty = 0
        let oneByOne = false
        while (true) {
          if (yield* breakerOpen) return "breaker-open" as SessionEnd
          if (yield* Ref.get(lost)) return "lock-lost" as SessionEnd
          const got: ReadonlyArray<SessionMessage> = yield* session.receive(oneByOne ? 1 : config.receiveBatch, config.receiveWait)
          if (got.length === 0) {
            if (++empty >= config.idleThreshold) return "idle" as SessionEnd
            continue
          }
          empty = 0
          const ended: "done" | "abandoned" | "refused" = yield* handleBatch(session, got)
          if (ended === "refused") return "breaker-open" as SessionEnd
          oneByOne = ended === "abandoned"
        }
      }).pipe(
        Effect.catchTag("SessionLockLostError", () => Effect.succeed("lock-lost" as SessionEnd)),
        Effect.tap((end) => end === "lock-lost" ? Metric.update(Metrics.locksLost, 1) : Effect.void)
      )

    const slot = Effect.gen(function*() {
      const q = yield* SessionQueue
      while (true) {
        if (yield* breakerOpen) {
          yield* Effect.sleep(config.retryDelay)
          continue
        }
        const taken = yield* Effect.scoped(Effect.gen(function*() {
          const next = yield* q.acceptNext(config.queue, { timeout: config.receiveTimeout }).pipe(
            Effect.tapError(() => Ref.set(reachable, false))
          )
          yield* Ref.set(reachable, true)
          if (Option.isNone(next)) return false
          const session = next.value
          yield* Effect.acquireRelease(setActive(1), () => setActive(-1))
          const end = yield* processSession(session)
          yield* Effect.logDebug(`session released (${end})`).pipe(Effect.annotateLogs({ sessionId: session.sessionId }))
          return true
        })).pipe(
          Effect.catch((error) => Effect.as(Effect.logWarning("session slot failed; trying again after the retry delay", error), false))
        )
        if (!taken) yield* Effect.sleep(config.retryDelay)
      }
    })

    /** Reads the queue depth into `session_queue_depth` every `depthInterval`. */
    const watchDepth = Effect.gen(function*() {
      const q = yield* SessionQueue
      const activeDepth = Metrics.queueDepth(config.queue, "active")
      const deadLetteredDepth = Metrics.queueDepth(config.queue, "dead_lettered")
      let warned = false
      while (true) {
        const depth = yield* Effect.exit(q.depth(config.queue))
        if (depth._tag === "Success") {
          yield* Metric.update(activeDepth, depth.value.active)
          yield* Metric.update(deadLetteredDepth, depth.value.deadLettered)
          warned = false
        } else if (!warned) {
          // Once per outage: an emulator without the depth API would otherwise warn every interval.
          warned = true
          yield* Effect.logWarning("reading the session queue depth failed; session_queue_depth is stale", depth.cause)
        }
        yield* Effect.sleep(config.depthInterval)
      }
    })

    const run: Effect.Effect<never, never, SessionQueue | R> = Effect.gen(function*() {
      // Every series exported from the start, at 0: a dashboard (and an alert on out-of-order > 0) sees them before the first event.
      yield* Metric.update(Metrics.activeSessions, 0)
      for (const outcome of ["completed", "abandoned", "dead_lettered"] as const) yield* Metric.update(Metrics.messagesBy(outcome), 0)
      for (const counter of [Metrics.outOfOrder, Metrics.duplicates, Metrics.lockRenewals, Metrics.locksLost]) yield* Metric.update(counter, 0)
      yield* Effect.forkScoped(watchDepth)
      yield* Effect.log(`session worker on "${config.queue}" with ${config.workerCount} slots`)
      return yield* Effect.forEach(Array.from({ length: config.workerCount }), () => slot, {
        concurrency: "unbounded",
        discard: true
      }).pipe(Effect.andThen(Effect.never))
    }).pipe(Effect.scoped)

    return {
      run,
      activeSessions: Ref.get(active),
      /** False while the queue fails to answer (the last accept failed). */
      healthy: Ref.get(reachable)
    }
  })
