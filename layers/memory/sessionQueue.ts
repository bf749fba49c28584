/**
 * In-memory SessionQueue: the embedded backend, a real implementation of the contract over
 * `SessionStore`. Time is Effect's Clock, so lock expiry and waiting run under TestClock too.
 * Nothing survives the process.
 *
 * Waiting (`acceptNext`, `receive`) sleeps until something changes in the store (a send, a
 * settlement, a release) or until the next lock in the queue ends, whichever comes first.
 */
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { type Message, normalize } from "../../src/capabilities/Message.ts"
import {
  defaultLockDuration,
  defaultMaxDeliveryCount,
  type LockedSession,
  SessionLockedError,
  SessionLockLostError,
  type SessionMessage,
  SessionQueue,
  type SessionQueueShape
} from "../../src/capabilities/SessionQueue.ts"
import { type Grant, lockLost, type LockLost, type Settlement, SessionStore } from "./sessionStore.ts"

export interface MemorySessionQueueOptions {
  readonly lockDuration?: Duration.Input
  readonly maxDeliveryCount?: number
}

/** What tests need beyond the capability: ending a lock now, as a server would. */
export class MemorySessionQueue extends Context.Service<MemorySessionQueue, {
  /** Ends the session's lock at once; false when nobody held it. */
  readonly expireLock: (queue: string, sessionId: string) => Effect.Effect<boolean>
}>()("queueworks/MemorySessionQueue") {}

/**
 * A message handed out, carrying the store's lock token of that delivery (unseen by callers), so
 * settling it finds the delivery without a lookup table per holder. The store settles only a
 * delivery that is still out under that token in a session the caller holds: a message from
 * another holder, an earlier delivery or one settled already changes nothing.
 */
class Delivered implements SessionMessage {
  readonly #token: string
  constructor(
    readonly message: Message,
    readonly sequenceNumber: number,
    readonly attempt: number,
    readonly enqueuedAt: number,
    token: string
  ) {
    this.#token = token
  }
  static tokenOf(message: SessionMessage): string | undefined {
    return #token in message ? message.#token : undefined
  }
}

const deliveryToken = Delivered.tokenOf

