/**
 * The sales worker's handler: answer each request on the direct topic to its `reply-to`, with its
 * `correlation-id`, and return only once the broker confirmed the reply, so the runner acks the
 * request after its answer is safe (SPEC §5).
 *
 * - Every request gets one reply: a bad body or a failing query is an error reply with its code
 *   (`./answer.ts`), acked like any other; it never goes back to the queue to fail again.
 * - A request whose `x-deadline` (epoch milliseconds, set by the client) has passed is acked
 *   unanswered and counted: its client gave up, the work would be wasted.
 * - A request without `reply-to` has nowhere to go: dead-lettered, so it is kept for inspection.
 * - A reply that cannot be published fails the handler: the runner retries the request, and
 *   dead-letters it after its attempts run out (the batch handler returns retries for them).
 */
import * as Clock from "effect/Clock"
import type * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import { Headers, type OutgoingMessage } from "../capabilities/Message.ts"
import { Publisher, type PublisherError } from "../capabilities/Publisher.ts"
import type { SqliteDatabaseShape } from "../capabilities/SqliteDatabase.ts"
import { directTopic } from "../capabilities/Subscriber.ts"
import type { Received } from "../capabilities/Delivery.ts"
import type { BatchHandler, Handler } from "../messaging/Handler.ts"
import * as Outcome from "../messaging/Outcome.ts"
import { makeAnswer } from "./answer.ts"
import { encodeReply, errorReply, type SalesReply } from "./request.ts"
import { seriesBy } from "./series.ts"

/** When the client stops waiting, in epoch milliseconds. */
export const deadlineHeader = "x-deadline"

/** On every reply: the queue of the worker that answered, so a balancer knows whose reply it saw. */
export const workerHeader = "x-sales-worker"

const requestsDescription = "Sales requests a worker settled, by worker and outcome (ok, an error code, expired, no_reply_to)"
const queryBoundaries = Metric.exponentialBoundaries({ start: 0.0001, factor: 2, count: 16 })

export interface WorkerLoad {
  /** Requests being answered now. */
  readonly inFlight: number
  readonly answered: number
}

export interface SalesWorker {
  /** One request at a time: a reply that cannot be published fails the call. */
  readonly handler: Handler<PublisherError, Publisher>
  /**
   * The requests at hand together, their replies in one publish (for `consumeBatches`): under
   * load the runner's and the publisher's cost per call is paid once per batch, not per request.
   * A publish that fails retries the batch's answered requests, as a failing `handler` would.
   */
  readonly batchHandler: BatchHandler<never, Publisher>
  /** What the heartbeat reports. */
  readonly load: Effect.Effect<WorkerLoad>
}

const parseDeadline = (text: string | undefined): number | undefined | "malformed" => {
  if (text === undefined) return undefined
  const millis = Number(text)
  return /^\d{1,16}$/.test(text.trim()) && Number.isSafeInteger(millis) ? millis : "malformed"
}

export const makeSalesWorker = (db: SqliteDatabaseShape, workerId: string, queue: string): SalesWorker => {
  const byOutcome = seriesBy((outcome) =>
    Metric.counter("sales_requests", { description: requestsDescription, incremental: true, attributes: { worker: workerId, outcome } })
  )
  const timing = Metric.histogram("sales_query_duration_seconds", {
    description: "Time to answer one sales request, query and reply publish included",
    boundaries: queryBoundaries,
    attributes: { worker: workerId }
  })
  const answer = makeAnswer(db)
  let inFlight = 0
  let answered = 0

  const replyMessage = (replyTo: string, correlationId: string | undefined, body: SalesReply): OutgoingMessage => ({
    key: replyTo,
    headers: correlationId === undefined ? { [workerHeader]: queue } : { [Headers.correlationId]: correlationId, [workerHeader]: queue },
    body: encodeReply(body)
  })

  type Step = { readonly outcome: Outcome.Outcome } | { readonly reply: OutgoingMessage; readonly code: string }

  /**
   * A request's reply to send, or its outcome when it gets none. Only the answer is an effect:
   * what runs for every request is plain code, its counts set in place (`context`).
   */
  const step = (received: Received, now: number, context: Context.Context<never>): Effect.Effect<Step> => {
    const headers = received.message.headers
    const replyTo = headers[Headers.replyTo]
    if (replyTo === undefined || replyTo === "") {
      byOutcome("no_reply_to").updateUnsafe(1, context)
      return Effect.succeed({ outcome: Outcome.deadLetter("a sales request without reply-to: nowhere to send the answer") })
    }
    const deadline = parseDeadline(headers[deadlineHeader])
    if (typeof deadline === "number" && deadline < now) {
      byOutcome("expired").updateUnsafe(1, context)
      return Effect.succeed({ outcome: Outcome.ack })
    }
    const correlationId = headers[Headers.correlationId]
    const toReply = (body: SalesReply): Step => ({ reply: replyMessage(replyTo, correlationId, body), code: body.ok ? "ok" : body.error.code })
    return deadline === "malformed"
      ? Effect.succeed(toReply(errorReply({ code: "bad_request", message: `${deadlineHeader} is not epoch milliseconds` })))
      : Effect.map(answer(received.message.body), toReply)
  }

  /** Outcomes in the batch's order; `failed` when the replies could not be published (their outcomes are retries). */
  const answerAll = (batch: ReadonlyArray<Received>) =>
    Effect.gen(function*() {
      const context = yield* Effect.context<never>()
      const clock = yield* Clock.Clock
      const started = clock.currentTimeMillisUnsafe()
      const steps = batch.length === 1
        ? [yield* step(batch[0]!, started, context)]
        : yield* Effect.forEach(batch, (received) => step(received, started, context))
      const replies: Array<OutgoingMessage> = []
      const codes: Array<string> = []
      for (const s of steps) {
        if ("outcome" in s) continue
        replies.push(s.reply)
        codes.push(s.code)
      }
      const settle = (replied: Outcome.Outcome) => steps.map((s) => "outcome" in s ? s.outcome : replied)
      if (replies.length === 0) return { outcomes: settle(Outcome.ack), failed: undefined }
      const sent = yield* Effect.result(Publisher.use((publisher) => publisher.publish(directTopic, replies)))
      if (sent._tag === "Failure") {
        const retry = Outcome.retry(`the reply was not published: ${sent.failure.message}`)
        return { outcomes: settle(retry), failed: sent.failure }
      }
      answered += replies.length
      const seconds = (clock.currentTimeMillisUnsafe() - started) / 1000
      for (const code of codes) {
        byOutcome(code).updateUnsafe(1, context)
        timing.updateUnsafe(seconds, context)
      }
      return { outcomes: settle(Outcome.ack), failed: undefined }
    })

  const counted = (batch: ReadonlyArray<Received>) =>
    Effect.suspend(() => {
      inFlight += batch.length
      return answerAll(batch).pipe(Effect.ensuring(Effect.sync(() => {
        inFlight -= batch.length
      })))
    })

  const handler: Handler<PublisherError, Publisher> = (received) =>
    Effect.flatMap(counted([received]), ({ failed, outcomes }) => failed === undefined ? Effect.succeed(outcomes[0]!) : Effect.fail(failed))

  const batchHandler: BatchHandler<never, Publisher> = (batch) => Effect.map(counted(batch), ({ outcomes }) => outcomes)

  return { handler, batchHandler, load: Effect.sync(() => ({ inFlight, answered })) }
}
