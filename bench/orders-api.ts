/**
 * `POST /orders` over HTTP against a raw postgres.js loop running the same transaction, in one run.
 *
 *   bun run bench/orders-api.ts [--concurrency 32] [--seconds 5] [--rounds 3] [--pool 10] [--json]
 *
 * On a fresh database (the orders migrations applied), each round runs, one after the other:
 * 1. raw: `--concurrency` loops, each running the API's transaction with postgres.js directly
 *    (BEGIN; the same three statements from src/orders/sql.ts with the same parameters: the
 *    order, its items as JSON, the `OrderCreated` outbox row with its payload and a traceparent;
 *    COMMIT), back to back for `--seconds`.
 * 2. API: the Hono app of `makeOrdersApi` on the PostgreSQL layer, served by Bun.serve through
 *    `layers/platform/httpServer.ts` as the program serves it, and `--concurrency` loops in this
 *    process, each POSTing an order with `fetch` (keep-alive) and reading the answer, for
 *    `--seconds`. Every answer must be a 201. The client's own CPU time is in the API's figure,
 *    on the same two cores: the raw loop has no client.
 * Both use one pool of `--pool` connections (the programs' `DB_MAX_CONNECTIONS` default: 10), no
 * Idempotency-Key, and the same two-item order. Rate = transactions (or 201s) / elapsed time;
 * latency per transaction (or request, from sending to the end of its body) into HDR
 * histograms (µs). Rounds alternate which goes first, and medians are reported as in
 * `counter.ts`: the median rates, the median of per-round ratios with their spread, the ratio of
 * medians; latency over all rounds' requests. At the end, the orders in the table must be
 * exactly the transactions and 201s counted.
 */
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Scope from "effect/Scope"
import * as hdr from "hdr-histogram-js"
import postgres from "postgres"
import { serve } from "../layers/platform/httpServer.ts"
import * as PostgresSql from "../layers/postgres/sql.ts"
import { makeOrdersApi } from "../src/orders/api.ts"
import * as Orders from "../src/orders/sql.ts"
import { migrate } from "../src/sql/migrations.ts"
import { traceparent } from "./outboxEvents.ts"
import { median } from "./summary.ts"

const text = (name: string, fallback: string) => {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 ? process.argv[i + 1]! : fallback
}
const arg = (name: string, fallback: number) => {
  const value = Number(text(name, String(fallback)))
  if (!Number.isFinite(value) || value <= 0) throw new Error(`--${name}: not a number > 0`)
  return value
}
const concurrency = arg("concurrency", 32)
const seconds = arg("seconds", 5)
const rounds = arg("rounds", 3)
const pool = arg("pool", 10)
const asJson = process.argv.includes("--json")
const adminUrl = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test"
const database = `bench_orders_${Date.now().toString(36)}`
const goalRatio = 0.7

const order = {
  customerId: "customer-1",
  items: [{ sku: "SKU-1", quantity: 2, unitPrice: 19.99 }, { sku: "SKU-2", quantity: 1, unitPrice: 5.5 }]
}
const body = JSON.stringify(order)

const histogram = () => hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 120_000_000, numberOfSignificantValueDigits: 3 })

interface Run {
  readonly perSecond: number
  readonly count: number
}

/** `--concurrency` loops of `once` for `--seconds`, each call's latency into `h`. */
const drive = async (once: () => Promise<void>, h: hdr.Histogram): Promise<Run> => {
  let count = 0
  const started = performance.now()
  const end = started + seconds * 1000
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (performance.now() < end) {
      const t = performance.now()
      await once()
      h.recordValue(Math.round((performance.now() - t) * 1000))
      count++
    }
  }))
  return { perSecond: count / ((performance.now() - started) / 1000), count }
}

/** The API's transaction (src/orders/orders.ts, no Idempotency-Key), on postgres.js alone. */
const rawTransaction = (sql: postgres.Sql) => () =>
  sql.begin(async (tx) => {
    const id = crypto.randomUUID()
    const lines = order.items.map((item, line) => ({
      line,
      sku: item.sku,
      quantity: item.quantity,
      unit_price_cents: Math.round(item.unitPrice * 100)
    }))
    const totalCents = lines.reduce((sum, line) => sum + BigInt(line.quantity) * BigInt(line.unit_price_cents), 0n)
    const [created] = await tx.unsafe<Array<{ created_at: Date }>>(Orders.insertOrder, [id, order.customerId, totalCents.toString()], { prepare: true })
    await tx.unsafe(Orders.insertItems, [id, JSON.stringify(lines)], { prepare: true })
    const answer = {
      id,
      customerId: order.customerId,
      items: order.items.map((item) => ({ sku: item.sku, quantity: item.quantity, unitPrice: Math.round(item.unitPrice * 100) / 100 })),
      total: Number(totalCents) / 100,
      createdAt: created!.created_at.toISOString()
    }
    const eventId = crypto.randomUUID()
    const payload = { id: eventId, type: "OrderCreated", aggregateId: id, occurredAt: answer.createdAt, data: answer }
    await tx.unsafe(Orders.insertEvent, [eventId, "order", id, "OrderCreated", JSON.stringify(payload), JSON.stringify({ traceparent: traceparent() })], { prepare: true })
    return JSON.stringify(answer)
  }).then(() => {})

