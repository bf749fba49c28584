/**
 * The orders demonstration: the orders API, the outbox relay and the order-events consumer in
 * one process, driven by real HTTP requests, then the read model compared with what the API
 * answered.
 *
 * It runs on whatever `SqlDatabase`, `Publisher` and `Subscriber` it is given (the demo program:
 * PGlite and the memory broker, no servers) and serves the API with the `serve` it is handed
 * (an ephemeral port), so this file names no driver. Requests go out with the standard `fetch`.
 *
 * The API and the consumer share the one database here; both systems' tables are apart
 * (migrations systems `orders` and `order-events`), as they are when each has its own.
 */
import * as Config from "effect/Config"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import { type SqlClient, SqlDatabase } from "../capabilities/SqlDatabase.ts"
import { Subscriber } from "../capabilities/Subscriber.ts"
import { consume } from "../messaging/consume.ts"
import type * as Outcome from "../messaging/Outcome.ts"
import { relayDefaults } from "../outbox/config.ts"
import { makeRelay } from "../outbox/relay.ts"
import * as OutboxSql from "../outbox/sql.ts"
import { intInRange } from "../runtime/config.ts"
import { migrate } from "../sql/migrations.ts"
import { makeOrdersApi } from "./api.ts"
import type { Order } from "./orders.ts"
import { applyOrderEvents, customerOrders } from "./readModel.ts"
import * as ReadModel from "./readModelSql.ts"
import * as Orders from "./sql.ts"

export interface OrdersDemoOptions {
  /** Orders created through `POST /orders`. */
  readonly orders: number
  /** Customers the orders are spread over. */
  readonly customers: number
  /** Orders sent with an `Idempotency-Key` and then sent again with it (at most `orders`). */
  readonly replays: number
  /** Requests the API must refuse (bad JSON, bad fields, wrong content type). */
  readonly badRequests: number
  /** Requests in flight at once. */
  readonly concurrency: number
  /** How long the relay and the consumer may take to catch up once the requests are answered. */
  readonly timeout: Duration.Duration
}

export const defaultOrdersDemoOptions: OrdersDemoOptions = {
  orders: 200,
  customers: 6,
  replays: 20,
  badRequests: 6,
  concurrency: 8,
  timeout: Duration.seconds(30)
}

/** The sizes from flags or the environment: `--orders 200 --customers 6 --replays 20 --bad-requests 6`. */
export const demoConfig = (defaults: OrdersDemoOptions = defaultOrdersDemoOptions): Config.Config<OrdersDemoOptions> =>
  Config.all({
    orders: intInRange("ORDERS", 1, 100_000).pipe(Config.withDefault(defaults.orders)),
    customers: intInRange("CUSTOMERS", 1, 10_000).pipe(Config.withDefault(defaults.customers)),
    replays: intInRange("REPLAYS", 0, 100_000).pipe(Config.withDefault(defaults.replays)),
    badRequests: intInRange("BAD_REQUESTS", 0, 100_000).pipe(Config.withDefault(defaults.badRequests)),
    concurrency: Config.succeed(defaults.concurrency),
    timeout: Config.succeed(defaults.timeout)
  })

/** A customer's line of the read model, or of what the API created. */
export interface CustomerTotals {
  readonly customerId: string
  readonly orders: number
  readonly totalCents: bigint
}

export interface OrdersDemoResult {
  /** Orders the API created (201, not a replay). */
  readonly created: number
  /** Repeated requests answered with the first answer, byte for byte, creating nothing. */
  readonly replayed: number
  /** Refused requests by status. */
  readonly refused: Readonly<Record<string, number>>
  /** Outbox rows by status once the relay caught up. */
  readonly outbox: Readonly<Record<"pending" | "published" | "failed", number>>
  /** Events the consumer applied (rows of its inbox). */
  readonly applied: number
  readonly readModel: ReadonlyArray<CustomerTotals>
  readonly expected: ReadonlyArray<CustomerTotals>
  /** Everything that differs from what a correct system does; empty when all is well. */
  readonly problems: ReadonlyArray<string>
}

