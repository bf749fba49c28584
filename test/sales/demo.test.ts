/**
 * The in-process sales demonstration: every reply through the balancer equals the direct query,
 * and the three workers share the load.
 */
import { expect, test } from "bun:test"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as MemoryBroker from "../../layers/memory/broker.ts"
import * as Sqlite from "../../layers/sqlite/index.ts"
import { salesDemo } from "../../src/sales/demo.ts"

test("the demo's replies all equal the direct query, spread over three workers", async () => {
  const result = await Effect.runPromise(
    salesDemo({ workers: 3, requests: 150, sales: 3_000, seed: 5 }).pipe(Effect.provide(Layer.mergeAll(MemoryBroker.layer, Sqlite.driverLayer)))
  )
  expect(result.correct).toBe(150)
  expect(result.workers.map((w) => w.queue)).toEqual(["mom-worker-1", "mom-worker-2", "mom-worker-3"])
  expect(result.workers.reduce((n, w) => n + w.routed, 0)).toBe(150)
  for (const worker of result.workers) {
    expect(worker.routed).toBeGreaterThan(20)
    expect(worker.replies).toBe(worker.routed)
    expect(worker.outstanding).toBe(0)
  }
}, 30_000)