const admin = postgres(adminUrl, { max: 1, onnotice: () => {} })
await admin.unsafe(`create database ${database}`)
const url = (() => {
  const u = new URL(adminUrl)
  u.pathname = `/${database}`
  return u.toString()
})()
const scope = Effect.runSync(Scope.make())
const raw = postgres(url, { max: pool, onnotice: () => {}, connection: { plan_cache_mode: "force_custom_plan" } })
const say = (line: string) => console.log(line)
try {
  await Effect.runPromise(
    migrate(Orders.migrations, { direction: "up", table: Orders.migrationsTable }).pipe(Effect.provide(PostgresSql.layer({ url, max: 1 })))
  )
  const bound = await Effect.runPromise(Effect.gen(function*() {
    const services = yield* Layer.buildWithScope(PostgresSql.layer({ url, max: pool }), scope)
    const app = yield* makeOrdersApi().pipe(Effect.provideContext(services))
    return yield* serve(app.fetch, { port: 0, hostname: "127.0.0.1" }).pipe(Scope.provide(scope))
  }))
  const endpoint = `${bound.url}/orders`
  const post = async () => {
    const response = await fetch(endpoint, { method: "POST", headers: { "content-type": "application/json" }, body })
    const answer = await response.text()
    if (response.status !== 201) throw new Error(`POST /orders answered ${response.status}: ${answer.slice(0, 200)}`)
  }
  say(`bench/orders-api: concurrency ${concurrency}, ${seconds} s per run, ${rounds} rounds, pool ${pool} connections, ${adminUrl.replace(/:[^:@/]*@/, ":***@")}`)
  // Warm-up: connections of both pools, the JIT, prepared statements.
  await Promise.all(Array.from({ length: concurrency }, () => rawTransaction(raw)()))
  await Promise.all(Array.from({ length: concurrency }, post))
  const rawAll = histogram()
  const apiAll = histogram()
  const results: Array<{ raw: Run; api: Run; ratio: number }> = []
  const ms = (h: hdr.Histogram, p: number) => (h.getValueAtPercentile(p) / 1000).toFixed(1)
  for (let round = 1; round <= rounds; round++) {
    const rawH = histogram()
    const apiH = histogram()
    const runRaw = () => drive(rawTransaction(raw), rawH)
    const runApi = () => drive(post, apiH)
    let r: Run
    let a: Run
    if (round % 2 === 1) {
      r = await runRaw()
      a = await runApi()
    } else {
      a = await runApi()
      r = await runRaw()
    }
    rawAll.add(rawH)
    apiAll.add(apiH)
    results.push({ raw: r, api: a, ratio: a.perSecond / r.perSecond })
    say(
      `round ${round}: raw postgres.js loop ${Math.round(r.perSecond)} tx/s (p50 ${ms(rawH, 50)} ms, p99 ${ms(rawH, 99)} ms) | ` +
        `POST /orders ${Math.round(a.perSecond)} req/s = ${(a.perSecond / r.perSecond).toFixed(2)} of raw (p50 ${ms(apiH, 50)} ms, p99 ${ms(apiH, 99)} ms)`
    )
    rawH.destroy()
    apiH.destroy()
  }
  const [row] = await raw.unsafe<Array<{ n: number }>>("select count(*)::int4 as n from orders")
  const n = row?.n
  const expected = 2 * concurrency + results.reduce((sum, r) => sum + r.raw.count + r.api.count, 0)
  if (n !== expected) throw new Error(`${n} orders in the table, ${expected} counted`)
  const rawMedian = median(results.map((r) => r.raw.perSecond))
  const apiMedian = median(results.map((r) => r.api.perSecond))
  const ratios = results.map((r) => r.ratio)
  const summary = {
    concurrency,
    seconds,
    rounds,
    pool,
    rawPerSecond: Math.round(rawMedian),
    apiPerSecond: Math.round(apiMedian),
    ratio: Number(median(ratios).toFixed(2)),
    ratioOfMedians: Number((apiMedian / rawMedian).toFixed(2)),
    ratioMin: Number(Math.min(...ratios).toFixed(2)),
    ratioMax: Number(Math.max(...ratios).toFixed(2)),
    rawLatencyMs: { p50: Number(ms(rawAll, 50)), p99: Number(ms(rawAll, 99)), max: Number((rawAll.maxValue / 1000).toFixed(1)) },
    apiLatencyMs: { p50: Number(ms(apiAll, 50)), p99: Number(ms(apiAll, 99)), max: Number((apiAll.maxValue / 1000).toFixed(1)) }
  }
  say(
    `median: raw postgres.js loop ${summary.rawPerSecond} tx/s; latency over all rounds p50 ${summary.rawLatencyMs.p50} ms, ` +
      `p99 ${summary.rawLatencyMs.p99} ms, max ${summary.rawLatencyMs.max} ms`
  )
  say(
    `median: POST /orders ${summary.apiPerSecond} req/s; ratio to raw: median of per-round ratios ${summary.ratio.toFixed(2)} ` +
      `(spread ${summary.ratioMin.toFixed(2)}–${summary.ratioMax.toFixed(2)}), ratio of medians ${summary.ratioOfMedians.toFixed(2)} ` +
      `(goal >= ${goalRatio}: ${summary.ratio >= goalRatio ? "met" : "NOT met"}); latency over all rounds p50 ${summary.apiLatencyMs.p50} ms, ` +
      `p99 ${summary.apiLatencyMs.p99} ms, max ${summary.apiLatencyMs.max} ms`
  )
  if (asJson) console.log(JSON.stringify(summary))
} finally {
  await raw.end({ timeout: 5 })
  await Effect.runPromise(Scope.close(scope, Exit.void))
  await admin.unsafe(`drop database if exists ${database} with (force)`)
  await admin.end({ timeout: 5 })
}
