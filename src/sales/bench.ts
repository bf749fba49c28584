/**
 * The sales benchmark client: random sales queries at a fixed rate, every reply matched to its
 * request by correlation id on a private reply group (exclusive, like the original Go client's
 * reply queue), latencies into a histogram.
 *
 * Open loop (the default): request i is SCHEDULED at `start + i / rate`, whatever the replies
 * do, and its latency is counted from that scheduled time, not from when it was actually sent.
 * A client that falls behind (a slow publish, a stalled broker) therefore shows the wait in its
 * figures instead of hiding it — the coordinated-omission correction. `concurrency` sender fibers
 * share the schedule (request i belongs to sender i mod concurrency); a sender that finds several
 * of its requests due sends them in one publish call.
 *
 * Closed loop (`mode: "closed"`, for comparison only): each sender waits for its previous reply
 * before it sends the next (never before its scheduled time), and latency is counted from the
 * actual send — how the original client and most load tools measure, and why a stalled server
 * looks fine in their percentiles: while it stalls, only `concurrency` requests wait.
 *
 * A request not answered within `timeout` counts as a timeout and is recorded at the time it was
 * given up (so timeouts raise the percentiles too); a late reply to it is ignored. Each request
 * carries `x-deadline` (its scheduled time + timeout), so workers drop what nobody waits for.
 */
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import { bodyTextStrict, Headers, type OutgoingMessage } from "../capabilities/Message.ts"
import { Publisher } from "../capabilities/Publisher.ts"
import { directTopic, Subscriber, type SubscriberError } from "../capabilities/Subscriber.ts"
import { categories, prng, regions } from "./seed.ts"
import { deadlineHeader } from "./worker.ts"

/** What the engine records latencies into (microseconds); `layers/bench/hdrHistogram.ts` is the real one. */
export interface LatencyHistogram {
  readonly record: (micros: number) => void
  readonly count: () => number
  /** The value at percentile `p` (0–100), in microseconds. */
  readonly percentile: (p: number) => number
  readonly max: () => number
  readonly mean: () => number
}

export type BenchMode = "open" | "closed"

export interface BenchOptions {
  readonly rate: number
  readonly duration: Duration.Input
  readonly concurrency: number
  readonly timeout: Duration.Input
  /** Where requests go, round robin: `[sales_requests]` through the balancer, or the worker queues. */
  readonly targets: ReadonlyArray<string>
  readonly mode?: BenchMode
  /** Seeds the random queries. */
  readonly seed?: number
  readonly progressEvery?: Duration.Input
  readonly onProgress?: (progress: BenchProgress) => Effect.Effect<void>
}

export interface BenchProgress {
  readonly elapsedMillis: number
  readonly sent: number
  readonly answered: number
  /** Replies per second over the last interval. */
  readonly rate: number
  readonly p99Millis: number
  readonly errors: number
  readonly timeouts: number
}

export interface Latencies {
  readonly p50: number
  readonly p90: number
  readonly p99: number
  readonly p999: number
  readonly max: number
  readonly mean: number
}

export interface BenchResult {
  readonly mode: BenchMode
  readonly targetRate: number
  readonly durationMillis: number
  readonly concurrency: number
  readonly targets: ReadonlyArray<string>
  readonly sent: number
  readonly ok: number
  /** Error replies by code, and `publish` for requests the broker did not take. */
  readonly errors: Readonly<Record<string, number>>
  readonly timeouts: number
  /** Replies (ok and error) per second, from the first scheduled request to the last reply. */
  readonly achievedRate: number
  /** Milliseconds. */
  readonly latency: Latencies
  /** Percentile (0–100) → milliseconds, for the report's chart. */
  readonly distribution: ReadonlyArray<readonly [number, number]>
}

export const distributionPercentiles: ReadonlyArray<number> = [
  0, 10, 20, 30, 40, 50, 60, 70, 75, 80, 85, 90, 92.5, 95, 96, 97, 98, 99, 99.5, 99.75, 99.9, 99.95, 99.99, 99.999, 100
]

export const errorCount = (result: Pick<BenchResult, "errors">): number =>
  Object.values(result.errors).reduce((n, c) => n + c, 0)

const nowMicros = Effect.map(Clock.currentTimeNanos, (nanos) => Number(nanos / 1000n))

