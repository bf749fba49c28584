/**
 * SessionQueue: a queue whose messages carry a session id (the message `key`), taken one locked
 * session at a time, each session's messages strictly in the order they were sent.
 *
 * Contract (every backend; `test/contract/sessionQueue.ts` checks it):
 * - `send` succeeds once the queue holds every message of the call. Messages of one session keep
 *   the order they were sent in, within a call and across calls.
 * - A session is locked by at most one receiver at a time. `acceptNext` locks a session that has
 *   messages and that nobody holds, waiting up to `timeout` for one; `accept` locks a named
 *   session (with or without messages) or fails with `SessionLockedError` when another holds it.
 *   The lock lasts the backend's lock duration from `accept` or the last `renewLock`; closing
 *   the accepting scope or `release` gives it up.
 * - `receive` hands out the session's next messages in order, each once until it is settled or
 *   returned. Each received message is settled once: the first of `complete`, `abandon` and
 *   `deadLetter` counts, a later one on the same message is a no-op.
 * - `abandon` returns the message to its place: it is the next one handed out again, with
 *   `attempt + 1`. Once a message was handed out `maxDeliveryCount` times, returning it
 *   dead-letters it with reason `MaxDeliveryCountExceeded`. Messages received and not settled
 *   when the lock ends (release, scope close, expiry) return the same way.
 * - `deadLetter` moves the message to the queue's dead-letter queue with the reason (and an
 *   optional description) readable there by `deadLettered`.
 * - Once the lock is lost (expired, taken by the server), every operation on the session fails
 *   with `SessionLockLostError` and settles nothing: its unsettled messages go to the next
 *   receiver that accepts the session. (PostgreSQL answers `lockedUntil` and `getState` from the
 *   holder's own copy until the lease's end by the holder's clock: there a lease ends only by
 *   running out, and a lock taken away before that shows at the next call that receives or writes.)
 * - Session state is a byte string kept with the session (e.g. the last processed sequence
 *   number), read and written only by the lock holder.
 * - `completeAll` completes messages and, when asked, sets the session state as one step: on
 *   memory and PostgreSQL atomically (one transaction: all or, lock lost, nothing), so a batch of
 *   one session costs one commit and the state never runs ahead of or behind the completions.
 *   Service Bus has no such operation: there it sets the state, then completes each message; a
 *   lock lost in between leaves the state set and the messages to be redelivered (a handler
 *   keeping a checkpoint in the state then sees them as already processed).
 * - `depth` counts messages not yet completed or dead-lettered (`active`, received ones included,
 *   as Service Bus counts them) and those in the dead-letter queue.
 *
 * Order across a batch is the caller's: when a handler fails on one message of a batch, the
 * later messages it holds must be abandoned too (or not processed) to keep the session's order.
 */
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import type * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import type * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import { describeCause } from "./describeCause.ts"
import type { Message, OutgoingMessage } from "./Message.ts"

/** Service Bus's defaults, which every backend takes as its own. */
export const defaultMaxDeliveryCount = 10
export const defaultLockDuration: Duration.Input = "60 seconds"

/** The dead-letter reason of a message returned `maxDeliveryCount` times. */
export const maxDeliveryCountExceeded = "MaxDeliveryCountExceeded"

/** A message taken from a locked session; `message.key` is the session id. */
export interface SessionMessage {
  readonly message: Message
  /** The queue's order: grows with each message sent to the queue. */
  readonly sequenceNumber: number
  /** 1 on first delivery, +1 each time the message came back unsettled. */
  readonly attempt: number
  /** When the queue took the message, epoch milliseconds. */
  readonly enqueuedAt: number
}

/** A message in the dead-letter queue, with why it is there. */
export interface DeadLetteredMessage {
  readonly message: Message
  readonly sequenceNumber: number
  readonly reason: string
  readonly description: string | undefined
}

export interface QueueDepth {
  readonly active: number
  readonly deadLettered: number
}

