/**
 * The main demonstration, on embedded defaults (no servers), in one process:
 * 1. the event generator and the event counter on the in-memory broker: prints the counts and
 *    whether they match;
 * 2. the orders system on PGlite and the in-memory broker: real HTTP requests to the orders API,
 *    the outbox relay, the order-events consumer; prints what each did and whether the read
 *    model matches the orders the API created;
 * 3. the sales query service on the in-memory broker and an in-memory SQLite database: three
 *    workers behind the balancer answer requests, each reply checked against the query run
 *    directly;
 * 4. the session worker on the in-memory session queue: the sender's messages through the
 *    worker's slots, and a per-session order verification from what the handler saw;
 * 5. the cron scheduler on its in-memory store: a few `@every` jobs for a few seconds, one failing
 *    and retried, one overlapping itself, a manual trigger, and the run history as a table.
 * Exits 1 when any part's result is wrong.
 *
 *   bun run programs/demo.ts [--count 1000] [--malformed 10] [--duplicate-ratio 0.1] [--output-dir out/demo]
 *                            [--orders 200] [--customers 6] [--replays 20] [--bad-requests 6]
 *                            [--sales-requests 300] [--session-count 20] [--messages-per-session 10]
 */
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as NodePath from "@effect/platform-node/NodePath"
import * as Config from "effect/Config"
import * as Console from "effect/Console"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as MemoryBroker from "../layers/memory/broker.ts"
import * as MemorySchedulerStore from "../layers/memory/schedulerStore.ts"
import * as MemorySessionQueue from "../layers/memory/sessionQueue.ts"
import * as Pglite from "../layers/pglite/sql.ts"
import * as Sqlite from "../layers/sqlite/index.ts"
import { serve } from "../layers/platform/httpServer.ts"
import { counterConfig, trafficConfig } from "../src/counter/config.ts"
import { CounterStore } from "../src/counter/CounterStore.ts"
import { counterDemo } from "../src/counter/demo.ts"
import { sortedByUser } from "../src/counter/events.ts"
import { demoConfig, ordersDemo, readModelTable, summaryLines } from "../src/orders/demo.ts"
import { intInRange, load } from "../src/runtime/config.ts"
import { salesDemo } from "../src/sales/demo.ts"
import { schedulerDemo } from "../src/scheduler/demo.ts"
import { sessionDemo } from "../src/sessions/demo.ts"
import { defaultGeneratorOptions } from "../src/counter/generator.ts"
import { runMain } from "../layers/platform/runMain.ts"

const program = Effect.gen(function*() {
  // Every setting first: a bad flag stops the demo (exit 2) before either part runs.
  const config = yield* load(counterConfig({ outputDir: "out/demo", idleTimeout: Duration.seconds(1) }))
  const traffic = yield* load(trafficConfig({ ...defaultGeneratorOptions, count: 1000, malformed: 10 }))
  const sizes = yield* load(demoConfig())
  const salesRequests = yield* load(intInRange("SALES_REQUESTS", 1, 100_000).pipe(Config.withDefault(300)))
  const sessionSizes = yield* load(Config.all({
    sessions: intInRange("SESSION_COUNT", 1, 10_000).pipe(Config.withDefault(20)),
    messagesPerSession: intInRange("MESSAGES_PER_SESSION", 1, 10_000).pipe(Config.withDefault(10))
  }))

  // The in-process broker forgets its messages: an interrupted demo's partial files cannot be finished.
  const counted = yield* counterDemo({ ...config, carryOver: "none" }, traffic).pipe(
    Effect.provide(Layer.mergeAll(MemoryBroker.layer, CounterStore.memory, NodeFileSystem.layer, NodePath.layer))
  )
  yield* Console.log(`\nEvent counter on the in-memory broker (files in ${config.outputDir}/)`)
  yield* Console.table(Object.fromEntries(Object.entries(counted.counts).map(([type, byUser]) => [type, sortedByUser(byUser)])))
  yield* Console.log(`totals: ${JSON.stringify(counted.totals)}; dead-lettered: ${counted.deadLettered}`)
  yield* Console.log(counted.matches ? "counts match the generator's expectation" : "COUNTS DIFFER from the generator's expectation")

  const orders = yield* ordersDemo(sizes, (fetch) => serve(fetch, { port: 0, hostname: "127.0.0.1" })).pipe(
    Effect.provide(Layer.mergeAll(MemoryBroker.layer, Pglite.layer()))
  )
  yield* Console.log("\nOrders API → outbox relay → order-events consumer, on PGlite and the in-memory broker")
  yield* Console.table(readModelTable(orders))
  for (const line of summaryLines(orders)) yield* Console.log(line)

  const sales = yield* salesDemo({ workers: 3, requests: salesRequests, sales: 10_000, seed: 42 }).pipe(
    Effect.provide(Layer.mergeAll(MemoryBroker.layer, Sqlite.driverLayer))
  )
  yield* Console.log(`\nSales queries through the balancer to 3 workers, on the in-memory broker: ${sales.sent} requests in ${sales.millis} ms`)
  yield* Console.table(Object.fromEntries(sales.workers.map((w) => [w.queue, { routed: w.routed, replies: w.replies, outstanding: w.outstanding }])))
  yield* Console.log(`${sales.correct} of ${sales.sent} replies equal the query run directly (${sales.errors} error replies expected)`)

  const sessions = yield* sessionDemo({ ...sessionSizes, slots: 8 }).pipe(Effect.provide(MemorySessionQueue.layer()))
  yield* Console.log(
    `\nSession worker, 8 slots on the in-memory session queue: ${sessions.messages} messages in ${sessions.sessions.length} sessions, handled in ${sessions.seconds.toFixed(2)} s`
  )
  yield* Console.table(Object.fromEntries(sessions.sessions.map((s) => [s.sessionId, { handled: s.handled, "in order": s.inOrder }])))
  yield* Console.log(
    sessions.allInOrder
      ? `every session's messages handled once each, in sequence order; queue left with ${sessions.depth.active} active, ${sessions.depth.deadLettered} dead-lettered`
      : "SESSIONS OUT OF ORDER: see the table"
  )

  // It prints its own heading, history table and summary.
  const scheduled = yield* schedulerDemo().pipe(Effect.provide(MemorySchedulerStore.layer()))

  if (!counted.matches) return yield* Effect.die(new Error("the counter's result differs from the expected counts"))
  if (scheduled.problems.length > 0) return yield* Effect.die(new Error("the scheduler's history differs from what the demo expects"))
  if (!sessions.allInOrder) return yield* Effect.die(new Error("some session's messages were not handled once each in order"))
  if (sales.correct !== sales.sent) return yield* Effect.die(new Error("some sales replies differ from the direct query"))
  if (orders.problems.length > 0) return yield* Effect.die(new Error("the orders read model differs from the orders the API created"))
})

runMain(program, { name: "demo" })
