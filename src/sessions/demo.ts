/**
 * The session demonstration, for `programs/demo.ts`: the sender's messages through the worker on
 * whatever SessionQueue is provided (the memory one in the demo), then a per-session order
 * verification made from what the handler's downstream saw, not from the worker's own counters.
 */
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import { SessionQueue } from "../capabilities/SessionQueue.ts"
import { CircuitBreaker } from "../resilience/circuitBreaker.ts"
import { workerDefaults } from "./config.ts"
import { sessionIdOf } from "./messages.ts"
import { orderedHandler } from "./orderedHandler.ts"
import { sendAll } from "./sender.ts"
import { makeWorker } from "./worker.ts"

export interface SessionDemoOptions {
  readonly queue?: string
  readonly sessions: number
  readonly messagesPerSession: number
  /** Worker slots. */
  readonly slots: number
}

export interface SessionVerification {
  readonly sessionId: string
  /** Messages of the session its downstream saw. */
  readonly handled: number
  /** The downstream saw exactly 1, 2, ..., messagesPerSession. */
  readonly inOrder: boolean
}

export interface SessionDemoResult {
  readonly messages: number
  readonly handled: number
  readonly seconds: number
  readonly sessions: ReadonlyArray<SessionVerification>
  /** Every session seen whole: each seq once, from 1 up, in order. */
  readonly allInOrder: boolean
  readonly depth: { readonly active: number; readonly deadLettered: number }
}

export const sessionDemo = (options: SessionDemoOptions) =>
  Effect.gen(function*() {
    const queue = options.queue ?? "session-queue"
    const total = options.sessions * options.messagesPerSession
    const q = yield* SessionQueue
    yield* sendAll({ queue, sessionCount: options.sessions, messagesPerSession: options.messagesPerSession, batchSize: 100 })
    const seen = new Map<string, Array<number>>()
    let handled = 0
    const done = yield* Deferred.make<void>()
    const downstream = (body: { readonly sessionId: string; readonly seq: number }) =>
      Effect.suspend(() => {
        const list = seen.get(body.sessionId) ?? []
        list.push(body.seq)
        seen.set(body.sessionId, list)
        return ++handled >= total ? Deferred.succeed(done, undefined) : Effect.void
      })
    const breaker = yield* CircuitBreaker.make({ name: "session-demo", failureThreshold: 5, resetTimeout: "30 seconds", successThreshold: 1 })
    // Short waits: the demo's sessions are all there from the start, and it should end promptly.
    const config = {
      ...workerDefaults,
      queue,
      workerCount: options.slots,
      receiveTimeout: Duration.millis(200),
      retryDelay: Duration.millis(50),
      receiveWait: Duration.millis(20),
      idleThreshold: 1
    }
    const worker = yield* makeWorker({ config, handler: orderedHandler({ downstream, breaker }), breaker })
    const started = yield* Clock.currentTimeMillis
    const running = yield* Effect.forkChild(worker.run)
    yield* Deferred.await(done)
    const seconds = ((yield* Clock.currentTimeMillis) - started) / 1000
    yield* Fiber.interrupt(running)
    const expected = Array.from({ length: options.messagesPerSession }, (_, i) => i + 1).join(",")
    const sessions = Array.from({ length: options.sessions }, (_, i): SessionVerification => {
      const sessionId = sessionIdOf(i + 1)
      const list = seen.get(sessionId) ?? []
      return { sessionId, handled: list.length, inOrder: list.join(",") === expected }
    })
    return {
      messages: total,
      handled,
      seconds,
      sessions,
      allInOrder: sessions.every((s) => s.inOrder),
      depth: yield* q.depth(queue)
    } satisfies SessionDemoResult
  })