/** Serves a fetch handler until the scope closes; the URL a client on this host reaches it at. */
export type Serve<E> = (handler: (request: Request) => Response | Promise<Response>) => Effect.Effect<{ readonly url: string }, E, Scope.Scope>

/** Where the relay publishes and the consumer reads: the programs' defaults. */
export const demoSubscription = { topic: relayDefaults.topic, group: "txstream-consumer-group" } as const

const catalogue = [
  { sku: "apple", unitPrice: 0.1 },
  { sku: "pear", unitPrice: 0.2 },
  { sku: "coffee-beans", unitPrice: 12.49 },
  { sku: "notebook", unitPrice: 3.05 },
  { sku: "headphones", unitPrice: 79.9 }
] as const

export const customerName = (n: number) => `customer-${String(n + 1).padStart(2, "0")}`

/** Order `i`'s body: its customer and items follow from `i`, so runs repeat. */
export const orderBody = (i: number, customers: number) => ({
  customerId: customerName((i * 7) % customers),
  items: Array.from({ length: 1 + (i % 3) }, (_, line) => {
    const product = catalogue[(i + line * 2) % catalogue.length]!
    return { sku: product.sku, quantity: 1 + ((i + line) % 4), unitPrice: product.unitPrice }
  })
})

interface BadRequest {
  readonly what: string
  readonly contentType: string
  readonly body: string | Uint8Array<ArrayBuffer>
  readonly status: number
}

/** Requests the API must refuse, and the status each must get; nothing is written for any. */
export const badRequests: ReadonlyArray<BadRequest> = [
  { what: "no items", contentType: "application/json", body: `{"customerId":"customer-01","items":[]}`, status: 400 },
  { what: "not JSON", contentType: "application/json", body: `{"customerId":"customer-01","items":[`, status: 400 },
  { what: "text/plain", contentType: "text/plain", body: JSON.stringify(orderBody(0, 1)), status: 415 },
  {
    what: "quantity 0 and a negative price",
    contentType: "application/json",
    body: `{"customerId":"customer-02","items":[{"sku":"apple","quantity":0,"unitPrice":-1}]}`,
    status: 400
  },
  { what: "invalid UTF-8", contentType: "application/json", body: new Uint8Array([0x7b, 0xff, 0x7d]), status: 400 },
  { what: "XML", contentType: "application/xml", body: "<order/>", status: 415 }
]

interface Answer {
  readonly status: number
  readonly replayed: boolean
  readonly body: string
}

const post = (url: string, body: string | Uint8Array<ArrayBuffer>, headers: Record<string, string>) =>
  Effect.tryPromise({
    try: async (): Promise<Answer> => {
      const response = await fetch(`${url}/orders`, { method: "POST", headers, body })
      return { status: response.status, replayed: response.headers.get("idempotent-replayed") === "true", body: await response.text() }
    },
    catch: (cause) => new Error(`POST ${url}/orders failed: ${String(cause)}`)
  }).pipe(Effect.orDie)

const cents = (amount: number): bigint => BigInt(Math.round(amount * 100))

