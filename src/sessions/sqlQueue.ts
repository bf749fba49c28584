/**
 * SessionQueue on PostgreSQL (or PGlite) through the driver-free `SqlDatabase`: durable, shared
 * by every process that reaches the database. The statements and the locking rules that keep
 * each session in order and each lease honest are in `./sql.ts`.
 *
 * - A lock is a lease of the lock duration (Service Bus's 60 s by default), renewed by
 *   `renewLock`; a holder that dies loses its sessions when their leases end, and the next
 *   `acceptNext` (here or in another process) reclaims them: the messages the dead holder was
 *   handed go back with their delivery counted, so the new holder starts at the first one not
 *   settled.
 * - The holder's session state is read with the grant and kept with its own writes, so
 *   `getState` asks the database only once the lease has run out by the holder's clock.
 * - Ended leases are reclaimed by an acceptor that finds no free session, and at least every
 *   half lock duration (or `pollInterval`, if shorter) by each layer that accepts sessions.
 * - `maxDeliveryCount` is this layer's (the queue has none of its own): processes sharing a
 *   queue should agree on it.
 * - Waiting (`acceptNext`, `receive`) listens on `session_queue` (LISTEN/NOTIFY): a send or a
 *   release with messages left names the queue and its sessions; receivers of those sessions
 *   and as many acceptors as sessions named wake and query again. A waiter also
 *   wakes when the next lease of the queue ends (a dead holder's session comes free without a
 *   notification) and every `pollInterval`, which only matters when a notification is lost
 *   (the LISTEN connection dropped).
 *
 * The tables come with the layer (`migrate` on start, under the migrations' advisory lock), or
 * from `programs/migrate.ts` (system `sessions`).
 */
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { type Message, normalize } from "../capabilities/Message.ts"
import {
  type DeadLetteredMessage,
  defaultLockDuration,
  defaultMaxDeliveryCount,
  type LockedSession,
  SessionLockedError,
  SessionLockLostError,
  type SessionMessage,
  SessionQueue,
  SessionQueueError,
  type SessionQueueShape
} from "../capabilities/SessionQueue.ts"
import { SqlDatabase, SqlError } from "../capabilities/SqlDatabase.ts"
import { migrate } from "../sql/migrations.ts"
import * as Sql from "./sql.ts"

export interface SqlSessionQueueOptions {
  readonly lockDuration?: Duration.Input
  readonly maxDeliveryCount?: number
  /** Waiters look again at least this often without a notification; default 2 seconds. */
  readonly pollInterval?: Duration.Input
  /** Apply the `sessions` migrations on start; default true. */
  readonly migrate?: boolean
}

/** A row of `Sql.receive`: `held`, then the message's columns, all null when none came. */
interface ReceivedRow {
  readonly held: number
  readonly sequence_number: bigint | null
  readonly message_id: string | null
  readonly headers: unknown
  readonly body: Uint8Array | null
  readonly enqueued_at: Date | null
  readonly attempts: number | null
}

// Checked by hand rather than decoded with a Schema: a row comes back for every message handed
// out, and the decoder cost as much as the rest of the receive on the client.
const isReceivedRow = (row: Record<string, unknown>): boolean =>
  typeof row.held === "number" &&
  (row.sequence_number === null ||
    typeof row.sequence_number === "bigint" && typeof row.message_id === "string" && row.body instanceof Uint8Array &&
      row.enqueued_at instanceof Date && typeof row.attempts === "number")