export class SessionQueueError extends Data.TaggedError("SessionQueueError")<{
  readonly operation: string
  readonly queue: string
  readonly cause: unknown
}> {
  override get message() {
    return `${this.operation} on "${this.queue}" failed: ${describeCause(this.cause)}`
  }
}

/** The session's lock ended (expired or taken away); nothing was settled by the failed call. */
export class SessionLockLostError extends Data.TaggedError("SessionLockLostError")<{
  readonly queue: string
  readonly sessionId: string
}> {
  override get message() {
    return `the lock of session "${this.sessionId}" on "${this.queue}" was lost`
  }
}

/** `accept` of a session another receiver holds. */
export class SessionLockedError extends Data.TaggedError("SessionLockedError")<{
  readonly queue: string
  readonly sessionId: string
}> {
  override get message() {
    return `session "${this.sessionId}" on "${this.queue}" is locked by another receiver`
  }
}

export type SessionError = SessionQueueError | SessionLockLostError

/** What `completeAll` does besides completing: `state` present sets it (`undefined` clears it). */
export interface CompleteOptions {
  readonly state?: Uint8Array | undefined
}

export interface DeadLetterReason {
  readonly reason: string
  readonly description?: string
}

/** A session this receiver holds the lock of. */
export interface LockedSession {
  readonly queue: string
  readonly sessionId: string
  /** When the lock ends unless renewed, epoch milliseconds. */
  readonly lockedUntil: Effect.Effect<number>
  /**
   * Up to `max` of the session's next messages, in order. Waits up to `maxWait` for the first;
   * an empty array when none came.
   */
  readonly receive: (max: number, maxWait: Duration.Input) => Effect.Effect<ReadonlyArray<SessionMessage>, SessionError>
  readonly complete: (message: SessionMessage) => Effect.Effect<void, SessionError>
  /**
   * Completes every message given (settled ones are skipped, as for `complete`) and sets the
   * session state when `options` has `state`, in one step; see the contract above for which
   * backends make it atomic.
   */
  readonly completeAll: (
    messages: ReadonlyArray<SessionMessage>,
    options?: CompleteOptions
  ) => Effect.Effect<void, SessionError>
  readonly abandon: (message: SessionMessage) => Effect.Effect<void, SessionError>
  readonly deadLetter: (message: SessionMessage, reason: DeadLetterReason) => Effect.Effect<void, SessionError>
  /** Extends the lock by the lock duration from now; answers the new `lockedUntil`. */
  readonly renewLock: Effect.Effect<number, SessionError>
  readonly getState: Effect.Effect<Option.Option<Uint8Array>, SessionError>
  /** `undefined` clears the state. */
  readonly setState: (state: Uint8Array | undefined) => Effect.Effect<void, SessionError>
  /** Gives the lock up; idempotent. Unsettled messages return as if abandoned. */
  readonly release: Effect.Effect<void>
}

export interface SessionQueueShape {
  readonly send: (queue: string, messages: ReadonlyArray<OutgoingMessage>) => Effect.Effect<void, SessionQueueError>
  /** The next free session with messages, or none when `timeout` passed without one. */
  readonly acceptNext: (
    queue: string,
    options: { readonly timeout: Duration.Input }
  ) => Effect.Effect<Option.Option<LockedSession>, SessionQueueError, Scope.Scope>
  readonly accept: (
    queue: string,
    sessionId: string
  ) => Effect.Effect<LockedSession, SessionQueueError | SessionLockedError, Scope.Scope>
  readonly depth: (queue: string) => Effect.Effect<QueueDepth, SessionQueueError>
  /** The first `max` messages of the dead-letter queue, without taking them. */
  readonly deadLettered: (queue: string, max: number) => Effect.Effect<ReadonlyArray<DeadLetteredMessage>, SessionQueueError>
}

export class SessionQueue extends Context.Service<SessionQueue, SessionQueueShape>()("queueworks/SessionQueue") {}
