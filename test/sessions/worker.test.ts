/**
 * The session worker's time-driven behaviour, on the memory session queue and TestClock: idle
 * release after `idleThreshold` empty receives, retry after `retryDelay` when no session came,
 * dead-lettering after `maxDelivery` deliveries and of malformed bodies at once, the breaker
 * releasing sessions instead of draining them, and shutdown settling the message in flight.
 */
import { expect, test } from "bun:test"
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import { TestClock } from "effect/testing"
import * as Tracer from "effect/Tracer"
import * as MemorySessionQueue from "../../layers/memory/sessionQueue.ts"
import { type LockedSession, maxDeliveryCountExceeded, SessionQueue, SessionQueueError, type SessionMessage } from "../../src/capabilities/SessionQueue.ts"
import { CircuitBreaker } from "../../src/resilience/circuitBreaker.ts"
import { type WorkerConfig, workerDefaults } from "../../src/sessions/config.ts"
import { lastSeqOf, sessionMessage } from "../../src/sessions/messages.ts"
import * as Metrics from "../../src/sessions/metrics.ts"
import { orderedHandler } from "../../src/sessions/orderedHandler.ts"
import { sendAll } from "../../src/sessions/sender.ts"
import { malformedBody, makeWorker } from "../../src/sessions/worker.ts"
import { recordingTracer } from "../support/tracing.ts"

const queue = "q"

const config = (overrides: Partial<WorkerConfig> = {}): WorkerConfig => ({
  ...workerDefaults,
  queue,
  workerCount: 1,
  receiveWait: Duration.seconds(1),
  maxDelivery: 3,
  ...overrides
})

const onTestClock = <A, E>(effect: Effect.Effect<A, E, SessionQueue | Scope.Scope>) =>
  Effect.runPromise(
    Effect.scoped(effect).pipe(
      Effect.provide(MemorySessionQueue.layer({ lockDuration: "60 seconds", maxDeliveryCount: 10 })),
      Effect.provide(TestClock.layer())
    )
  )

/** A downstream that records what it was called with, failing for the payloads `fails` says. */
const recorder = (fails: (body: { readonly seq: number; readonly payload: unknown }, m: SessionMessage) => string | undefined = () => undefined) => {
  const calls: Array<{ readonly sessionId: string; readonly seq: number; readonly attempt: number; readonly at: number }> = []
  const downstream = (body: { readonly sessionId: string; readonly seq: number; readonly payload: unknown }, m: SessionMessage) =>
    Effect.gen(function*() {
      calls.push({ sessionId: body.sessionId, seq: body.seq, attempt: m.attempt, at: yield* Clock.currentTimeMillis })
      const failure = fails(body, m)
      if (failure !== undefined) return yield* Effect.fail(new Error(failure))
    })
  return { calls, downstream }
}

const breaker = (failureThreshold = 100) =>
  CircuitBreaker.make({ name: "session-test", failureThreshold, resetTimeout: "30 seconds", successThreshold: 1 })

const counterValue = (counter: typeof Metrics.outOfOrder) => Effect.map(Metric.value(counter), (state) => state.count)

const isLocked = (sessionId: string) =>
  Effect.scoped(SessionQueue.use((q) => q.accept(queue, sessionId))).pipe(
    Effect.as(false),
    Effect.catchTag("SessionLockedError", () => Effect.succeed(true))
  )

test("worker: a session is released after 3 empty receives in a row, not before", () =>
  onTestClock(Effect.gen(function*() {
    const q = yield* SessionQueue
    const { calls, downstream } = recorder()
    yield* q.send(queue, [sessionMessage("s", 1), sessionMessage("s", 2)])
    const worker = yield* makeWorker({ config: config(), handler: orderedHandler({ downstream, breaker: yield* breaker() }) })
    yield* Effect.forkScoped(worker.run)
    yield* TestClock.adjust("0 millis")
    expect(calls.map((c) => [c.seq, c.at])).toEqual([[1, 0], [2, 0]])
    expect(yield* worker.activeSessions).toBe(1)
    // Three receives of 1 s each come back empty: the lock is held until the third ends.
    yield* TestClock.adjust("2999 millis")
    expect(yield* isLocked("s")).toBe(true)
    yield* TestClock.adjust("1 millis")
    expect(yield* worker.activeSessions).toBe(0)
    expect(yield* isLocked("s")).toBe(false)
    expect(yield* q.depth(queue)).toEqual({ active: 0, deadLettered: 0 })
  })))

