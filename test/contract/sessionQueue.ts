/**
 * The contract every SessionQueue backend passes (memory, the Service Bus test server, a real
 * namespace when one is configured).
 *
 * Each case uses a fresh queue name. The backend's own knobs come in as options: its max
 * delivery count, and how to make a session's lock end now (a fault hook of the memory queue or
 * of the test server; a real namespace would need a short lock duration and a wait).
 */
import { describe, expect, test } from "bun:test"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import type * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Scope from "effect/Scope"
import { bodyText } from "../../src/capabilities/Message.ts"
import {
  type LockedSession,
  maxDeliveryCountExceeded,
  SessionQueue,
  type SessionMessage
} from "../../src/capabilities/SessionQueue.ts"
import { freshName } from "../support/servers.ts"

export interface SessionQueueContractOptions<R> {
  /** The backend's max delivery count (small keeps the dead-letter case short). */
  readonly maxDeliveryCount: number
  /** Ends the lock of a session held by a receiver, as an expiry would. */
  readonly loseLock: (queue: string, sessionId: string) => Effect.Effect<void, unknown, R>
  /** A queue for one case: a fresh name by default; a real namespace creates the queue. */
  readonly freshQueue?: () => Promise<string>
  readonly timeout?: number
}

export const sessionQueueContract = <R>(
  name: string,
  makeLayer: () => Layer.Layer<SessionQueue | R, unknown>,
  options: SessionQueueContractOptions<R>
) => {
  const run = <A, E>(effect: Effect.Effect<A, E, SessionQueue | R | Scope.Scope>): Promise<A> =>
    Effect.runPromise(Effect.scoped(effect).pipe(Effect.provide(makeLayer())) as Effect.Effect<A, E>)
  const timeout = options.timeout ?? 30_000
  const fresh = () => Effect.promise(options.freshQueue ?? (async () => freshName("sq")))

  const send = (queue: string, messages: ReadonlyArray<readonly [session: string, body: string]>) =>
    SessionQueue.use((q) => q.send(queue, messages.map(([key, body]) => ({ key, body, id: `${key}-${body}` }))))
  const accept = (queue: string, sessionId: string) => SessionQueue.use((q) => q.accept(queue, sessionId))
  const acceptNext = (queue: string, wait: Duration.Input) => SessionQueue.use((q) => q.acceptNext(queue, { timeout: wait }))
  /** Receives until `count` messages came (or a receive came back empty). */
  const receiveN = (session: LockedSession, count: number) =>
    Effect.gen(function*() {
      const out: Array<SessionMessage> = []
      while (out.length < count) {
        const got = yield* session.receive(count - out.length, "2 seconds")
        if (got.length === 0) break
        out.push(...got)
      }
      return out
    })
  const bodies = (messages: ReadonlyArray<SessionMessage>) => messages.map((m) => bodyText(m.message))

  describe(`session queue contract: ${name}`, () => {
    test("hands out each session's messages in the order they were sent, across sends", () =>
      run(Effect.gen(function*() {
        const queue = yield* fresh()
        yield* send(queue, [["a", "a1"], ["b", "b1"], ["a", "a2"]])
        yield* send(queue, [["b", "b2"], ["a", "a3"], ["c", "c1"], ["b", "b3"]])
        for (const [id, expected] of [["a", ["a1", "a2", "a3"]], ["b", ["b1", "b2", "b3"]], ["c", ["c1"]]] as const) {
          const session = yield* accept(queue, id)
          const got = yield* receiveN(session, expected.length)
          expect(bodies(got)).toEqual([...expected])
          expect(got.map((m) => m.message.key)).toEqual(expected.map(() => id))
          expect(got.map((m) => m.message.id)).toEqual(expected.map((b) => `${id}-${b}`))
          expect(got.map((m) => m.attempt)).toEqual(expected.map(() => 1))
          const sequence = got.map((m) => m.sequenceNumber)
          expect(sequence).toEqual([...sequence].sort((x, y) => x - y))
          for (const m of got) yield* session.complete(m)
          yield* session.release
        }
        expect(yield* SessionQueue.use((q) => q.depth(queue))).toEqual({ active: 0, deadLettered: 0 })
      })), timeout)

    test("a session is locked by one receiver at a time, and free again once released", () =>
      run(Effect.gen(function*() {
        const queue = yield* fresh()
        yield* send(queue, [["a", "1"]])
        const scope = yield* Scope.make()
        const first = yield* accept(queue, "a").pipe(Scope.provide(scope))
        const second = yield* Effect.exit(accept(queue, "a"))
        expect(Exit.isFailure(second) && Exit.findErrorOption(second).pipe(Option.map((e) => e._tag), Option.getOrUndefined)).toBe(
          "SessionLockedError"
        )
        expect(Option.isNone(yield* acceptNext(queue, "300 millis"))).toBe(true)
        expect(first.sessionId).toBe("a")
        yield* Scope.close(scope, Exit.void)
        const again = yield* accept(queue, "a")
        expect(bodies(yield* receiveN(again, 1))).toEqual(["1"])
      })), timeout)

    test("accept-next skips locked sessions and answers none when no free session has messages", () =>
      run(Effect.gen(function*() {
        const queue = yield* fresh()
        yield* send(queue, [["a", "a1"], ["b", "b1"]])
        yield* accept(queue, "a")
        const next = yield* acceptNext(queue, "5 seconds")
        expect(Option.map(next, (s) => s.sessionId)).toEqual(Option.some("b"))
        expect(Option.isNone(yield* acceptNext(queue, "300 millis"))).toBe(true)
      })), timeout)

    test("accept-next waits for a session that gets a message during the wait", () =>
      run(Effect.gen(function*() {
        const queue = yield* fresh()
        const waiting = yield* Effect.forkChild(acceptNext(queue, "10 seconds"), { startImmediately: true })
        yield* Effect.sleep("200 millis")
        yield* send(queue, [["late", "x"]])
        const session = yield* Fiber.join(waiting)
        expect(Option.map(session, (s) => s.sessionId)).toEqual(Option.some("late"))
      })), timeout)

    test("an abandoned message comes back first, before the later ones, with attempt + 1", () =>
      run(Effect.gen(function*() {
        const queue = yield* fresh()
        yield* send(queue, [["s", "1"], ["s", "2"], ["s", "3"]])
        const session = yield* accept(queue, "s")
        const [first] = yield* receiveN(session, 1)
        expect(first!.attempt).toBe(1)
        yield* session.abandon(first!)
        const again = yield* receiveN(session, 3)
        expect(bodies(again)).toEqual(["1", "2", "3"])
        expect(again.map((m) => m.attempt)).toEqual([2, 1, 1])
        expect(again[0]!.sequenceNumber).toBe(first!.sequenceNumber)
      })), timeout)

    test("a message abandoned max-delivery-count times is dead-lettered with the reason, and the session goes on", () =>
      run(Effect.gen(function*() {
        const queue = yield* fresh()
        yield* send(queue, [["s", "poison"], ["s", "next"]])
        const session = yield* accept(queue, "s")
        for (let attempt = 1; attempt <= options.maxDeliveryCount; attempt++) {
          const [m] = yield* receiveN(session, 1)
          expect(bodyText(m!.message)).toBe("poison")
          expect(m!.attempt).toBe(attempt)
          yield* session.abandon(m!)
        }
        const [next] = yield* receiveN(session, 1)
        expect(bodyText(next!.message)).toBe("next")
        yield* session.complete(next!)
        const dead = yield* SessionQueue.use((q) => q.deadLettered(queue, 10))
        expect(dead.map((d) => [bodyText(d.message), d.message.key, d.reason])).toEqual([["poison", "s", maxDeliveryCountExceeded]])
        expect(yield* SessionQueue.use((q) => q.depth(queue))).toEqual({ active: 0, deadLettered: 1 })
      })), timeout)

    test("dead-lettering keeps the reason and description readable from the dead-letter queue", () =>
      run(Effect.gen(function*() {
        const queue = yield* fresh()
        yield* send(queue, [["s", "{not json"], ["s", "ok"]])
        const session = yield* accept(queue, "s")
        const [bad, ok] = yield* receiveN(session, 2)
        yield* session.deadLetter(bad!, { reason: "MalformedBody", description: "Unexpected token n" })
        yield* session.complete(ok!)
        const dead = yield* SessionQueue.use((q) => q.deadLettered(queue, 10))
        expect(dead.map((d) => ({ body: bodyText(d.message), reason: d.reason, description: d.description }))).toEqual([
          { body: "{not json", reason: "MalformedBody", description: "Unexpected token n" }
        ])
        expect(dead[0]!.message.id).toBe("s-{not json")
      })), timeout)

    test("a lost lock fails the holder's calls with a typed error, settles nothing, and the next acceptor gets the message again", () =>
      run(Effect.gen(function*() {
        const queue = yield* fresh()
        yield* send(queue, [["s", "1"], ["s", "2"]])
        const session = yield* accept(queue, "s")
        const [m] = yield* receiveN(session, 1)
        yield* options.loseLock(queue, "s")
        const completed = yield* Effect.flip(session.complete(m!))
        expect(completed._tag).toBe("SessionLockLostError")
        expect((yield* Effect.flip(session.receive(1, "100 millis")))._tag).toBe("SessionLockLostError")
        expect((yield* Effect.flip(session.renewLock))._tag).toBe("SessionLockLostError")
        const next = yield* acceptNext(queue, "5 seconds")
        expect(Option.map(next, (s) => s.sessionId)).toEqual(Option.some("s"))
        const again = yield* receiveN(Option.getOrThrow(next), 2)
        expect(bodies(again)).toEqual(["1", "2"])
        expect(again[0]!.attempt).toBe(2)
        for (const x of again) yield* Option.getOrThrow(next).complete(x)
        expect(yield* SessionQueue.use((q) => q.depth(queue))).toEqual({ active: 0, deadLettered: 0 })
      })), timeout)

    test("a message is settled once: a second complete or a late abandon changes nothing", () =>
      run(Effect.gen(function*() {
        const queue = yield* fresh()
        yield* send(queue, [["s", "1"], ["s", "2"]])
        const session = yield* accept(queue, "s")
        const [m] = yield* receiveN(session, 1)
        yield* session.complete(m!)
        yield* session.complete(m!)
        yield* session.abandon(m!)
        yield* session.deadLetter(m!, { reason: "late" })
        // Asks for two: only "2" is left to hand out, the completed "1" never comes back.
        const rest = yield* session.receive(2, "500 millis")
        expect(bodies(rest)).toEqual(["2"])
        expect(yield* SessionQueue.use((q) => q.depth(queue))).toEqual({ active: 1, deadLettered: 0 })
      })), timeout)

    test("messages received and not settled return when the session is released", () =>
      run(Effect.gen(function*() {
        const queue = yield* fresh()
        yield* send(queue, [["s", "1"], ["s", "2"]])
        const scope = yield* Scope.make()
        const session = yield* accept(queue, "s").pipe(Scope.provide(scope))
        expect(bodies(yield* receiveN(session, 2))).toEqual(["1", "2"])
        yield* session.release
        yield* Scope.close(scope, Exit.void)
        const again = yield* accept(queue, "s")
        const got = yield* receiveN(again, 2)
        expect(bodies(got)).toEqual(["1", "2"])
        expect(got.map((m) => m.attempt)).toEqual([2, 2])
      })), timeout)

    test("session state round-trips across locks and can be cleared", () =>
      run(Effect.gen(function*() {
        const queue = yield* fresh()
        yield* send(queue, [["s", "1"]])
        const scope = yield* Scope.make()
        const first = yield* accept(queue, "s").pipe(Scope.provide(scope))
        expect(Option.isNone(yield* first.getState)).toBe(true)
        yield* first.setState(new TextEncoder().encode(`{"lastSeq":7}`))
        yield* Scope.close(scope, Exit.void)
        const second = yield* accept(queue, "s")
        const state = yield* second.getState
        expect(Option.map(state, (s) => new TextDecoder().decode(s))).toEqual(Option.some(`{"lastSeq":7}`))
        yield* second.setState(undefined)
        expect(Option.isNone(yield* second.getState)).toBe(true)
      })), timeout)

    test("complete-all completes the messages given and sets the state in one call; settled ones are skipped", () =>
      run(Effect.gen(function*() {
        const queue = yield* fresh()
        const text = (state: Option.Option<Uint8Array>) => Option.map(state, (s) => new TextDecoder().decode(s))
        yield* send(queue, [["s", "1"], ["s", "2"], ["s", "3"], ["s", "4"]])
        const session = yield* accept(queue, "s")
        const [one, two, three, four] = yield* receiveN(session, 4)
        yield* session.complete(one!)
        yield* session.completeAll([one!, two!, three!], { state: new TextEncoder().encode("3") })
        expect(yield* SessionQueue.use((q) => q.depth(queue))).toEqual({ active: 1, deadLettered: 0 })
        expect(text(yield* session.getState)).toEqual(Option.some("3"))
        // Without `state` the state stays; with `state: undefined` it is cleared.
        yield* session.completeAll([four!])
        expect(text(yield* session.getState)).toEqual(Option.some("3"))
        expect(yield* SessionQueue.use((q) => q.depth(queue))).toEqual({ active: 0, deadLettered: 0 })
        yield* session.completeAll([], { state: undefined })
        expect(Option.isNone(yield* session.getState)).toBe(true)
        // Completed by complete-all, they never come back.
        yield* session.release
        const again = yield* accept(queue, "s")
        expect(yield* again.receive(4, "300 millis")).toEqual([])
      })), timeout)

    test("complete-all after the lock was lost fails with a typed error and changes neither messages nor state", () =>
      run(Effect.gen(function*() {
        const queue = yield* fresh()
        const encode = (text: string) => new TextEncoder().encode(text)
        yield* send(queue, [["s", "1"], ["s", "2"]])
        const session = yield* accept(queue, "s")
        yield* session.setState(encode("before"))
        const got = yield* receiveN(session, 2)
        yield* options.loseLock(queue, "s")
        const failed = yield* Effect.flip(session.completeAll(got, { state: encode("after") }))
        expect(failed._tag).toBe("SessionLockLostError")
        const next = Option.getOrThrow(yield* acceptNext(queue, "5 seconds"))
        expect(next.sessionId).toBe("s")
        const again = yield* receiveN(next, 2)
        expect(bodies(again)).toEqual(["1", "2"])
        expect(again.map((m) => m.attempt)).toEqual([2, 2])
        expect(Option.map(yield* next.getState, (s) => new TextDecoder().decode(s))).toEqual(Option.some("before"))
        yield* next.completeAll(again, { state: encode("2") })
        expect(yield* SessionQueue.use((q) => q.depth(queue))).toEqual({ active: 0, deadLettered: 0 })
      })), timeout)

    test("renewing the lock moves its end forward", () =>
      run(Effect.gen(function*() {
        const queue = yield* fresh()
        yield* send(queue, [["s", "1"]])
        const session = yield* accept(queue, "s")
        const before = yield* session.lockedUntil
        yield* Effect.sleep("20 millis")
        const renewed = yield* session.renewLock
        expect(renewed).toBeGreaterThan(before)
        expect(yield* session.lockedUntil).toBe(renewed)
      })), timeout)

    test("queue depth counts active messages (received ones too) and dead-lettered ones", () =>
      run(Effect.gen(function*() {
        const queue = yield* fresh()
        yield* send(queue, [["a", "1"], ["a", "2"], ["a", "3"], ["b", "1"], ["b", "2"]])
        expect(yield* SessionQueue.use((q) => q.depth(queue))).toEqual({ active: 5, deadLettered: 0 })
        const session = yield* accept(queue, "a")
        const [one, two] = yield* receiveN(session, 2)
        expect(yield* SessionQueue.use((q) => q.depth(queue))).toEqual({ active: 5, deadLettered: 0 })
        yield* session.complete(one!)
        yield* session.deadLetter(two!, { reason: "test" })
        expect(yield* SessionQueue.use((q) => q.depth(queue))).toEqual({ active: 3, deadLettered: 1 })
      })), timeout)
  })
}