/** Sends the orders (each keyed one twice), and the bad requests spread among them. */
const sendTraffic = (url: string, options: OrdersDemoOptions) =>
  Effect.gen(function*() {
    const created: Array<Order> = []
    const refused: Record<string, number> = Object.create(null)
    const problems: Array<string> = []
    let replayed = 0
    const replays = Math.min(options.replays, options.orders)
    const keyedEvery = replays === 0 ? Infinity : options.orders / replays

    const sendOrder = (i: number) =>
      Effect.gen(function*() {
        const body = JSON.stringify(orderBody(i, options.customers))
        const keyed = Math.floor(i % keyedEvery) === 0 && Math.floor(i / keyedEvery) < replays
        const headers: Record<string, string> = { "content-type": "application/json" }
        if (keyed) headers["idempotency-key"] = `demo-order-${i}`
        const first = yield* post(url, body, headers)
        if (first.status !== 201) return problems.push(`order ${i} got ${first.status}: ${first.body}`)
        created.push(JSON.parse(first.body) as Order)
        if (!keyed) return
        // The client's retry: the same key and body must get the first answer and create nothing.
        const again = yield* post(url, body, headers)
        if (again.status === 201 && again.replayed && again.body === first.body) replayed++
        else problems.push(`the replay of order ${i} got ${again.status} (replayed: ${again.replayed}): ${again.body}`)
      })

    const sendBad = (n: number) =>
      Effect.gen(function*() {
        const bad = badRequests[n % badRequests.length]!
        const answer = yield* post(url, bad.body, { "content-type": bad.contentType })
        refused[answer.status] = (refused[answer.status] ?? 0) + 1
        if (answer.status !== bad.status) problems.push(`a request with ${bad.what} got ${answer.status}, not ${bad.status}`)
      })

    // The bad requests go out among the orders, not after them.
    const spacing = Math.max(1, Math.floor(options.orders / Math.max(1, options.badRequests)))
    const jobs: Array<Effect.Effect<unknown>> = []
    for (let i = 0, bad = 0; i < options.orders || bad < options.badRequests; i++) {
      if (i < options.orders) jobs.push(sendOrder(i))
      if (bad < options.badRequests && (i % spacing === 0 || i >= options.orders)) jobs.push(sendBad(bad++))
    }
    yield* Effect.forEach(jobs, (job) => job, { concurrency: options.concurrency, discard: true })
    return { created, refused, replayed, problems }
  })

const StatusCount = Schema.Struct({ status: Schema.String, count: Schema.Number })
const Count = Schema.Struct({ n: Schema.Number })

const outboxCounts = (db: Pick<SqlClient, "queryAs">) =>
  db.queryAs(StatusCount, OutboxSql.countByStatus).pipe(Effect.map((rows) => {
    const counts = { pending: 0, published: 0, failed: 0 }
    for (const row of rows) counts[row.status as keyof typeof counts] = row.count
    return counts
  }))

const inboxSize = SqlDatabase.use((db) => db.queryAs(Count, ReadModel.countInbox)).pipe(Effect.map((rows) => rows[0]!.n))

/** What the read model must hold: the orders the API created, per customer. */
export const expectedTotals = (created: ReadonlyArray<Order>): ReadonlyArray<CustomerTotals> => {
  const byCustomer = new Map<string, { orders: number; totalCents: bigint }>()
  for (const order of created) {
    const line = byCustomer.get(order.customerId) ?? { orders: 0, totalCents: 0n }
    byCustomer.set(order.customerId, { orders: line.orders + 1, totalCents: line.totalCents + cents(order.total) })
  }
  return [...byCustomer].map(([customerId, line]) => ({ customerId, ...line })).sort((a, b) => a.customerId < b.customerId ? -1 : 1)
}

/** The lines of `actual` that differ from `expected`, said in words; none when they are equal. */
export const readModelDifferences = (expected: ReadonlyArray<CustomerTotals>, actual: ReadonlyArray<CustomerTotals>): Array<string> => {
  const shown = (line: CustomerTotals | undefined) => line === undefined ? "nothing" : `${line.orders} orders, ${line.totalCents} cents`
  const customers = [...new Set([...expected, ...actual].map((line) => line.customerId))].sort()
  return customers.flatMap((customerId) => {
    const want = expected.find((line) => line.customerId === customerId)
    const got = actual.find((line) => line.customerId === customerId)
    return want?.orders === got?.orders && want?.totalCents === got?.totalCents
      ? []
      : [`read model of ${customerId}: ${shown(got)}, the API created ${shown(want)}`]
  })
}

/**
 * Runs the demonstration and reports it; `problems` lists whatever went wrong (the caller
 * decides what a non-empty list means). Migrates both systems' tables first.
 */
