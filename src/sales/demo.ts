/**
 * The sales demonstration, in one process on whatever broker is provided (the in-memory one for
 * the main demo): a small database, `workers` workers and the balancer, `requests` requests from
 * a client that checks every reply against the same query run directly. Returns the balancer's
 * per-worker table and the client's count of correct replies.
 */
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import { bodyText, Headers } from "../capabilities/Message.ts"
import { Publisher } from "../capabilities/Publisher.ts"
import { SqliteDriver } from "../capabilities/SqliteDatabase.ts"
import { directTopic, Subscriber } from "../capabilities/Subscriber.ts"
import { consume } from "../messaging/consume.ts"
import { answer } from "./answer.ts"
import { Balancer, type WorkerView } from "./balancer.ts"
import { heartbeatTopic } from "./heartbeat.ts"
import { runRelay } from "./relay.ts"
import { categories, defaultSeedOptions, prng, regions, seedSales } from "./seed.ts"
import { makeSalesWorker } from "./worker.ts"

export interface SalesDemoOptions {
  readonly workers: number
  readonly requests: number
  readonly sales: number
  readonly seed: number
}

export interface SalesDemoResult {
  readonly sent: number
  readonly correct: number
  readonly errors: number
  readonly millis: number
  readonly workers: ReadonlyArray<WorkerView>
}

const replyGroup = "sales-demo-client"

export const salesDemo = (options: SalesDemoOptions) =>
  Effect.scoped(Effect.gen(function*() {
    const driver = yield* SqliteDriver
    // One in-memory database shared by the in-process workers (read-only use).
    const db = yield* driver.open({ path: ":memory:", create: true })
    yield* seedSales(db, { ...defaultSeedOptions, sales: options.sales, seed: options.seed })
    const queues = Array.from({ length: options.workers }, (_, i) => `mom-worker-${i + 1}`)
    const balancer = new Balancer(queues)
    const replies = yield* Subscriber.use((s) => s.subscribe({ topic: directTopic, group: replyGroup, prefetch: 1_000 }))
    yield* Effect.forkScoped(runRelay(balancer, {
      requestQueue: "sales_requests",
      replyQueue: "sales_balancer_replies",
      heartbeatTopic,
      heartbeatQueue: "sales-balancer.heartbeats",
      prefetch: 200,
      tick: "500 millis",
      statsEvery: "1 hour",
      consumerCheck: "5 seconds"
    }))
    for (const queue of queues) {
      yield* Effect.forkScoped(consume({ topic: directTopic, group: queue, prefetch: 10 }, makeSalesWorker(db, queue, queue).handler))
    }
    yield* Subscriber.use((s) => s.declare({ topic: directTopic, group: "sales_requests" }))

    const next = prng(options.seed)
    const pick = <A>(items: ReadonlyArray<A>) => items[Math.floor(next() * items.length)]!
    const day = () => `2024-${String(1 + Math.floor(next() * 12)).padStart(2, "0")}-${String(1 + Math.floor(next() * 28)).padStart(2, "0")}`
    const requests = Array.from({ length: options.requests }, () => {
      const [from, to] = [day(), day()].sort()
      return JSON.stringify({ region: pick(regions), ...(next() < 0.5 ? { category: pick(categories) } : {}), from, to })
    })
    const started = yield* Clock.currentTimeMillis
    yield* Publisher.use((p) =>
      p.publish(directTopic, requests.map((body, i) => ({
        key: "sales_requests",
        headers: { [Headers.replyTo]: replyGroup, [Headers.correlationId]: `demo-${i}` },
        body
      })))
    )
    let correct = 0
    let errors = 0
    const seen = new Set<string>()
    while (seen.size < requests.length) {
      const delivery = yield* replies.take
      yield* delivery.ack
      const id = delivery.message.headers[Headers.correlationId] ?? ""
      const index = Number(id.slice("demo-".length))
      if (!id.startsWith("demo-") || seen.has(id) || !(index >= 0 && index < requests.length)) continue
      seen.add(id)
      const reply = bodyText(delivery.message)
      const expected = yield* answer(db, new TextEncoder().encode(requests[index]!))
      if (reply === JSON.stringify(expected)) correct++
      if (!expected.ok) errors++
    }
    const finished = yield* Clock.currentTimeMillis
    return { sent: requests.length, correct, errors, millis: finished - started, workers: balancer.snapshot() } satisfies SalesDemoResult
  }))
