/**
 * The session queue contract on the SQL backend over a real PostgreSQL server, in a schema of
 * its own; and what only a server shows: holders on separate connection pools (as separate
 * processes would be) contending for one queue's sessions, and a holder that stops (dies) losing
 * its session when the lease ends. Waiters poll once a minute only, so the cases that wait pass
 * only if LISTEN/NOTIFY (or the end of a lease) wakes them.
 */
import { afterAll, expect, test } from "bun:test"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Scope from "effect/Scope"
import * as PostgresSql from "../../layers/postgres/sql.ts"
import { bodyText } from "../../src/capabilities/Message.ts"
import { SessionQueue, type SessionMessage } from "../../src/capabilities/SessionQueue.ts"
import { SqlDatabase } from "../../src/capabilities/SqlDatabase.ts"
import * as Sql from "../../src/sessions/sql.ts"
import * as SqlSessionQueue from "../../src/sessions/sqlQueue.ts"
import { sessionQueueContract } from "../contract/sessionQueue.ts"
import { dropPostgresSchema, freshName, freshSchema, postgresUrl, probePostgres, requireServer } from "../support/servers.ts"

const url = postgresUrl()

if (await requireServer("PostgreSQL", probePostgres(url))) {
  const schema = freshSchema()
  afterAll(() => dropPostgresSchema(url, schema))
  const database = () => PostgresSql.layer({ url, schema, max: 4 })

  sessionQueueContract(
    "PostgreSQL backend on PostgreSQL",
    () => SqlSessionQueue.layer({ maxDeliveryCount: 3, pollInterval: "1 minute" }).pipe(Layer.provideMerge(database())),
    {
      maxDeliveryCount: 3,
      loseLock: (queue, sessionId) => SqlDatabase.use((db) => db.query(Sql.expireLease, [queue, sessionId]))
    }
  )

  test("PostgreSQL backend: holders on two pools share one queue's sessions; each message is handed out once, in order per session", () =>
    Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const a = yield* Layer.build(SqlSessionQueue.layer().pipe(Layer.provide(database())))
      const b = yield* Layer.build(SqlSessionQueue.layer().pipe(Layer.provide(database())))
      const queue = freshName("sq")
      const sessions = 20
      const perSession = 25
      const sender = Context.get(a, SessionQueue)
      for (let seq = 1; seq <= perSession; seq++) {
        yield* sender.send(queue, Array.from({ length: sessions }, (_, s) => ({ key: `s${s}`, body: String(seq) })))
      }
      const seen = new Map<string, Array<number>>()
      // Four slots per pool; each takes sessions until none is left, completing as it goes.
      const slot = (q: SessionQueue["Service"]) =>
        Effect.gen(function*() {
          while (true) {
            const taken = yield* Effect.scoped(Effect.gen(function*() {
              const next = yield* q.acceptNext(queue, { timeout: "300 millis" })
              if (Option.isNone(next)) return false
              const session = next.value
              while (true) {
                const got: ReadonlyArray<SessionMessage> = yield* session.receive(7, "100 millis")
                if (got.length === 0) break
                for (const m of got) {
                  const list = seen.get(session.sessionId) ?? []
                  list.push(Number(bodyText(m.message)))
                  seen.set(session.sessionId, list)
                  yield* session.complete(m)
                }
              }
              return true
            }))
            if (!taken) return
          }
        })
      const qb = Context.get(b, SessionQueue)
      yield* Effect.all([sender, sender, sender, sender, qb, qb, qb, qb].map(slot), { concurrency: "unbounded" })
      expect(seen.size).toBe(sessions)
      for (const [, list] of seen) expect(list).toEqual(Array.from({ length: perSession }, (_, i) => i + 1))
      expect(yield* sender.depth(queue)).toEqual({ active: 0, deadLettered: 0 })
    }))), 120_000)

  test("PostgreSQL backend: a holder that stops without releasing loses the session when its lease ends; the next holder starts at the first unsettled message", () =>
    Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const options = { lockDuration: "1500 millis", pollInterval: "1 minute" } as const
      const dead = Context.get(yield* Layer.build(SqlSessionQueue.layer(options).pipe(Layer.provide(database()))), SessionQueue)
      const live = Context.get(yield* Layer.build(SqlSessionQueue.layer(options).pipe(Layer.provide(database()))), SessionQueue)
      const queue = freshName("sq")
      yield* dead.send(queue, [1, 2, 3].map((n) => ({ key: "s", body: String(n) })))
      // Accepted in a scope that is never closed: the holder's process "died" holding the lock.
      const abandoned = yield* Scope.make()
      const held = yield* dead.accept(queue, "s").pipe(Scope.provide(abandoned))
      const [first, second] = yield* held.receive(2, "1 second")
      yield* held.complete(first!)
      const started = Date.now()
      const next = Option.getOrThrow(yield* live.acceptNext(queue, { timeout: "10 seconds" }))
      const waited = Date.now() - started
      expect(waited).toBeGreaterThan(500)
      expect(waited).toBeLessThan(5_000)
      const got = yield* next.receive(5, "1 second")
      expect(got.map((m) => [bodyText(m.message), m.attempt])).toEqual([["2", 2], ["3", 1]])
      expect((yield* Effect.flip(held.complete(second!)))._tag).toBe("SessionLockLostError")
      for (const m of got) yield* next.complete(m)
      expect(yield* live.depth(queue)).toEqual({ active: 0, deadLettered: 0 })
    }))), 60_000)

  test("PostgreSQL backend: a named accept racing the release that forgets the empty session gets a lock it holds, never one on a row the release deleted", () =>
    Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const a = Context.get(yield* Layer.build(SqlSessionQueue.layer().pipe(Layer.provide(database()))), SessionQueue)
      const b = Context.get(yield* Layer.build(SqlSessionQueue.layer().pipe(Layer.provide(database()))), SessionQueue)
      const queue = freshName("sq")
      // A holds an empty session without state, so its release deletes the session's row. B
      // accepts the same session while that release runs: whenever B's accept succeeds, B must
      // hold the lock (its first call succeeds). The interleaving is left to the two pools, so
      // the case repeats; a release whose delete lands between B's creating and locking the row
      // showed in about a quarter of the rounds.
      let granted = 0
      for (let round = 0; round < 60; round++) {
        const sessionId = `s${round}`
        const holding = yield* Scope.make()
        yield* a.accept(queue, sessionId).pipe(Scope.provide(holding))
        const [, accepted] = yield* Effect.all([
          Scope.close(holding, Exit.void),
          // Retried while A still holds it: the point is the accept that comes right after the release.
          Effect.scoped(Effect.gen(function*() {
            const session = yield* b.accept(queue, sessionId)
            yield* session.setState(new TextEncoder().encode("mine"))
            return Option.map(yield* session.getState, (state) => new TextDecoder().decode(state))
          })).pipe(Effect.retry({ while: (error) => error._tag === "SessionLockedError", times: 200 }))
        ], { concurrency: "unbounded" })
        expect(accepted).toEqual(Option.some("mine"))
        granted++
      }
      expect(granted).toBe(60)
    }))), 120_000)
}