const receivedRows = (rows: ReadonlyArray<Record<string, unknown>>): Effect.Effect<ReadonlyArray<ReceivedRow>, SqlError> => {
  for (let i = 0; i < rows.length; i++) {
    if (!isReceivedRow(rows[i]!)) {
      return Effect.fail(new SqlError({ operation: "decode rows", cause: `row ${i} of receive is not a received message: ${Object.keys(rows[i]!).join(", ")}` }))
    }
  }
  return Effect.succeed(rows as unknown as ReadonlyArray<ReceivedRow>)
}
const HeldRow = Schema.Struct({ held: Schema.Number })
const UntilRow = Schema.Struct({ locked_until: Schema.Date })
const NextLeaseRow = Schema.Struct({ until: Schema.NullOr(Schema.Date) })
const LeaseRow = Schema.Struct({
  lock_token: Schema.NullOr(Schema.String),
  locked_until: Schema.NullOr(Schema.Date),
  state: Schema.NullOr(Schema.Uint8Array)
})
const PickedRow = Schema.Struct({ session_id: Schema.String, state: Schema.NullOr(Schema.Uint8Array) })
const StateRow = Schema.Struct({ state: Schema.NullOr(Schema.Uint8Array) })
const ReleasedRow = Schema.Struct({ left: Schema.Number, stateless: Schema.Boolean })
const DepthRow = Schema.Struct({ active: Schema.Number, dead_lettered: Schema.Number })
const DeadLetterRow = Schema.Struct({
  sequence_number: Schema.BigInt,
  session_id: Schema.String,
  message_id: Schema.String,
  headers: Schema.Unknown,
  body: Schema.Uint8Array,
  reason: Schema.String,
  description: Schema.NullOr(Schema.String)
})

const hex = (bytes: Uint8Array): string => {
  let out = ""
  for (const byte of bytes) out += (byte < 16 ? "0" : "") + byte.toString(16)
  return out
}

/** Header values as stored: a JSON object of strings (anything else is dropped). */
const headersOf = (value: unknown): Record<string, string> => {
  const headers: Record<string, string> = Object.create(null)
  if (typeof value === "object" && value !== null) {
    for (const [name, text] of Object.entries(value)) if (typeof text === "string") headers[name] = text
  }
  return headers
}

/**
 * A NOTIFY payload: sessions of queue `q` got messages or came free (`s`), or, when their ids
 * would not fit in a payload (8000 bytes), how many did (`n`). A payload that is not a note
 * (another writer's) wakes every waiter of the queue it names.
 */
interface Note {
  readonly q: string
  readonly s?: ReadonlyArray<string>
  readonly n?: number
}

const noteFor = (queue: string, sessions: ReadonlyArray<string>): string => {
  const full = JSON.stringify({ q: queue, s: sessions })
  return full.length <= 7_000 ? full : JSON.stringify({ q: queue, n: sessions.length })
}

const parseNote = (payload: string): Note => {
  try {
    const note = JSON.parse(payload) as Partial<Note> | null
    if (typeof note?.q === "string") {
      if (Array.isArray(note.s) && note.s.every((id) => typeof id === "string")) return { q: note.q, s: note.s }
      if (typeof note.n === "number") return { q: note.q, n: note.n }
      return { q: note.q }
    }
  } catch {
    // Not JSON: a plain queue name.
  }
  return { q: payload }
}

