/**
 * The balancer on the broker: requests in, forwarded to the worker `Balancer` picks, replies seen
 * on the way back and relayed to the client, heartbeats keeping the worker list.
 *
 * - A request's client `reply-to` and `correlation-id` are packed into the correlation id of the
 *   forwarded copy (see `packCorrelation`), whose reply-to is the balancer's reply queue. The
 *   relay needs nothing else to send a reply on, so replies to requests a previous instance
 *   forwarded still reach their clients after a restart.
 * - The client's request is acked once the forward is confirmed; the body is kept until the
 *   reply is seen, to re-send it if its worker is taken out (within the client's `x-deadline`).
 * - Every reply seen is relayed, a second one to a re-routed request too: clients match replies
 *   by correlation id and drop what they no longer wait for (the original client does).
 * - No healthy worker: the client gets an `unavailable` error reply at once.
 * - Health: heartbeats (see `./balancer.ts`) and, where the broker can count them, the consumers
 *   of each worker queue every `consumerCheck`: a queue nobody reads takes its worker out.
 */
import * as Clock from "effect/Clock"
import type * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import * as Schedule from "effect/Schedule"
import { Headers, type Message, type OutgoingMessage } from "../capabilities/Message.ts"
import { Publisher, type PublisherError } from "../capabilities/Publisher.ts"
import { directTopic, Subscriber, type SubscriberError } from "../capabilities/Subscriber.ts"
import { consume, consumeBatches } from "../messaging/consume.ts"
import * as Outcome from "../messaging/Outcome.ts"
import { type Balancer, type Handback } from "./balancer.ts"
import { parseHeartbeat } from "./heartbeat.ts"
import { encodeReply, errorReply } from "./request.ts"
import { seriesBy } from "./series.ts"
import { deadlineHeader, workerHeader } from "./worker.ts"

export interface RelayOptions {
  /** Where clients send [sales_requests]. */
  readonly requestQueue: string
  /** Where workers reply to the balancer. */
  readonly replyQueue: string
  /** Where workers beat, and the balancer's queue on it. */
  readonly heartbeatTopic: string
  readonly heartbeatQueue: string
  readonly prefetch: number
  /** How often beats are checked for silence. */
  readonly tick: Duration.Input
  /** How often the statistics table is logged. */
  readonly statsEvery: Duration.Input
  /** How often each worker queue's consumers are counted (when the broker can tell). */
  readonly consumerCheck: Duration.Input
}

const routedBy = seriesBy((worker) =>
  Metric.counter("sales_balancer_routed", { description: "Requests forwarded, by worker", incremental: true, attributes: { worker } })
)
const reroutedBy = seriesBy((worker) =>
  Metric.counter("sales_balancer_rerouted", {
    description: "Requests re-sent to another worker after theirs was taken out, by worker",
    incremental: true,
    attributes: { worker }
  })
)
const repliesBy = seriesBy((worker) =>
  Metric.counter("sales_balancer_replies", { description: "Worker replies seen and relayed, by worker", incremental: true, attributes: { worker } })
)
const droppedBy = seriesBy((reason) =>
  Metric.counter("sales_balancer_dropped", {
    description: "Requests not forwarded, by reason (unavailable, expired)",
    incremental: true,
    attributes: { reason }
  })
)
const outstandingBy = seriesBy((worker) =>
  Metric.gauge("sales_balancer_outstanding", { description: "Requests forwarded and not yet answered, by worker", attributes: { worker } })
)
const healthyBy = seriesBy((worker) =>
  Metric.gauge("sales_balancer_worker_healthy", { description: "1 while a worker gets requests, by worker", attributes: { worker } })
)
const latencyBy = seriesBy((worker) =>
  Metric.histogram("sales_balancer_reply_latency_seconds", {
    description: "From forwarding a request to seeing its reply, by worker",
    boundaries: Metric.exponentialBoundaries({ start: 0.0005, factor: 2, count: 16 }),
    attributes: { worker }
  })
)

