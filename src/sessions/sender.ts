/**
 * The session sender (SPEC §1): `sessionCount` sessions × `messagesPerSession` messages, bodies
 * `{"sessionId", "seq", "payload"}` with `seq` from 1 per session, sent in batches of
 * `batchSize`. Sessions are interleaved (seq 1 of every session, then seq 2, ...), as traffic of
 * many customers would be, so the queue's per-session order is what keeps each session in order.
 * Progress is logged about every tenth of the run.
 */
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import { Headers, type OutgoingMessage } from "../capabilities/Message.ts"
import { SessionQueue } from "../capabilities/SessionQueue.ts"
import { currentTraceparent } from "../messaging/traceContext.ts"
import { rate } from "../runtime/progress.ts"
import type { SenderConfig } from "./config.ts"
import { sessionIdOf, sessionMessage } from "./messages.ts"

export interface SendSummary {
  readonly queue: string
  readonly sessions: number
  readonly messagesPerSession: number
  readonly messages: number
  readonly batches: number
  readonly firstSession: string
  readonly lastSession: string
  readonly seconds: number
  readonly perSecond: number
}

/** The messages in the order they are sent. */
export function* messagesOf(config: Pick<SenderConfig, "sessionCount" | "messagesPerSession">): Generator<OutgoingMessage> {
  for (let seq = 1; seq <= config.messagesPerSession; seq++) {
    for (let index = 1; index <= config.sessionCount; index++) yield sessionMessage(sessionIdOf(index), seq)
  }
}

export const sendAll = (config: SenderConfig) =>
  Effect.gen(function*() {
    const q = yield* SessionQueue
    const total = config.sessionCount * config.messagesPerSession
    const started = yield* Clock.currentTimeMillis
    const step = Math.max(1, Math.ceil(total / 10))
    let sent = 0
    let batches = 0
    let nextReport = step
    let batch: Array<OutgoingMessage> = []
    const flush = Effect.gen(function*() {
      if (batch.length === 0) return
      const messages = batch
      // Each batch is a span; its messages carry it, so each worker's span is its child.
      yield* Effect.gen(function*() {
        const traceparent = yield* currentTraceparent
        const traced = traceparent === undefined
          ? messages
          : messages.map((m) => ({ ...m, headers: { ...m.headers, [Headers.traceparent]: traceparent } }))
        yield* q.send(config.queue, traced)
      }).pipe(Effect.withSpan("session send", {
        kind: "producer",
        attributes: { "messaging.destination.name": config.queue, "messaging.batch.message_count": messages.length }
      }))
      sent += batch.length
      batches++
      batch = []
      if (sent >= nextReport || sent === total) {
        nextReport = sent + step
        yield* Effect.log(`sent ${sent}/${total}`).pipe(Effect.annotateLogs({ queue: config.queue, batches }))
      }
    })
    for (const message of messagesOf(config)) {
      batch.push(message)
      if (batch.length >= config.batchSize) yield* flush
    }
    yield* flush
    const { perSecond, seconds } = rate(sent, started, yield* Clock.currentTimeMillis)
    return {
      queue: config.queue,
      sessions: config.sessionCount,
      messagesPerSession: config.messagesPerSession,
      messages: sent,
      batches,
      firstSession: sessionIdOf(1),
      lastSession: sessionIdOf(config.sessionCount),
      seconds,
      perSecond
    } satisfies SendSummary
  })