export const make = (options: MemorySessionQueueOptions = {}) =>
  Effect.sync(() => {
    const store = new SessionStore({
      lockDurationMs: Duration.toMillis(options.lockDuration ?? defaultLockDuration),
      maxDeliveryCount: options.maxDeliveryCount ?? defaultMaxDeliveryCount
    })
    let waiters: Array<Deferred.Deferred<void>> = []
    const changed = () => {
      if (waiters.length === 0) return
      const woken = waiters
      waiters = []
      for (const waiter of woken) Deferred.doneUnsafe(waiter, Effect.void)
    }

    /**
     * Runs `attempt` until it answers, or until `deadline`/`wakeAt` says to stop waiting. The
     * attempt and the registration of the waiter happen in one synchronous step, so a change
     * between them cannot be missed.
     */
    const waitFor = <A>(attempt: (now: number) => A | undefined, wakeAt: (now: number) => number) =>
      Effect.gen(function*() {
        while (true) {
          const now = yield* Clock.currentTimeMillis
          const step = yield* Effect.sync(() => {
            const answer = attempt(now)
            if (answer !== undefined) return { answer }
            const waiter = Deferred.makeUnsafe<void>()
            waiters.push(waiter)
            return { waiter }
          })
          if ("answer" in step) return step.answer as A
          const wake = wakeAt(now)
          yield* Effect.raceFirst(Deferred.await(step.waiter), Effect.sleep(Math.max(0, wake - now)))
        }
      })

    const lockLostError = (queue: string, sessionId: string) => new SessionLockLostError({ queue, sessionId })

    const held = <A>(queue: string, sessionId: string, f: (now: number) => A | LockLost) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) => {
        const result = f(now)
        return result === lockLost ? Effect.fail(lockLostError(queue, sessionId)) : Effect.succeed(result as A)
      })

    const lockedSession = (queue: string, grant: Grant): LockedSession => {
      const { sessionId, lockToken } = grant
      const settle = (message: SessionMessage, settlement: Settlement) =>
        held(queue, sessionId, (now) => {
          const token = deliveryToken(message)
          if (token === undefined) return undefined
          const result = store.settle(queue, sessionId, lockToken, token, settlement, now)
          if (result === lockLost) return lockLost
          changed()
          return undefined
        })
      return {
        queue,
        sessionId,
        lockedUntil: Effect.map(Clock.currentTimeMillis, (now) => {
          const until = store.lockedUntil(queue, sessionId, lockToken, now)
          return until === lockLost ? now : until
        }),
        receive: (max, maxWait) =>
          Effect.gen(function*() {
            const deadline = (yield* Clock.currentTimeMillis) + Duration.toMillis(maxWait)
            const got = yield* waitFor(
              (now) => {
                const out = store.receive(queue, sessionId, lockToken, max, now)
                if (out === lockLost || out.length > 0 || now >= deadline) return out
                return undefined
              },
              (now) => {
                const until = store.lockedUntil(queue, sessionId, lockToken, now)
                return until === lockLost ? now : Math.min(deadline, until)
              }
            )
            if (got === lockLost) return yield* Effect.fail(lockLostError(queue, sessionId))
            return got.map((m): SessionMessage => new Delivered(m.message, m.sequenceNumber, m.attempts, m.enqueuedAt, m.lockToken!))
          }),
        complete: (message) => settle(message, { _tag: "complete" }),
        completeAll: (messages, options) =>
          held(queue, sessionId, (now) => {
            const settling = new Set<string>()
            for (const message of messages) {
              const token = deliveryToken(message)
              if (token !== undefined) settling.add(token)
            }
            const result = store.completeAll(
              queue,
              sessionId,
              lockToken,
              settling,
              options !== undefined && "state" in options ? { state: options.state } : undefined,
              now
            )
            if (result === lockLost) return lockLost
            if (settling.size > 0) changed()
            return undefined
          }),
        abandon: (message) => settle(message, { _tag: "abandon" }),
        deadLetter: (message, { reason, description }) => settle(message, { _tag: "deadLetter", reason, description }),
        renewLock: held(queue, sessionId, (now) => store.renew(queue, sessionId, lockToken, now)),
        getState: held(queue, sessionId, (now) => {
          const state = store.getState(queue, sessionId, lockToken, now)
          return state === lockLost ? lockLost : Option.fromUndefinedOr(state?.slice())
        }),
        setState: (state) => held(queue, sessionId, (now) => store.setState(queue, sessionId, lockToken, state, now)),
        release: Effect.flatMap(Clock.currentTimeMillis, (now) =>
          Effect.sync(() => {
            store.release(queue, sessionId, lockToken, now)
            changed()
          }))
      }
    }

    const service: SessionQueueShape = {
      send: (queue, messages) =>
        Effect.flatMap(Clock.currentTimeMillis, (now) =>
          Effect.sync(() => {
            store.send(queue, messages.map(normalize), now)
            changed()
          })),
      acceptNext: (queue, { timeout }) =>
        Effect.gen(function*() {
          const deadline = (yield* Clock.currentTimeMillis) + Duration.toMillis(timeout)
          const grant = yield* waitFor(
            (now) => store.acceptNext(queue, now) ?? (now >= deadline ? null : undefined),
            (now) => Math.min(deadline, store.nextExpiry(queue) ?? deadline)
          )
          if (grant === null) return Option.none()
          const session = lockedSession(queue, grant)
          yield* Effect.addFinalizer(() => session.release)
          return Option.some(session)
        }),
      accept: (queue, sessionId) =>
        Effect.gen(function*() {
          const now = yield* Clock.currentTimeMillis
          const grant = store.accept(queue, sessionId, now)
          if (grant === "locked") return yield* Effect.fail(new SessionLockedError({ queue, sessionId }))
          const session = lockedSession(queue, grant)
          yield* Effect.addFinalizer(() => session.release)
          return session
        }),
      depth: (queue) => Effect.map(Clock.currentTimeMillis, (now) => store.depth(queue, now)),
      deadLettered: (queue, max) =>
        Effect.map(Clock.currentTimeMillis, (now) =>
          store.deadLettered(queue, 0, max, now).map((d) => ({
            message: d.message,
            sequenceNumber: d.sequenceNumber,
            reason: d.reason,
            description: d.description
          })))
    }

    const faults = MemorySessionQueue.of({
      expireLock: (queue, sessionId) =>
        Effect.sync(() => {
          const expired = store.expire(queue, sessionId)
          changed()
          return expired
        })
    })
    return { service, faults }
  })

/** A fresh memory session queue, with its fault hooks. */
export const layer = (options: MemorySessionQueueOptions = {}): Layer.Layer<SessionQueue | MemorySessionQueue> =>
  Layer.effectContext(
    Effect.map(make(options), ({ faults, service }) =>
      Context.make(SessionQueue, SessionQueue.of(service)).pipe(Context.add(MemorySessionQueue, faults)))
  )
