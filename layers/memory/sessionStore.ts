/**
 * The state of session queues as a plain synchronous state machine: queues, sessions, their
 * locks, each message's deliveries and the dead-letter queue. Time comes in as `now` (epoch
 * milliseconds) on every call, so the memory SessionQueue drives it from Effect's Clock (and
 * TestClock) and the Service Bus test server from the wall clock, with the same rules.
 *
 * Locks are checked lazily: a lock whose time has passed is ended (its unsettled messages
 * returned) by the first call that looks at the session. Holders prove who they are with the
 * session lock token they were given, so a holder whose lock ended gets `lockLost` even after
 * another receiver locked the session again.
 */
import type { Message } from "../../src/capabilities/Message.ts"
import { maxDeliveryCountExceeded } from "../../src/capabilities/SessionQueue.ts"

export interface StoredMessage {
  readonly message: Message
  readonly sequenceNumber: number
  readonly enqueuedAt: number
  /** Times handed out so far (the current delivery included while it is out). */
  attempts: number
  /** Set while the message is handed out and not settled: the token that settles it. */
  lockToken: string | undefined
}

export interface DeadLetter {
  readonly message: Message
  readonly sequenceNumber: number
  readonly enqueuedAt: number
  readonly attempts: number
  readonly reason: string
  readonly description: string | undefined
}

interface Lock {
  readonly token: string
  until: number
}

interface SessionRecord {
  readonly id: string
  /** In sequence order; handed-out messages stay in place until settled. */
  readonly messages: Array<StoredMessage>
  lock: Lock | undefined
  state: Uint8Array | undefined
}

interface QueueRecord {
  readonly sessions: Map<string, SessionRecord>
  readonly deadLetters: Array<DeadLetter>
}

export interface Grant {
  readonly sessionId: string
  readonly lockToken: string
  readonly lockedUntil: number
}

export const lockLost = "lock-lost" as const
export type LockLost = typeof lockLost

export type Settlement =
  | { readonly _tag: "complete" }
  | { readonly _tag: "abandon" }
  | { readonly _tag: "deadLetter"; readonly reason: string; readonly description: string | undefined }

export interface StoreOptions {
  readonly lockDurationMs: number
  readonly maxDeliveryCount: number
  /**
   * Lock tokens. By default a counter, unique within the store, which is all the memory queue
   * needs (a UUID per message handed out showed in the session bench profile); the Service Bus
   * test server gives GUIDs, since it carries them as 16-byte delivery tags.
   */
  readonly newToken?: () => string
}

export class SessionStore {
  private readonly queues = new Map<string, QueueRecord>()
  private sequence = 0
  private readonly newToken: () => string

  constructor(readonly options: StoreOptions) {
    let issued = 0
    this.newToken = options.newToken ?? (() => String(++issued))
  }

  send(queue: string, messages: ReadonlyArray<Message>, now: number): ReadonlyArray<number> {
    const q = this.queue(queue)
    return messages.map((message) => {
      let session = q.sessions.get(message.key)
      if (session === undefined) {
        session = { id: message.key, messages: [], lock: undefined, state: undefined }
        q.sessions.set(message.key, session)
      }
      const sequenceNumber = ++this.sequence
      session.messages.push({ message, sequenceNumber, enqueuedAt: now, attempts: 0, lockToken: undefined })
      return sequenceNumber
    })
  }

  /** Locks the first free session that has a message to hand out, or answers undefined. */
  acceptNext(queue: string, now: number): Grant | undefined {
    const q = this.queue(queue)
    for (const session of q.sessions.values()) {
      this.checkLock(q, session, now)
      if (session.lock === undefined && session.messages.some((m) => m.lockToken === undefined)) {
        // Moved to the end, so sessions take turns rather than the first ones starving the rest.
        q.sessions.delete(session.id)
        q.sessions.set(session.id, session)
        return this.lock(session, now)
      }
    }
    return undefined
  }