// Reply queues and correlation ids are nearly always ASCII, whose UTF-8 bytes are its own
// characters: `btoa`/`atob` take and give them as they are, with no byte array in between.
const ascii = /^[\x00-\x7f]*$/
const utf8 = new TextEncoder()
const strictUtf8 = new TextDecoder("utf-8", { fatal: true })
const b64 = (text: string) => {
  let binary = text
  if (!ascii.test(text)) {
    binary = ""
    for (const byte of utf8.encode(text)) binary += String.fromCharCode(byte)
  }
  return btoa(binary).replaceAll("+", "-").replaceAll("/", "_").replaceAll("=", "")
}
const unb64 = (text: string) => {
  const binary = atob(text.replaceAll("-", "+").replaceAll("_", "/"))
  return ascii.test(binary) ? binary : strictUtf8.decode(Uint8Array.from(binary, (c) => c.charCodeAt(0)))
}

export interface Client {
  readonly replyTo: string
  readonly correlationId: string | undefined
}

/** AMQP caps a correlation id at 255 bytes. */
export const maxCorrelationBytes = 255

/** `id.replyTo.correlationId`, each base64url; undefined when it would not fit AMQP's limit. */
export const packCorrelation = (id: string, client: Client): string | undefined => {
  const packed = `${id}.${replyToText(client.replyTo)}.${client.correlationId === undefined ? "" : b64(client.correlationId)}`
  return packed.length <= maxCorrelationBytes ? packed : undefined
}

export const unpackCorrelation = (packed: string): { readonly id: string; readonly client: Client } | undefined => {
  const parts = packed.split(".")
  if (parts.length !== 3 || parts[0] === "" || parts[1] === "") return undefined
  try {
    return { id: parts[0]!, client: { replyTo: unb64(parts[1]!), correlationId: parts[2] === "" ? undefined : unb64(parts[2]!) } }
  } catch {
    return undefined
  }
}

// A forward's id: random per process, then a counter. Unique against the ids an earlier instance
// packed into replies still on their way, at the cost of one counter step per request rather than
// a UUID drawn and rewritten per request.
const processPrefix = crypto.randomUUID().replaceAll("-", "").slice(0, 16)
let forwardCount = 0
const nextId = () => processPrefix + (forwardCount++).toString(36)

// A client's reply-to, base64url-encoded: clients keep one reply queue, so it is encoded once per
// queue, not once per request (bounded: a client per request would only empty it now and then).
const encodedReplyTo = new Map<string, string>()
const replyToText = (replyTo: string) => {
  let encoded = encodedReplyTo.get(replyTo)
  if (encoded === undefined) {
    if (encodedReplyTo.size >= 1_000) encodedReplyTo.clear()
    encoded = b64(replyTo)
    encodedReplyTo.set(replyTo, encoded)
  }
  return encoded
}

interface Held {
  readonly message: Message
  readonly client: Client
}

const deadlineOf = (message: Message): number | undefined => {
  const text = message.headers[deadlineHeader]
  const millis = text === undefined ? Number.NaN : Number(text)
  return Number.isSafeInteger(millis) ? millis : undefined
}