test("worker: when no session comes within RECEIVE_TIMEOUT, the slot waits RETRY_DELAY before asking again", () =>
  onTestClock(Effect.gen(function*() {
    const q = yield* SessionQueue
    const { calls, downstream } = recorder()
    const worker = yield* makeWorker({
      config: config({ receiveTimeout: Duration.seconds(20), retryDelay: Duration.seconds(5) }),
      handler: orderedHandler({ downstream, breaker: yield* breaker() })
    })
    yield* Effect.forkScoped(worker.run)
    yield* TestClock.adjust("21 seconds")
    // The first wait ended empty at 20 s; the slot now sleeps until 25 s, so this waits.
    yield* q.send(queue, [sessionMessage("late", 1)])
    yield* TestClock.adjust("3999 millis")
    expect(calls).toEqual([])
    yield* TestClock.adjust("1 millis")
    expect(calls.map((c) => [c.sessionId, c.seq, c.at])).toEqual([["late", 1, 25_000]])
  })))

test("worker: a message failing MAX_DELIVERY times is dead-lettered with the reason and the error, and the session goes on in order", () =>
  onTestClock(Effect.gen(function*() {
    const q = yield* SessionQueue
    const { calls, downstream } = recorder((body) => body.seq === 2 ? "downstream said no" : undefined)
    const outOfOrderBefore = yield* counterValue(Metrics.outOfOrder)
    yield* q.send(queue, [1, 2, 3, 4].map((seq) => sessionMessage("s", seq)))
    const worker = yield* makeWorker({ config: config({ maxDelivery: 3 }), handler: orderedHandler({ downstream, breaker: yield* breaker() }) })
    yield* Effect.forkScoped(worker.run)
    yield* TestClock.adjust("0 millis")
    // 2 fails three times, each time coming back before 3 and 4; then 3 and 4 follow.
    expect(calls.map((c) => [c.seq, c.attempt])).toEqual([[1, 1], [2, 1], [2, 2], [2, 3], [3, 2], [4, 2]])
    const dead = yield* q.deadLettered(queue, 10)
    expect(dead.map((d) => [d.message.id, d.reason, d.description])).toEqual([["s-2", maxDeliveryCountExceeded, "downstream said no"]])
    expect(yield* q.depth(queue)).toEqual({ active: 0, deadLettered: 1 })
    // The dead-lettered message explains the gap: 3 after 1 is not out of sequence.
    expect((yield* counterValue(Metrics.outOfOrder)) - outOfOrderBefore).toBe(0)
    yield* TestClock.adjust("3 seconds")
    const session = yield* q.accept(queue, "s")
    expect(lastSeqOf(yield* session.getState)).toBe(4)
  })))

test("worker: a malformed body is dead-lettered at once, with why, and the session goes on", () =>
  onTestClock(Effect.gen(function*() {
    const q = yield* SessionQueue
    const { calls, downstream } = recorder()
    const outOfOrderBefore = yield* counterValue(Metrics.outOfOrder)
    yield* q.send(queue, [
      sessionMessage("s", 1),
      { id: "bad", key: "s", body: "{not json" },
      { id: "wrong-session", key: "s", body: JSON.stringify({ sessionId: "other", seq: 3, payload: null }) },
      sessionMessage("s", 4)
    ])
    const worker = yield* makeWorker({ config: config(), handler: orderedHandler({ downstream, breaker: yield* breaker() }) })
    yield* Effect.forkScoped(worker.run)
    yield* TestClock.adjust("0 millis")
    expect(calls.map((c) => [c.seq, c.attempt])).toEqual([[1, 1], [4, 1]])
    const dead = yield* q.deadLettered(queue, 10)
    expect(dead.map((d) => [d.message.id, d.reason])).toEqual([["bad", malformedBody], ["wrong-session", malformedBody]])
    expect(dead[0]!.description).toContain("{not json")
    expect(dead[1]!.description).toContain(`sessionId "other"`)
    expect((yield* counterValue(Metrics.outOfOrder)) - outOfOrderBefore).toBe(0)
  })))