  /** Locks a named session, empty or not; "locked" when another holder has it. */
  accept(queue: string, sessionId: string, now: number): Grant | "locked" {
    const q = this.queue(queue)
    let session = q.sessions.get(sessionId)
    if (session === undefined) {
      session = { id: sessionId, messages: [], lock: undefined, state: undefined }
      q.sessions.set(sessionId, session)
    }
    this.checkLock(q, session, now)
    return session.lock === undefined ? this.lock(session, now) : "locked"
  }

  /** Hands out up to `max` of the session's next messages, each with a fresh lock token. */
  receive(queue: string, sessionId: string, lockToken: string, max: number, now: number): ReadonlyArray<StoredMessage> | LockLost {
    const session = this.held(queue, sessionId, lockToken, now)
    if (session === lockLost) return lockLost
    const out: Array<StoredMessage> = []
    for (const m of session.messages) {
      if (out.length >= max) break
      if (m.lockToken !== undefined) continue
      m.attempts++
      m.lockToken = this.newToken()
      out.push(m)
    }
    return out
  }

  /** "settled" or, for a message no longer out under that token, "already-settled". */
  settle(
    queue: string,
    sessionId: string,
    lockToken: string,
    messageLockToken: string,
    settlement: Settlement,
    now: number
  ): "settled" | "already-settled" | LockLost {
    const q = this.queue(queue)
    const session = this.held(queue, sessionId, lockToken, now)
    if (session === lockLost) return lockLost
    const index = session.messages.findIndex((m) => m.lockToken === messageLockToken)
    if (index < 0) return "already-settled"
    const m = session.messages[index]!
    switch (settlement._tag) {
      case "complete":
        session.messages.splice(index, 1)
        break
      case "abandon":
        this.giveBack(q, session, m)
        break
      case "deadLetter":
        session.messages.splice(index, 1)
        this.deadLetter(q, m, settlement.reason, settlement.description)
        break
    }
    this.forgetIfEmpty(q, session)
    return "settled"
  }

  /**
   * Completes the messages out under `messageLockTokens` (others were settled already) and, when
   * `setState`, sets the state: all of it or, the lock lost, none.
   */
  completeAll(
    queue: string,
    sessionId: string,
    lockToken: string,
    messageLockTokens: ReadonlySet<string>,
    setState: { readonly state: Uint8Array | undefined } | undefined,
    now: number
  ): void | LockLost {
    const q = this.queue(queue)
    const session = this.held(queue, sessionId, lockToken, now)
    if (session === lockLost) return lockLost
    if (setState !== undefined) session.state = setState.state === undefined ? undefined : setState.state.slice()
    if (messageLockTokens.size > 0) {
      // The messages completed are usually the session's first ones: the scan stops once all are found.
      const messages = session.messages
      let kept = 0
      let removed = 0
      let i = 0
      for (; i < messages.length && removed < messageLockTokens.size; i++) {
        const m = messages[i]!
        if (m.lockToken !== undefined && messageLockTokens.has(m.lockToken)) removed++
        else messages[kept++] = m
      }
      if (removed > 0) messages.splice(kept, i - kept)
    }
    this.forgetIfEmpty(q, session)
  }

  /** The new end of the lock. */
  renew(queue: string, sessionId: string, lockToken: string, now: number): number | LockLost {
    const session = this.held(queue, sessionId, lockToken, now)
    if (session === lockLost) return lockLost
    session.lock!.until = now + this.options.lockDurationMs
    return session.lock!.until
  }

  /** Ends the lock if `lockToken` still holds it; unsettled messages return. */
  release(queue: string, sessionId: string, lockToken: string, now: number): void {
    const q = this.queue(queue)
    const session = this.held(queue, sessionId, lockToken, now)
    if (session !== lockLost) this.unlock(q, session)
  }

  /** Fault hook: ends the session's lock now, as if it had expired. False when it was not locked. */
  expire(queue: string, sessionId: string): boolean {
    const q = this.queue(queue)
    const session = q.sessions.get(sessionId)
    if (session?.lock === undefined) return false
    this.unlock(q, session)
    return true
  }

  getState(queue: string, sessionId: string, lockToken: string, now: number): Uint8Array | undefined | LockLost {
    const session = this.held(queue, sessionId, lockToken, now)
    return session === lockLost ? lockLost : session.state
  }