export const runRelay = (
  balancer: Balancer,
  options: RelayOptions
): Effect.Effect<never, SubscriberError, Publisher | Subscriber> =>
  Effect.gen(function*() {
    const held = new Map<string, Held>()
    const publisher = yield* Publisher

    const clientMessage = (client: Client, body: string | Uint8Array, extra: Record<string, string> = {}): OutgoingMessage => ({
      key: client.replyTo,
      headers: client.correlationId === undefined ? extra : { ...extra, [Headers.correlationId]: client.correlationId },
      body
    })

    const toClient = (client: Client, body: string | Uint8Array) => publisher.publish(directTopic, [clientMessage(client, body)])

    const unavailable = (client: Client) =>
      toClient(client, encodeReply(errorReply({ code: "unavailable", message: "no healthy sales worker" }))).pipe(
        Effect.andThen(Metric.update(droppedBy("unavailable"), 1))
      )

    const forwardMessage = (id: string, worker: string, entry: Held): OutgoingMessage => {
      const { [Headers.replyTo]: _r, [Headers.correlationId]: _c, ...headers } = entry.message.headers
      return {
        key: worker,
        headers: { ...headers, [Headers.replyTo]: options.replyQueue, [Headers.correlationId]: packCorrelation(id, entry.client)! },
        body: entry.message.body
      }
    }

    const forward = (id: string, worker: string, entry: Held): Effect.Effect<void, PublisherError> =>
      publisher.publish(directTopic, [forwardMessage(id, worker, entry)])

    const handBack = (back: Handback) =>
      Effect.gen(function*() {
        for (const request of back.expired) {
          held.delete(request.id)
          yield* Metric.update(droppedBy("expired"), 1)
        }
        for (const request of back.reroute) {
          const entry = held.get(request.id)
          if (entry === undefined) continue
          const worker = balancer.reroute(request)
          if (worker === undefined) {
            held.delete(request.id)
            yield* unavailable(entry.client).pipe(Effect.ignore)
            continue
          }
          if (worker === request.worker) continue
          yield* Metric.update(reroutedBy(worker), 1)
          yield* Effect.logInfo(`request re-routed from ${request.worker} to ${worker}`)
          // A forward that fails leaves it outstanding on the new worker: the next hand-back retries it.
          yield* forward(request.id, worker, entry).pipe(
            Effect.catch((error) => Effect.logWarning(`re-route to ${worker} failed: ${error.message}`))
          )
        }
        yield* gauges
      })

    // After a batch, only the outstanding gauges of the workers it touched, set in place: at a
    // moderate rate a batch is one message, and the whole table as effects (two gauges a worker)
    // cost more than the message's own work. Health changes only where `gauges` runs.
    const recount = (workers: ReadonlyArray<string>, context: Context.Context<never>) => {
      for (let i = 0; i < workers.length; i++) {
        const worker = workers[i]!
        if (workers.indexOf(worker) === i) outstandingBy(worker).updateUnsafe(balancer.outstandingOn(worker), context)
      }
    }

    const gauges = Effect.suspend(() =>
      Effect.forEach(balancer.snapshot(), (w) =>
        Effect.andThen(
          Metric.update(outstandingBy(w.queue), w.outstanding),
          Metric.update(healthyBy(w.queue), w.healthy ? 1 : 0)
        ), { discard: true })
    )

    // Requests and replies are handled in batches of what has arrived (one at a time when the
    // load is light): one publish of all the batch's forwards, or of all its relayed replies,
    // waits for one set of confirms, where a publish per message paid the runner's and the
    // publisher's per-call cost twice for every request.
    const notSent = (error: PublisherError) => Outcome.retry(`not sent: ${error.message}`)
    // Batches in flight at once, each waiting for its confirms. With the runner's default of two,
    // a request that arrived while both waited sat in the buffer for a confirm round trip (several
    // milliseconds on a busy broker) before it was even forwarded, at each of the two hops; the
    // relay's own work per batch is small, so more waiting batches cost little.
    const batches = { concurrency: 8 }

    const onRequest = consumeBatches({ topic: directTopic, group: options.requestQueue, prefetch: options.prefetch }, (batch) =>
      Effect.gen(function*() {
        const outcomes: Array<Outcome.Outcome> = []
        const forwards: Array<{ readonly index: number; readonly id: string; readonly worker: string; readonly entry: Held }> = []
        const now = yield* Clock.currentTimeMillis
        for (const received of batch) {
          const message = received.message
          const replyTo = message.headers[Headers.replyTo]
          if (replyTo === undefined || replyTo === "") {
            outcomes.push(Outcome.deadLetter("a sales request without reply-to"))
            continue
          }
          const client: Client = { replyTo, correlationId: message.headers[Headers.correlationId] }
          const id = nextId()
          if (packCorrelation(id, client) === undefined) {
            const sent = yield* Effect.result(
              toClient(client, encodeReply(errorReply({ code: "bad_request", message: "reply-to and correlation-id are too long to relay" })))
            )
            outcomes.push(sent._tag === "Success" ? Outcome.ack : notSent(sent.failure))
            continue
          }
          const deadline = deadlineOf(message)
          // Its client stopped waiting while it sat in the queue: no worker's time is spent on it.
          if (deadline !== undefined && deadline <= now) {
            yield* Metric.update(droppedBy("expired"), 1)
            outcomes.push(Outcome.ack)
            continue
          }
          const worker = balancer.route(id, now, deadline)
          if (worker === undefined) {
            const sent = yield* Effect.result(unavailable(client))
            outcomes.push(sent._tag === "Success" ? Outcome.ack : notSent(sent.failure))
            continue
          }
          const entry = { message, client }
          held.set(id, entry)
          forwards.push({ index: outcomes.length, id, worker, entry })
          outcomes.push(Outcome.ack)
        }
        if (forwards.length === 0) return outcomes
        // None of them is assumed forwarded when the publish fails or is cut short (the handler's
        // time ran out, shutdown): they are forgotten here, and each is routed afresh when its
        // request comes back; a reply to one that did get through is still relayed.
        const forget = Effect.sync(() => {
          for (const f of forwards) {
            held.delete(f.id)
            balancer.cancel(f.id)
          }
        })
        const sent = yield* Effect.result(publisher.publish(directTopic, forwards.map((f) => forwardMessage(f.id, f.worker, f.entry)))).pipe(
          Effect.onInterrupt(() => forget)
        )
        if (sent._tag === "Failure") {
          yield* forget
          for (const f of forwards) outcomes[f.index] = notSent(sent.failure)
          return outcomes
        }
        yield* Effect.withFiber((fiber) => {
          for (const f of forwards) routedBy(f.worker).updateUnsafe(1, fiber.context)
          recount(forwards.map((f) => f.worker), fiber.context)
          return Effect.void
        })
        return outcomes
      }), batches)

    const onReply = consumeBatches({ topic: directTopic, group: options.replyQueue, prefetch: options.prefetch }, (batch) =>
      Effect.gen(function*() {
        const outcomes: Array<Outcome.Outcome> = []
        const relayed: Array<{ readonly index: number; readonly message: OutgoingMessage }> = []
        const now = yield* Clock.currentTimeMillis
        const context = yield* Effect.context<never>()
        const touched: Array<string> = []
        for (const received of batch) {
          const headers = received.message.headers
          const unpacked = unpackCorrelation(headers[Headers.correlationId] ?? "")
          if (unpacked === undefined) {
            outcomes.push(Outcome.deadLetter("a reply whose correlation id the balancer did not make"))
            continue
          }
          const from = headers[workerHeader]
          const request = balancer.replied(unpacked.id, from, now)
          held.delete(unpacked.id)
          // The worker's trace goes on to the client, as it would through a single relay.
          const trace = headers[Headers.traceparent]
          relayed.push({ index: outcomes.length, message: clientMessage(unpacked.client, received.message.body, trace === undefined ? {} : { [Headers.traceparent]: trace }) })
          outcomes.push(Outcome.ack)
          const worker = from ?? request?.worker
          if (worker !== undefined) repliesBy(worker).updateUnsafe(1, context)
          if (request !== undefined) {
            latencyBy(worker!).updateUnsafe((now - request.sentAt) / 1000, context)
            touched.push(request.worker)
          }
        }
        if (relayed.length > 0) {
          const sent = yield* Effect.result(publisher.publish(directTopic, relayed.map((r) => r.message)))
          // Sent again on the retry: clients drop a second reply to the same correlation id.
          if (sent._tag === "Failure") for (const r of relayed) outcomes[r.index] = Outcome.retry(`relay failed: ${sent.failure.message}`)
        }
        recount(touched, context)
        return outcomes
      }), batches)

    const onHeartbeat = consume({ topic: options.heartbeatTopic, group: options.heartbeatQueue, prefetch: 50 }, (received) =>
      Effect.gen(function*() {
        const beat = parseHeartbeat(received.message)
        if (beat === undefined) return Outcome.ack
        const now = yield* Clock.currentTimeMillis
        // Beats that waited in the queue while no balancer ran say nothing about now.
        if (now - beat.sentAt > beat.intervalMillis * 3) return Outcome.ack
        const known = balancer.snapshot().some((w) => w.queue === beat.queue)
        if (!known) yield* Effect.logInfo(`worker ${beat.worker} joined on queue ${beat.queue}`)
        yield* handBack(balancer.heartbeat(beat.queue, now, beat.intervalMillis, beat.leaving))
        if (beat.leaving) yield* Effect.logInfo(`worker ${beat.worker} left; its requests were handed back`)
        return Outcome.ack
      }))

    const expiry = Effect.gen(function*() {
      const before = new Set(balancer.snapshot().filter((w) => w.healthy).map((w) => w.queue))
      const back = balancer.expire(yield* Clock.currentTimeMillis)
      for (const w of balancer.snapshot()) {
        if (before.has(w.queue) && !w.healthy) yield* Effect.logWarning(`worker on ${w.queue} missed its heartbeats: taken out`)
      }
      yield* handBack(back)
    }).pipe(Effect.repeat(Schedule.spaced(options.tick)))

    // The original balancer's health check, sharpened: a queue nobody reads is as dead as a
    // silent worker. The first check waits one interval, so workers starting with the balancer
    // are not taken out before they subscribe.
    const subscriber = yield* Subscriber
    const countConsumers = subscriber.consumers
    const consumerCheck = countConsumers === undefined ? Effect.void : Effect.gen(function*() {
      for (const worker of balancer.snapshot()) {
        const counted = yield* Effect.result(countConsumers(worker.queue))
        if (counted._tag === "Failure") {
          yield* Effect.logWarning(`cannot count the consumers of ${worker.queue}: ${counted.failure.message}`)
          continue
        }
        const now = yield* Clock.currentTimeMillis
        const back = balancer.observeConsumers(worker.queue, counted.success, now)
        const after = balancer.snapshot().find((w) => w.queue === worker.queue)!
        if (worker.healthy && !after.healthy) yield* Effect.logWarning(`worker queue ${worker.queue} has no consumer: taken out`)
        if (!worker.healthy && after.healthy) yield* Effect.logInfo(`worker queue ${worker.queue} has a consumer again`)
        yield* handBack(back)
      }
    }).pipe(Effect.repeat(Schedule.spaced(options.consumerCheck)), Effect.delay(options.consumerCheck))

    const stats = Effect.suspend(() => {
      const rows = balancer.snapshot().map((w) =>
        `${w.queue}: ${w.healthy ? "healthy" : "OUT"}, pending=${w.outstanding}, total=${w.routed + w.rerouted}, rerouted=${w.rerouted}, replies=${w.replies}`
      )
      return Effect.logInfo(`worker statistics\n${rows.join("\n")}`)
    }).pipe(Effect.repeat(Schedule.spaced(options.statsEvery)), Effect.delay(options.statsEvery))

    // The default exchange drops what it cannot route: the worker queues, and the reply queue the
    // workers answer to, exist before the first request is forwarded.
    const queues = [...balancer.snapshot().map((w) => w.queue), options.replyQueue]
    for (const queue of queues) yield* Subscriber.use((s) => s.declare({ topic: directTopic, group: queue }))
    yield* Effect.all([onRequest, onReply, onHeartbeat, expiry, consumerCheck, stats], { concurrency: "unbounded", discard: true })
    return yield* Effect.never
  })