test("worker: while the downstream's breaker is open, sessions are released untouched, not drained into failures; after the reset they are processed in order", () =>
  onTestClock(Effect.gen(function*() {
    const q = yield* SessionQueue
    let down = true
    const { calls, downstream } = recorder(() => down ? "downstream unavailable" : undefined)
    yield* q.send(queue, [1, 2, 3].map((seq) => sessionMessage("s", seq)))
    const shared = yield* breaker(2)
    const guarded = yield* makeWorker({
      config: config({ maxDelivery: 10, retryDelay: Duration.seconds(5) }),
      handler: orderedHandler({ downstream, breaker: shared }),
      breaker: shared
    })
    yield* Effect.forkScoped(guarded.run)
    yield* TestClock.adjust("0 millis")
    // Two failures open the breaker; the third delivery is refused without a call, and the session let go.
    expect(calls.map((c) => [c.seq, c.attempt])).toEqual([[1, 1], [1, 2]])
    expect(yield* shared.state).toBe("open")
    expect(yield* guarded.activeSessions).toBe(0)
    expect(yield* isLocked("s")).toBe(false)
    expect(yield* q.depth(queue)).toEqual({ active: 3, deadLettered: 0 })
    // Open for 30 s: no session is taken meanwhile, so nothing fails.
    yield* TestClock.adjust("29 seconds")
    expect(calls.length).toBe(2)
    down = false
    yield* TestClock.adjust("6 seconds")
    expect(calls.slice(2).map((c) => c.seq)).toEqual([1, 2, 3])
    expect(yield* q.deadLettered(queue, 10)).toEqual([])
  })))

test("worker: interrupted (SIGTERM) while a message is being handled, it finishes and settles that message, and releases the session so the rest return", () =>
  onTestClock(Effect.gen(function*() {
    const q = yield* SessionQueue
    const started = yield* Deferred.make<void>()
    const finish = yield* Deferred.make<void>()
    const handled: Array<number> = []
    const downstream = (body: { readonly seq: number }) =>
      Effect.gen(function*() {
        yield* Deferred.succeed(started, undefined)
        yield* Deferred.await(finish)
        handled.push(body.seq)
      })
    yield* q.send(queue, [1, 2, 3].map((seq) => sessionMessage("s", seq)))
    const worker = yield* makeWorker({ config: config(), handler: orderedHandler({ downstream, breaker: yield* breaker() }) })
    const fiber = yield* Effect.forkChild(worker.run)
    yield* Deferred.await(started)
    const stopping = yield* Effect.forkChild(Fiber.interrupt(fiber))
    yield* TestClock.adjust("0 millis")
    expect(stopping.pollUnsafe()).toBeUndefined()
    yield* Deferred.succeed(finish, undefined)
    yield* Fiber.join(stopping)
    expect(handled).toEqual([1])
    // 1 was completed; 2 and 3, received in the same batch, are back and free to take.
    expect(yield* q.depth(queue)).toEqual({ active: 2, deadLettered: 0 })
    const session = Option.getOrThrow(yield* q.acceptNext(queue, { timeout: "0 millis" }))
    expect((yield* session.receive(5, "0 millis")).map((m) => [m.message.id, m.attempt])).toEqual([["s-2", 2], ["s-3", 2]])
    expect(lastSeqOf(yield* session.getState)).toBe(1)
  })))

