/**
 * The benchmark client measures what a user waits for. A worker that stalls for one second in
 * the middle of a run: the open-loop client's p99 shows the stall (every request scheduled
 * during it waited), the closed-loop client's does not (only its few in-flight requests waited,
 * and it sent nothing while they did) — the coordinated omission the open loop corrects.
 */
import { expect, test } from "bun:test"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { hdrHistogram } from "../../layers/bench/hdrHistogram.ts"
import * as MemoryBroker from "../../layers/memory/broker.ts"
import * as Sqlite from "../../layers/sqlite/index.ts"
import { SqliteDriver } from "../../src/capabilities/SqliteDatabase.ts"
import { directTopic, Subscriber } from "../../src/capabilities/Subscriber.ts"
import type { Handler } from "../../src/messaging/Handler.ts"
import { consume } from "../../src/messaging/consume.ts"
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