export const ordersDemo = <E>(options: OrdersDemoOptions, serve: Serve<E>) =>
  Effect.scoped(Effect.gen(function*() {
    yield* migrate(Orders.migrations, { direction: "up", table: Orders.migrationsTable })
    yield* migrate(ReadModel.migrations, { direction: "up", table: ReadModel.migrationsTable })
    // Declared before the relay starts, so no event is published before its group exists.
    yield* Subscriber.use((s) => s.declare(demoSubscription))

    // Each handled event wakes the wait below, which then counts the inbox: no fixed sleep.
    const handled = yield* Queue.unbounded<Outcome.Outcome>()
    const apply = applyOrderEvents()
    yield* Effect.forkScoped(consume(demoSubscription, (received) => Effect.tap(apply(received), (outcome) => Queue.offer(handled, outcome))))
    const relay = yield* makeRelay({ ...relayDefaults, topic: demoSubscription.topic })
    yield* Effect.forkScoped(relay.run)
    const api = yield* makeOrdersApi()
    const server = yield* serve(api.fetch)
    yield* Effect.log(`orders API on ${server.url}: sending ${options.orders} orders from ${options.customers} customers`)

    const traffic = yield* sendTraffic(server.url, options)
    const problems = [...traffic.problems]
    const events = traffic.created.length

    // Woken by each handled event; ends when the inbox holds every event, or at a dead letter.
    const readModelCaughtUp = Effect.gen(function*() {
      for (;;) {
        if ((yield* inboxSize) >= events) return undefined
        for (const outcome of yield* Queue.takeAll(handled)) {
          if (outcome._tag === "DeadLetter") return `the consumer dead-lettered an event: ${outcome.reason}`
        }
      }
    })
    // The relay marks a batch published after the broker took it, so its last marks may trail
    // the read model by a moment.
    const db = yield* SqlDatabase
    const relayDone = outboxCounts(db).pipe(Effect.repeat({ until: (counts) => counts.pending === 0, schedule: Schedule.spaced("10 millis") }))
    const waited = yield* readModelCaughtUp.pipe(
      Effect.flatMap((problem) => problem === undefined ? Effect.as(relayDone, undefined) : Effect.succeed(problem)),
      Effect.timeoutOption(options.timeout)
    )
    if (Option.isNone(waited)) problems.push(`the relay and the read model had not caught up after ${Duration.format(options.timeout)}`)
    else if (waited.value !== undefined) problems.push(waited.value)

    const outbox = yield* outboxCounts(db)
    const applied = yield* inboxSize
    const readModel = (yield* customerOrders).map((row) => ({
      customerId: row.customer_id,
      orders: row.orders,
      totalCents: BigInt(row.total_cents)
    }))
    const expected = expectedTotals(traffic.created)
    if (outbox.published !== events || outbox.pending + outbox.failed !== 0) {
      problems.push(`outbox: ${outbox.published} published, ${outbox.pending} pending, ${outbox.failed} failed; the API created ${events} orders`)
    }
    if (applied !== events) problems.push(`the consumer applied ${applied} events; the API created ${events} orders`)
    problems.push(...readModelDifferences(expected, readModel))
    return {
      created: events,
      replayed: traffic.replayed,
      refused: traffic.refused,
      outbox,
      applied,
      readModel,
      expected,
      problems
    } satisfies OrdersDemoResult
  }))

const money = (totalCents: bigint) => `${totalCents / 100n}.${String(totalCents % 100n).padStart(2, "0")}`

/** The read model as a table, one row per customer. */
export const readModelTable = (result: OrdersDemoResult) =>
  Object.fromEntries(result.readModel.map((line) => [line.customerId, { orders: line.orders, total: money(line.totalCents) }]))

/** The summary's lines, the last saying whether the read model matches what the API created. */
export const summaryLines = (result: OrdersDemoResult): ReadonlyArray<string> => {
  const refused = Object.entries(result.refused).sort(([a], [b]) => Number(a) - Number(b))
  return [
    `orders created: ${result.created}; replays answered without a new order: ${result.replayed}`,
    `bad requests refused: ${refused.length === 0 ? "none" : refused.map(([status, n]) => `${n} × ${status}`).join(", ")}`,
    `events published: ${result.outbox.published} (pending ${result.outbox.pending}, failed ${result.outbox.failed}); applied to the read model: ${result.applied}`,
    ...result.problems.map((problem) => `PROBLEM: ${problem}`),
    result.problems.length === 0
      ? "read model matches the orders the API created"
      : "READ MODEL DIFFERS from the orders the API created"
  ]
}