test("worker: a received batch is settled with one complete-all carrying the last seq as state, not a call per message", () =>
  onTestClock(Effect.gen(function*() {
    const q = yield* SessionQueue
    const calls: Array<string> = []
    const counting = (session: LockedSession): LockedSession => ({
      ...session,
      complete: (m) => Effect.andThen(Effect.sync(() => calls.push("complete")), session.complete(m)),
      setState: (state) => Effect.andThen(Effect.sync(() => calls.push("setState")), session.setState(state)),
      completeAll: (messages, options) =>
        Effect.andThen(
          Effect.sync(() => calls.push(`completeAll ${messages.length} ${options?.state === undefined ? "-" : lastSeqOf(Option.some(options.state))}`)),
          session.completeAll(messages, options)
        )
    })
    const counted = SessionQueue.of({ ...q, acceptNext: (name, options) => Effect.map(q.acceptNext(name, options), Option.map(counting)) })
    const { calls: handled, downstream } = recorder()
    yield* q.send(queue, Array.from({ length: 7 }, (_, i) => sessionMessage("s", i + 1)))
    const worker = yield* makeWorker({ config: config({ receiveBatch: 5 }), handler: orderedHandler({ downstream, breaker: yield* breaker() }) })
    yield* Effect.forkScoped(Effect.provideService(worker.run, SessionQueue, counted))
    yield* TestClock.adjust("0 millis")
    expect(handled.map((c) => c.seq)).toEqual([1, 2, 3, 4, 5, 6, 7])
    expect(calls).toEqual(["completeAll 5 5", "completeAll 2 7"])
    expect(yield* q.depth(queue)).toEqual({ active: 0, deadLettered: 0 })
    expect(yield* counterValue(Metrics.outOfOrder)).toBe(0)
  })))

test("worker: each message is handled in a span that is the child of the sender's batch span, named by session and attempt", () =>
  onTestClock(Effect.gen(function*() {
    const spans: Array<Tracer.Span> = []
    const recording = recordingTracer((span) => spans.push(span))
    const { downstream } = recorder()
    yield* sendAll({ queue, sessionCount: 1, messagesPerSession: 2, batchSize: 10 }).pipe(Effect.provideService(Tracer.Tracer, recording))
    const worker = yield* makeWorker({ config: config(), handler: orderedHandler({ downstream, breaker: yield* breaker() }) })
    yield* Effect.forkScoped(worker.run.pipe(Effect.provideService(Tracer.Tracer, recording)))
    yield* TestClock.adjust("0 millis")
    const sent = spans.filter((s) => s.name === "session send")
    const handled = spans.filter((s) => s.name === "session message")
    expect(sent.length).toBe(1)
    expect(handled.map((s) => [s.attributes.get("messaging.message.id"), s.attributes.get("messaging.session.id"), s.attributes.get("messaging.delivery.attempt")]))
      .toEqual([["session-1-1", "session-1", 1], ["session-1-2", "session-1", 1]])
    for (const span of handled) {
      expect(Option.map(span.parent, (p) => [p.traceId, p.spanId])).toEqual(Option.some([sent[0]!.traceId, sent[0]!.spanId]))
      expect(span.attributes.get("messaging.session.outcome")).toBe("completed")
    }
  })))

test("worker: healthy (readiness) while the queue answers; not while accepting fails, and the slot keeps trying after RETRY_DELAY", () =>
  onTestClock(Effect.gen(function*() {
    const memory = yield* SessionQueue
    let down = true
    const flaky = SessionQueue.of({
      ...memory,
      acceptNext: (name, options) =>
        down ? Effect.fail(new SessionQueueError({ operation: "accept next session", queue: name, cause: "connection refused" })) : memory.acceptNext(name, options)
    })
    const { calls, downstream } = recorder()
    yield* memory.send(queue, [sessionMessage("s", 1)])
    const worker = yield* makeWorker({ config: config({ retryDelay: Duration.seconds(5) }), handler: orderedHandler({ downstream, breaker: yield* breaker() }) })
    expect(yield* worker.healthy).toBe(true)
    yield* Effect.forkScoped(worker.run.pipe(Effect.provideService(SessionQueue, flaky)))
    yield* TestClock.adjust("0 millis")
    expect(yield* worker.healthy).toBe(false)
    down = false
    yield* TestClock.adjust("5 seconds")
    expect(yield* worker.healthy).toBe(true)
    expect(calls.map((c) => c.seq)).toEqual([1])
  })))