interface Pending {
  /** When its latency starts: scheduled (open loop) or sent (closed loop), microseconds. */
  readonly from: number
  readonly givenUpAt: number
  readonly done: Deferred.Deferred<void> | undefined
}

/** A sales query like a user's: a region, half the time a category, a range within 2024. */
export const randomRequests = (seed: number) => {
  const next = prng(seed)
  const pick = <A>(items: ReadonlyArray<A>) => items[Math.floor(next() * items.length)]!
  const day = () => `2024-${String(1 + Math.floor(next() * 12)).padStart(2, "0")}-${String(1 + Math.floor(next() * 28)).padStart(2, "0")}`
  return (): string => {
    const [from, to] = [day(), day()].sort()
    return JSON.stringify({ region: pick(regions), ...(next() < 0.5 ? { category: pick(categories) } : {}), from, to })
  }
}

const codeOf = (body: string | undefined): string | undefined => {
  try {
    const reply = JSON.parse(body ?? "") as { ok?: unknown; error?: { code?: unknown } }
    if (reply.ok === true) return undefined
    return typeof reply.error?.code === "string" ? reply.error.code : "malformed_reply"
  } catch {
    return "malformed_reply"
  }
}

export const runBench = (
  options: BenchOptions,
  histogram: LatencyHistogram
): Effect.Effect<BenchResult, SubscriberError, Publisher | Subscriber> =>
  Effect.scoped(Effect.gen(function*() {
    const mode = options.mode ?? "open"
    const publisher = yield* Publisher
    const durationMicros = Duration.toMillis(Duration.fromInputUnsafe(options.duration)) * 1000
    const timeoutMicros = Duration.toMillis(Duration.fromInputUnsafe(options.timeout)) * 1000
    const total = Math.max(1, Math.round(options.rate * durationMicros / 1_000_000))
    const interval = 1_000_000 / options.rate
    const tag = crypto.randomUUID().slice(0, 8)
    const replyGroup = `sales-bench-${tag}`
    const nextBody = randomRequests(options.seed ?? 1)

    const pending = new Map<string, Pending>()
    const errors: Record<string, number> = {}
    let sent = 0
    let ok = 0
    let timeouts = 0
    let lastReply = 0
    let sendersDone = false
    const drained = yield* Deferred.make<void>()
    const checkDrained = () => {
      if (sendersDone && pending.size === 0) Deferred.doneUnsafe(drained, Effect.void)
    }
    // Counted before its sender is woken: waking it may run the sender, and the end of the run, at once.
    const settle = (id: string, entry: Pending, at: number, count: () => void) => {
      pending.delete(id)
      histogram.record(Math.max(1, at - entry.from))
      count()
      if (entry.done !== undefined) Deferred.doneUnsafe(entry.done, Effect.void)
    }

    const replies = yield* Subscriber.use((s) =>
      s.subscribe({ topic: directTopic, group: replyGroup, exclusive: true, prefetch: 2_000 })
    )
    const receive = Effect.gen(function*() {
      while (true) {
        const batch = yield* replies.takeBatch(500)
        const at = yield* nowMicros
        for (const delivery of batch) {
          yield* delivery.ack
          const id = delivery.message.headers[Headers.correlationId] ?? ""
          const entry = pending.get(id)
          // Someone else's, or one given up on already.
          if (entry === undefined) continue
          lastReply = at
          const code = codeOf(bodyTextStrict(delivery.message))
          settle(id, entry, at, () => {
            if (code === undefined) ok++
            else errors[code] = (errors[code] ?? 0) + 1
          })
        }
        checkDrained()
      }
    })

    const giveUp = Effect.gen(function*() {
      const at = yield* nowMicros
      for (const [id, entry] of pending) {
        if (entry.givenUpAt > at) continue
        settle(id, entry, at, () => timeouts++)
      }
      checkDrained()
    }).pipe(Effect.repeat(Schedule.spaced(Duration.millis(Math.max(1, Math.min(100, timeoutMicros / 4000))))))

    const start = (yield* nowMicros) + 1000
    const scheduledAt = (i: number) => start + i * interval
    const idOf = (i: number) => `${tag}-${i}`
    const message = (i: number): OutgoingMessage => ({
      key: options.targets[i % options.targets.length]!,
      headers: {
        [Headers.replyTo]: replyGroup,
        [Headers.correlationId]: idOf(i),
        [deadlineHeader]: String(Math.floor((scheduledAt(i) + timeoutMicros) / 1000))
      },
      body: nextBody()
    })
    const waitUntil = (micros: number) =>
      Effect.flatMap(nowMicros, (at) => micros > at ? Effect.sleep(Duration.millis((micros - at) / 1000)) : Effect.void)

    const publish = (indexes: ReadonlyArray<number>) => {
      const messages = indexes.map(message)
      sent += indexes.length
      return publisher.publish(directTopic, messages).pipe(
        Effect.catch(() =>
          Effect.sync(() => {
            for (const i of indexes) {
              if (pending.delete(idOf(i))) errors.publish = (errors.publish ?? 0) + 1
            }
          })
        )
      )
    }

    const openSender = (channel: number) =>
      Effect.gen(function*() {
        let i = channel
        while (i < total) {
          yield* waitUntil(scheduledAt(i))
          const at = yield* nowMicros
          const due: Array<number> = []
          // Behind schedule: everything due goes in one call, its latency already running.
          while (i < total && scheduledAt(i) <= at) {
            pending.set(idOf(i), { from: scheduledAt(i), givenUpAt: scheduledAt(i) + timeoutMicros, done: undefined })
            due.push(i)
            i += options.concurrency
          }
          if (due.length > 0) yield* publish(due)
        }
      })

    const closedSender = (channel: number) =>
      Effect.gen(function*() {
        for (let i = channel; i < total; i += options.concurrency) {
          yield* waitUntil(scheduledAt(i))
          const at = yield* nowMicros
          const done = yield* Deferred.make<void>()
          pending.set(idOf(i), { from: at, givenUpAt: at + timeoutMicros, done })
          yield* publish([i])
          if (pending.has(idOf(i))) yield* Deferred.await(done)
        }
      })

    let lastAnswered = 0
    let lastAt = start
    const progress = options.onProgress === undefined ? Effect.void : Effect.gen(function*() {
      const at = yield* nowMicros
      const errorsSoFar = Object.values(errors).reduce((n, c) => n + c, 0)
      const answered = ok + errorsSoFar
      yield* options.onProgress!({
        elapsedMillis: Math.max(0, (at - start) / 1000),
        sent,
        answered,
        rate: at > lastAt ? (answered - lastAnswered) * 1_000_000 / (at - lastAt) : 0,
        p99Millis: histogram.count() === 0 ? 0 : histogram.percentile(99) / 1000,
        errors: errorsSoFar,
        timeouts
      })
      lastAnswered = answered
      lastAt = at
    }).pipe(Effect.repeat(Schedule.spaced(options.progressEvery ?? "1 second")), Effect.delay(options.progressEvery ?? "1 second"))

    yield* Effect.forkScoped(receive)
    yield* Effect.forkScoped(giveUp)
    yield* Effect.forkScoped(progress)
    const sender = mode === "open" ? openSender : closedSender
    yield* Effect.forEach(Array.from({ length: Math.min(options.concurrency, total) }, (_, c) => c), sender, {
      concurrency: "unbounded",
      discard: true
    })
    sendersDone = true
    checkDrained()
    yield* Deferred.await(drained)

    const end = Math.max(lastReply, scheduledAt(total - 1))
    const answered = ok + Object.entries(errors).reduce((n, [code, c]) => code === "publish" ? n : n + c, 0)
    const ms = (micros: number) => micros / 1000
    return {
      mode,
      targetRate: options.rate,
      durationMillis: durationMicros / 1000,
      concurrency: options.concurrency,
      targets: options.targets,
      sent,
      ok,
      errors: { ...errors },
      timeouts,
      achievedRate: end > start ? answered * 1_000_000 / (end - start + interval) : 0,
      latency: {
        p50: ms(histogram.percentile(50)),
        p90: ms(histogram.percentile(90)),
        p99: ms(histogram.percentile(99)),
        p999: ms(histogram.percentile(99.9)),
        max: ms(histogram.max()),
        mean: ms(histogram.mean())
      },
      distribution: distributionPercentiles.map((p) => [p, ms(histogram.percentile(p))] as const)
    } satisfies BenchResult
  }))