export const make = (options: SqlSessionQueueOptions = {}) =>
  Effect.gen(function*() {
    const db = yield* SqlDatabase
    const lockMs = Duration.toMillis(options.lockDuration ?? defaultLockDuration)
    const maxDeliveries = options.maxDeliveryCount ?? defaultMaxDeliveryCount
    const pollMs = Duration.toMillis(options.pollInterval ?? "2 seconds")
    const fail = (operation: string, queue: string) => (cause: unknown) => new SessionQueueError({ operation, queue, cause })

    if (options.migrate !== false) {
      yield* migrate(Sql.migrations, { direction: "up", table: Sql.migrationsTable }).pipe(Effect.mapError(fail("migrate", "")))
    }

    // Waiters, woken by a NOTIFY about their queue (`Note`). A waiter registers before it
    // queries, so a notification between its query and its wait is not missed. Receivers wait
    // for their own session; acceptors for any, and a note about n sessions wakes at most n of
    // them (the longest waiting first), so a send does not set every idle slot querying at once.
    const accepting = new Map<string, Set<Deferred.Deferred<void>>>()
    const receiving = new Map<string, Map<string, Set<Deferred.Deferred<void>>>>()
    const wakeAll = (set: Set<Deferred.Deferred<void>> | undefined, limit = Infinity) => {
      if (set === undefined) return
      let woken = 0
      for (const waiter of set) {
        if (woken++ >= limit) break
        set.delete(waiter)
        Deferred.doneUnsafe(waiter, Effect.void)
      }
    }
    const wake = (note: Note) => {
      const bySession = receiving.get(note.q)
      if (note.s === undefined) for (const set of bySession?.values() ?? []) wakeAll(set)
      else for (const session of note.s) wakeAll(bySession?.get(session))
      wakeAll(accepting.get(note.q), note.s?.length ?? note.n ?? Infinity)
    }
    const waitersOf = (queue: string, session: string | undefined, create: boolean) => {
      if (session === undefined) {
        let set = accepting.get(queue)
        if (set === undefined && create) accepting.set(queue, set = new Set())
        return set
      }
      let bySession = receiving.get(queue)
      if (bySession === undefined && create) receiving.set(queue, bySession = new Map())
      let set = bySession?.get(session)
      if (set === undefined && create) bySession!.set(session, set = new Set())
      return set
    }
    const register = (queue: string, session: string | undefined) =>
      Effect.sync(() => {
        const waiter = Deferred.makeUnsafe<void>()
        waitersOf(queue, session, true)!.add(waiter)
        return waiter
      })
    const unregister = (queue: string, session: string | undefined, waiter: Deferred.Deferred<void>) =>
      Effect.sync(() => {
        const set = waitersOf(queue, session, false)
        set?.delete(waiter)
        if (set?.size !== 0) return
        if (session === undefined) accepting.delete(queue)
        else {
          const bySession = receiving.get(queue)!
          bySession.delete(session)
          if (bySession.size === 0) receiving.delete(queue)
        }
      })

    // One LISTEN for the layer, waited for (`subscribe` succeeds once the session listens), so
    // the first wait cannot miss a send made after the layer was built; if it never comes up (or
    // drops later), waiters still poll.
    const listening = yield* Deferred.make<void>()
    yield* Effect.scoped(
      Effect.gen(function*() {
        const notes = yield* db.subscribe(Sql.channel)
        Deferred.doneUnsafe(listening, Effect.void)
        yield* Stream.runForEach(notes, (payload) => Effect.sync(() => wake(parseNote(payload))))
      })
    ).pipe(
      Effect.tapCause((cause) => Effect.logWarning("session queue LISTEN stopped; waiters poll until it is back", cause)),
      Effect.retry(Schedule.spaced(Duration.millis(pollMs))),
      Effect.ignore,
      Effect.forkScoped
    )
    yield* Deferred.await(listening).pipe(Effect.timeout("2 seconds"), Effect.ignore)
    if (!Deferred.isDoneUnsafe(listening)) {
      yield* Effect.logWarning(`session queue LISTEN on "${Sql.channel}" not confirmed; waiters poll every ${pollMs} ms`)
    }

    type Step<A> = { readonly done: A } | { readonly wakeAt: number }

    /** Runs `attempt` until it is done, sleeping between tries until a wake-up, `wakeAt` or the poll interval. */
    const waitFor = <A, E, R>(
      queue: string,
      session: string | undefined,
      attempt: (now: number) => Effect.Effect<Step<A>, E, R>
    ) =>
      Effect.gen(function*() {
        while (true) {
          const waiter = yield* register(queue, session)
          const step = yield* Effect.flatMap(Clock.currentTimeMillis, attempt).pipe(
            Effect.onError(() => unregister(queue, session, waiter))
          )
          if ("done" in step) {
            yield* unregister(queue, session, waiter)
            return step.done
          }
          const now = yield* Clock.currentTimeMillis
          const sleep = Math.max(0, Math.min(step.wakeAt, now + pollMs) - now)
          yield* Effect.raceFirst(Deferred.await(waiter), Effect.sleep(sleep)).pipe(
            Effect.ensuring(unregister(queue, session, waiter))
          )
        }
      })

    const lockLost = (queue: string, sessionId: string) => new SessionLockLostError({ queue, sessionId })

    const lockedSession = (queue: string, sessionId: string, token: string, grantedUntil: number, grantedState: Uint8Array | null): LockedSession => {
      let until = grantedUntil
      // The holder's copy of the session state: read with the grant, then what it wrote itself.
      let state = Option.fromNullishOr(grantedState)
      const heldParams = (now: number) => [queue, sessionId, token, new Date(now)]
      const settle = (operation: string, statement: string, message: SessionMessage, extra: ReadonlyArray<unknown>) =>
        Effect.gen(function*() {
          const now = yield* Clock.currentTimeMillis
          const [row] = yield* db.queryAs(HeldRow, statement, [...heldParams(now), message.sequenceNumber, message.attempt, ...extra])
            .pipe(Effect.mapError(fail(operation, queue)))
          if (row === undefined || row.held === 0) return yield* Effect.fail(lockLost(queue, sessionId))
        })
      const receiveOnce = (max: number, now: number) =>
        db.query(Sql.receive, [...heldParams(now), max]).pipe(
          Effect.flatMap(receivedRows),
          // Not interruptible: an interrupted receive still runs on the server, and a release
          // racing it (the scope closing on shutdown) would take its snapshot before the
          // receive commits and leave the messages it hands out marked handed out to nobody.
          Effect.uninterruptible,
          Effect.mapError(fail("receive", queue)),
          Effect.flatMap((rows) => {
            if (rows.length === 0 || rows[0]!.held === 0) return Effect.fail(lockLost(queue, sessionId))
            const out: Array<SessionMessage> = []
            for (const row of rows) {
              if (row.sequence_number === null) continue
              const message: Message = {
                id: row.message_id!,
                key: sessionId,
                headers: headersOf(row.headers),
                body: row.body!
              }
              out.push({
                message,
                sequenceNumber: Number(row.sequence_number),
                attempt: row.attempts!,
                enqueuedAt: row.enqueued_at!.getTime()
              })
            }
            // RETURNING keeps no order.
            return Effect.succeed(out.sort((a, b) => a.sequenceNumber - b.sequenceNumber))
          })
        )
      return {
        queue,
        sessionId,
        // From what this holder was granted or renewed to, as the Service Bus SDK answers it:
        // the lease changes only through this holder until it ends, and asking the database
        // cost a round trip per session (a lock taken away early shows at the next call).
        lockedUntil: Effect.map(Clock.currentTimeMillis, (now) => until <= now ? now : until),
        receive: (max, maxWait) =>
          Effect.gen(function*() {
            const deadline = (yield* Clock.currentTimeMillis) + Duration.toMillis(maxWait)
            return yield* waitFor(queue, sessionId, (now) =>
              Effect.map(receiveOnce(max, now), (got): Step<ReadonlyArray<SessionMessage>> =>
                got.length > 0 || now >= deadline ? { done: got } : { wakeAt: Math.min(deadline, until) }))
          }),
        complete: (message) => settle("complete", Sql.complete, message, []),
        completeAll: (messages, options) =>
          Effect.gen(function*() {
            const setting = options !== undefined && "state" in options
            if (messages.length === 0 && !setting) return
            const now = yield* Clock.currentTimeMillis
            const [row] = yield* db.queryAs(HeldRow, Sql.completeAll, [
              ...heldParams(now),
              messages.map((m) => String(m.sequenceNumber)),
              messages.map((m) => m.attempt),
              setting,
              setting ? options.state ?? null : null
            ]).pipe(Effect.mapError(fail("complete", queue)))
            if (row === undefined || row.held === 0) return yield* Effect.fail(lockLost(queue, sessionId))
            if (setting) state = Option.fromNullishOr(options.state?.slice())
          }),
        abandon: (message) => settle("abandon", Sql.abandon, message, [maxDeliveries]),
        deadLetter: (message, { description, reason }) =>
          settle("dead-letter", Sql.deadLetter, message, [reason, description ?? null]),
        renewLock: Effect.gen(function*() {
          const now = yield* Clock.currentTimeMillis
          const rows = yield* db.queryAs(UntilRow, Sql.renew, [...heldParams(now), new Date(now + lockMs)]).pipe(
            Effect.mapError(fail("renew lock", queue))
          )
          if (rows.length === 0) return yield* Effect.fail(lockLost(queue, sessionId))
          until = rows[0]!.locked_until.getTime()
          return until
        }),
        // From the holder's copy while the lease has not run out: only the holder writes the state,
        // and reading it cost a round trip per session (as for `lockedUntil`, a lock taken away
        // early shows at the next call that writes or receives).
        getState: Effect.gen(function*() {
          const now = yield* Clock.currentTimeMillis
          if (until > now) return Option.map(state, (bytes) => bytes.slice())
          const rows = yield* db.queryAs(StateRow, Sql.getState, heldParams(now)).pipe(Effect.mapError(fail("get session state", queue)))
          if (rows.length === 0) return yield* Effect.fail(lockLost(queue, sessionId))
          return Option.fromNullishOr(rows[0]!.state)
        }),
        setState: (next) =>
          Effect.gen(function*() {
            const now = yield* Clock.currentTimeMillis
            const rows = yield* db.query(Sql.setState, [...heldParams(now), next ?? null]).pipe(
              Effect.mapError(fail("set session state", queue))
            )
            if (rows.length === 0) return yield* Effect.fail(lockLost(queue, sessionId))
            state = Option.fromNullishOr(next?.slice())
          }),
        // Not one transaction: the release checks the token by itself and a notification is
        // only a hint, so each commits alone (a transaction costs two more round trips per
        // session). Forgetting an empty session does take one: its row is locked first, so the
        // emptiness check cannot miss messages a sender committed while it waited.
        release: Effect.gen(function*() {
          // Given up: calls after this ask the database, which answers that the lock is lost.
          until = 0
          const [row] = yield* db.queryAs(ReleasedRow, Sql.release, [queue, sessionId, token, maxDeliveries])
          if (row === undefined) return
          if (row.left > 0) yield* db.query(Sql.notify, [noteFor(queue, [sessionId])])
          else if (row.stateless) {
            yield* db.transaction((tx) =>
              Effect.andThen(tx.query(Sql.lockUnlockedSession, [queue, sessionId]), tx.query(Sql.forgetIfEmpty, [queue, sessionId]))
            )
          }
        }).pipe(
          // Releasing is best effort: a lock that cannot be given back ends with its lease.
          Effect.catch((error) => Effect.logWarning(`releasing session "${sessionId}" on "${queue}" failed; its lease will end`, error))
        )
      }
    }

    /** Locks `sessionId` (already locked by `tx` for the transaction) for a new holder. */
    const grant = (
      tx: { readonly query: SqlDatabase["Service"]["query"] },
      queue: string,
      sessionId: string,
      now: number,
      state: Uint8Array | null
    ) =>
      Effect.gen(function*() {
        const token = crypto.randomUUID()
        const until = now + lockMs
        yield* tx.query(Sql.lockSession, [queue, sessionId, token, new Date(until), new Date(now)])
        return { sessionId, token, until, state }
      })

    interface Granted {
      readonly sessionId: string
      readonly token: string
      readonly until: number
      readonly state: Uint8Array | null
    }

    const holding = (queue: string, granted: Granted) =>
      Effect.gen(function*() {
        const session = lockedSession(queue, granted.sessionId, granted.token, granted.until, granted.state)
        yield* Effect.addFinalizer(() => session.release)
        return session
      })

    // When this layer last reclaimed the leases of each queue that ran out (Clock time).
    const reclaimedAt = new Map<string, number>()
    const reclaimEvery = Math.min(pollMs, lockMs / 2)
    /** Ends the queue's leases that ran out; how many it ended. */
    const reclaim = (queue: string, now: number) =>
      db.query(Sql.reclaim, [queue, new Date(now), maxDeliveries, null]).pipe(
        Effect.map((rows) => {
          reclaimedAt.set(queue, now)
          return rows.length
        })
      )

    const service: SessionQueueShape = {
      send: (queue, messages) => {
        if (messages.length === 0) return Effect.void
        const normalized = messages.map(normalize)
        const sessions = [...new Set(normalized.map((m) => m.key))].sort()
        return Effect.flatMap(Clock.currentTimeMillis, (now) =>
          db.transaction((tx) =>
            Effect.gen(function*() {
              yield* tx.query(Sql.lockSessionsForSend, [queue, sessions])
              yield* tx.query(Sql.insertMessages, [
                queue,
                normalized.map((m) => m.key),
                normalized.map((m) => m.id),
                normalized.map((m) => JSON.stringify(m.headers)),
                normalized.map((m) => hex(m.body)),
                new Date(now)
              ])
              yield* tx.query(Sql.notify, [noteFor(queue, sessions)])
            })
          )).pipe(Effect.mapError(fail("send", queue)))
      },
      acceptNext: (queue, { timeout }) =>
        Effect.gen(function*() {
          const deadline = (yield* Clock.currentTimeMillis) + Duration.toMillis(timeout)
          const pick = (now: number) =>
            Effect.gen(function*() {
              const token = crypto.randomUUID()
              const until = now + lockMs
              const [picked] = yield* db.queryAs(PickedRow, Sql.pickAndLockSession, [queue, token, new Date(until), new Date(now)])
              return picked === undefined ? undefined : { sessionId: picked.session_id, token, until, state: picked.state }
            })
          // No transaction: the reclaim commits on its own, and the pick locks and grants in one
          // statement (a transaction would add two round trips per accept). Leases that ran out
          // are reclaimed when no session is free, and at least every `reclaimEvery` while
          // sessions are: a reclaim before every pick cost a statement per accept.
          const session = yield* waitFor(queue, undefined, (now) =>
            (Effect.gen(function*() {
              const due = now - (reclaimedAt.get(queue) ?? -Infinity) >= reclaimEvery
              if (due) yield* reclaim(queue, now)
              let granted = yield* pick(now)
              if (granted === undefined && !due && (yield* reclaim(queue, now)) > 0) granted = yield* pick(now)
              if (granted !== undefined) return { done: granted }
              if (now >= deadline) return { done: undefined }
              const [next] = yield* db.queryAs(NextLeaseRow, Sql.nextLeaseEnd, [queue, new Date(now)])
              return { wakeAt: Math.min(deadline, next?.until?.getTime() ?? deadline) }
            }) as Effect.Effect<Step<Granted | undefined>, SqlError>).pipe(
              Effect.mapError(fail("accept next session", queue)),
              Effect.flatMap((step): Effect.Effect<Step<LockedSession | undefined>, never, Scope.Scope> =>
                "done" in step && step.done !== undefined
                  ? Effect.map(holding(queue, step.done), (done) => ({ done }))
                  : Effect.succeed(step as Step<undefined>)
              ),
              // A lock granted is released by the scope even if a shutdown comes right after the commit.
              Effect.uninterruptible
            ))
          return Option.fromUndefinedOr(session)
        }),
      accept: (queue, sessionId) =>
        Effect.gen(function*() {
          const now = yield* Clock.currentTimeMillis
          const session = yield* db.transaction((tx) =>
            Effect.gen(function*() {
              yield* tx.query(Sql.ensureSession, [queue, sessionId])
              // Locked first, so the reclaim below cannot skip it: a lease that ran out is ended here.
              const [lease] = yield* tx.queryAs(LeaseRow, Sql.sessionLease, [queue, sessionId])
              if (lease?.lock_token != null && lease.locked_until !== null && lease.locked_until.getTime() > now) return undefined
              yield* tx.query(Sql.reclaim, [queue, new Date(now), maxDeliveries, sessionId])
              return yield* grant(tx, queue, sessionId, now, lease?.state ?? null)
            })
          ).pipe(
            Effect.mapError(fail("accept session", queue)),
            Effect.flatMap((granted) => granted === undefined ? Effect.succeed(undefined) : holding(queue, granted)),
            Effect.uninterruptible
          )
          if (session === undefined) return yield* Effect.fail(new SessionLockedError({ queue, sessionId }))
          return session
        }),
      depth: (queue) =>
        db.queryAs(DepthRow, Sql.depth, [queue]).pipe(
          Effect.map(([row]) => ({ active: row?.active ?? 0, deadLettered: row?.dead_lettered ?? 0 })),
          Effect.mapError(fail("depth", queue))
        ),
      deadLettered: (queue, max) =>
        db.queryAs(DeadLetterRow, Sql.deadLettered, [queue, max]).pipe(
          Effect.map((rows) =>
            rows.map((row): DeadLetteredMessage => ({
              message: { id: row.message_id, key: row.session_id, headers: headersOf(row.headers), body: row.body },
              sequenceNumber: Number(row.sequence_number),
              reason: row.reason,
              description: row.description ?? undefined
            }))
          ),
          Effect.mapError(fail("read dead letters", queue))
        )
    }
    return service
  })

/** SessionQueue on the SqlDatabase given. */
export const layer = (options: SqlSessionQueueOptions = {}): Layer.Layer<SessionQueue, SessionQueueError, SqlDatabase> =>
  Layer.effect(SessionQueue, Effect.map(make(options), (service) => SessionQueue.of(service)))
