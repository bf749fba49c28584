/**
 * The sales query service in one process on the in-memory broker (no servers): a small database,
 * three workers and the balancer, a few hundred requests, each reply checked against the query
 * run directly, and the balancer's table.
 *
 *   bun run programs/sales-demo.ts [--requests 300] [--workers 3]
 */
import * as Config from "effect/Config"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as MemoryBroker from "../layers/memory/broker.ts"
import { runMain } from "../layers/platform/runMain.ts"
import * as Sqlite from "../layers/sqlite/index.ts"
import { intInRange, load } from "../src/runtime/config.ts"
import { salesDemo } from "../src/sales/demo.ts"

const program = Effect.gen(function*() {
  const options = yield* load(Config.all({
    requests: intInRange("REQUESTS", 1, 100_000).pipe(Config.withDefault(300)),
    workers: intInRange("WORKERS", 1, 20).pipe(Config.withDefault(3)),
    sales: intInRange("SALES", 1, 1_000_000).pipe(Config.withDefault(10_000)),
    seed: intInRange("SEED", 0, 2 ** 31 - 1).pipe(Config.withDefault(42))
  }))
  const result = yield* salesDemo(options)
  yield* Console.log(`\nSales queries through the balancer on the in-memory broker: ${result.sent} requests in ${result.millis} ms`)
  yield* Console.table(Object.fromEntries(result.workers.map((w) => [w.queue, { routed: w.routed, replies: w.replies, outstanding: w.outstanding }])))
  yield* Console.log(`${result.correct} of ${result.sent} replies equal the query run directly (${result.errors} error replies expected)`)
  if (result.correct !== result.sent) return yield* Effect.die(new Error("some replies differ from the direct query"))
}).pipe(Effect.provide(Layer.mergeAll(MemoryBroker.layer, Sqlite.driverLayer)))

runMain(program, { name: "sales-demo" })