  setState(queue: string, sessionId: string, lockToken: string, state: Uint8Array | undefined, now: number): void | LockLost {
    const session = this.held(queue, sessionId, lockToken, now)
    if (session === lockLost) return lockLost
    session.state = state === undefined ? undefined : state.slice()
  }

  /** The lock's end while `lockToken` holds it. */
  lockedUntil(queue: string, sessionId: string, lockToken: string, now: number): number | LockLost {
    const session = this.held(queue, sessionId, lockToken, now)
    return session === lockLost ? lockLost : session.lock!.until
  }

  depth(queue: string, now: number): { readonly active: number; readonly deadLettered: number } {
    const q = this.queue(queue)
    let active = 0
    for (const session of [...q.sessions.values()]) {
      this.checkLock(q, session, now)
      active += session.messages.length
    }
    return { active, deadLettered: q.deadLetters.length }
  }

  /** Messages of a session from `fromSequence` on, without handing them out. */
  peek(queue: string, sessionId: string, fromSequence: number, max: number, now: number): ReadonlyArray<StoredMessage> {
    const q = this.queue(queue)
    const session = q.sessions.get(sessionId)
    if (session === undefined) return []
    this.checkLock(q, session, now)
    return session.messages.filter((m) => m.sequenceNumber >= fromSequence).slice(0, max)
  }

  deadLettered(queue: string, fromSequence: number, max: number, now: number): ReadonlyArray<DeadLetter> {
    this.depth(queue, now)
    return this.queue(queue).deadLetters.filter((d) => d.sequenceNumber >= fromSequence).slice(0, max)
  }

  /** The earliest end of a lock in the queue, for waiting on sessions to come free. */
  nextExpiry(queue: string): number | undefined {
    let next: number | undefined
    for (const session of this.queue(queue).sessions.values()) {
      if (session.lock !== undefined && (next === undefined || session.lock.until < next)) next = session.lock.until
    }
    return next
  }

  private queue(name: string): QueueRecord {
    let q = this.queues.get(name)
    if (q === undefined) {
      q = { sessions: new Map(), deadLetters: [] }
      this.queues.set(name, q)
    }
    return q
  }

  private held(queue: string, sessionId: string, lockToken: string, now: number): SessionRecord | LockLost {
    const q = this.queue(queue)
    const session = q.sessions.get(sessionId)
    if (session === undefined) return lockLost
    this.checkLock(q, session, now)
    return session.lock?.token === lockToken ? session : lockLost
  }

  private lock(session: SessionRecord, now: number): Grant {
    session.lock = { token: this.newToken(), until: now + this.options.lockDurationMs }
    return { sessionId: session.id, lockToken: session.lock.token, lockedUntil: session.lock.until }
  }

  private checkLock(q: QueueRecord, session: SessionRecord, now: number): void {
    if (session.lock !== undefined && session.lock.until <= now) this.unlock(q, session)
  }

  private unlock(q: QueueRecord, session: SessionRecord): void {
    session.lock = undefined
    for (const m of [...session.messages]) if (m.lockToken !== undefined) this.giveBack(q, session, m)
    this.forgetIfEmpty(q, session)
  }

  /** Back to its place in the session, or to the dead-letter queue once out of deliveries. */
  private giveBack(q: QueueRecord, session: SessionRecord, m: StoredMessage): void {
    m.lockToken = undefined
    if (m.attempts < this.options.maxDeliveryCount) return
    session.messages.splice(session.messages.indexOf(m), 1)
    this.deadLetter(q, m, maxDeliveryCountExceeded, `Message could not be consumed after ${m.attempts} delivery attempts.`)
  }

  private deadLetter(q: QueueRecord, m: StoredMessage, reason: string, description: string | undefined): void {
    q.deadLetters.push({
      message: m.message,
      sequenceNumber: m.sequenceNumber,
      enqueuedAt: m.enqueuedAt,
      attempts: m.attempts,
      reason,
      description
    })
  }

  private forgetIfEmpty(q: QueueRecord, session: SessionRecord): void {
    if (session.messages.length === 0 && session.lock === undefined && session.state === undefined) q.sessions.delete(session.id)
  }
}
