/**
 * The benchmark client measures what a user waits for. A worker that stalls for one second in
 * the middle of a run: the open-loop client's p99 shows the stall (every request scheduled
 * during it waited), the closed-loop client's does not (only its few in-flight requests waited,
 * and it sent nothing while they did) — the coordinated omission the open loop corrects. And
 * the counts: each request is ok, an error by its code, or a timeout, once.
 */
import { expect, test } from "bun:test"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { hdrHistogram } from "../../layers/bench/hdrHistogram.ts"
import * as MemoryBroker from "../../layers/memory/broker.ts"
import * as Sqlite from "../../layers/sqlite/index.ts"
import { Headers } from "../../src/capabilities/Message.ts"
import { Publisher } from "../../src/capabilities/Publisher.ts"
import { SqliteDriver } from "../../src/capabilities/SqliteDatabase.ts"
import { directTopic, Subscriber } from "../../src/capabilities/Subscriber.ts"
import type { Handler } from "../../src/messaging/Handler.ts"
import { consume } from "../../src/messaging/consume.ts"
import * as Outcome from "../../src/messaging/Outcome.ts"
import { type BenchMode, errorCount, runBench } from "../../src/sales/bench.ts"
import { defaultSeedOptions, seedSales } from "../../src/sales/seed.ts"
import { makeSalesWorker } from "../../src/sales/worker.ts"

const layer = Layer.mergeAll(MemoryBroker.layer, Sqlite.driverLayer)

/** One worker on `queue` answering one request at a time; its `stallAt`-th request takes a second longer. */
const stallingWorker = (queue: string, stallAt: number) =>
  Effect.gen(function*() {
    const db = yield* (yield* SqliteDriver).open({ path: ":memory:", create: true })
    yield* seedSales(db, { ...defaultSeedOptions, sales: 2_000, seed: 3 })
    const inner = makeSalesWorker(db, queue, queue).handler
    let handled = 0
    const handler: typeof inner = (received) =>
      ++handled === stallAt ? Effect.sleep("1 second").pipe(Effect.andThen(inner(received))) : inner(received)
    yield* Subscriber.use((s) => s.declare({ topic: directTopic, group: queue }))
    yield* Effect.forkScoped(consume({ topic: directTopic, group: queue, prefetch: 1 }, handler as Handler<never, never>, { concurrency: 1 }))
  })

const measure = (mode: BenchMode) =>
  Effect.scoped(Effect.gen(function*() {
    const queue = `bench-stall-${mode}`
    // About 1.5 s into a 4 s run at 400/s.
    yield* stallingWorker(queue, 600)
    return yield* runBench({ rate: 400, duration: "4 seconds", concurrency: 4, timeout: "5 seconds", targets: [queue], mode }, hdrHistogram())
  }))

test("a one-second stall: the open loop's p99 shows it, the closed loop's hides it", async () => {
  const [open, closed] = await Effect.runPromise(
    Effect.all([measure("open"), measure("closed")]).pipe(Effect.provide(layer))
  )
  for (const result of [open, closed]) {
    expect(result.sent).toBe(1600)
    expect(result.ok).toBe(1600)
    expect(errorCount(result)).toBe(0)
    expect(result.timeouts).toBe(0)
    // Both runs met the stall.
    expect(result.latency.max).toBeGreaterThanOrEqual(950)
  }
  // Open loop: ~400 requests were scheduled during the stall, a quarter of the run.
  expect(open.latency.p99).toBeGreaterThanOrEqual(800)
  expect(open.latency.p90).toBeGreaterThanOrEqual(300)
  // Closed loop: 4 requests of 1600 waited; the rest were sent late, after the stall, and timed from then.
  expect(closed.latency.p99).toBeLessThan(250)
}, 60_000)

test("every request is counted once: ok, errors by code, and timeouts recorded at the time they were given up", async () => {
  const result = await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
    // Answers a third ok, a third with an error code, and leaves a third unanswered.
    let seen = 0
    yield* Subscriber.use((s) => s.declare({ topic: directTopic, group: "bench-partial" }))
    yield* Effect.forkScoped(consume({ topic: directTopic, group: "bench-partial", prefetch: 100 }, (received) =>
      Effect.gen(function*() {
        const kind = seen++ % 3
        if (kind === 2) return Outcome.ack
        yield* Publisher.use((p) =>
          p.publish(directTopic, [{
            key: received.message.headers[Headers.replyTo]!,
            headers: { [Headers.correlationId]: received.message.headers[Headers.correlationId]! },
            body: kind === 0 ? `{"ok":true,"result":{}}` : `{"ok":false,"error":{"code":"unknown_region","message":"no"}}`
          }])
        )
        return Outcome.ack
      })))
    return yield* runBench({ rate: 60, duration: "1 second", concurrency: 3, timeout: "1500 millis", targets: ["bench-partial"] }, hdrHistogram())
  })).pipe(Effect.provide(layer)))
  expect([result.sent, result.ok, result.errors, result.timeouts]).toEqual([60, 20, { unknown_region: 20 }, 20])
  // A third of the values are the timeouts, at 1.5 s or a little after (the check runs every 100 ms).
  expect(result.latency.p50).toBeLessThan(1_500)
  expect(result.latency.p90).toBeGreaterThanOrEqual(1_500)
  expect(result.latency.max).toBeLessThan(3_000)
}, 30_000)
