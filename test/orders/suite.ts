/**
 * The orders API against a SqlDatabase backend, through `app.request` (no sockets): shared by the
 * PGlite and the PostgreSQL suites.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import { SqlDatabase, type SqlDatabaseShape, SqlError } from "../../src/capabilities/SqlDatabase.ts"
import { makeOrdersApi, type OrdersApi } from "../../src/orders/api.ts"
import * as Orders from "../../src/orders/sql.ts"
import { migrate } from "../../src/sql/migrations.ts"

export interface OrdersHarness {
  readonly app: OrdersApi
  readonly query: <R extends object>(text: string, params?: ReadonlyArray<unknown>) => Promise<ReadonlyArray<R>>
  readonly post: (body: unknown, headers?: Record<string, string>) => Promise<Response>
  readonly counts: () => Promise<{ orders: number; items: number; events: number; keys: number }>
  readonly close: () => Promise<void>
}

/** A migrated database behind `layer`, with `wrap` applied to the SqlDatabase the app sees. */
export const harness = async (
  layer: Layer.Layer<SqlDatabase, SqlError>,
  wrap: (db: SqlDatabaseShape) => SqlDatabaseShape = (db) => db
): Promise<OrdersHarness> => {
  const runtime = ManagedRuntime.make(layer)
  await runtime.runPromise(migrate(Orders.migrations, { direction: "up", table: Orders.migrationsTable }))
  const app = await runtime.runPromise(
    Effect.flatMap(SqlDatabase, (db) => makeOrdersApi().pipe(Effect.provideService(SqlDatabase, wrap(db))))
  )
  const query = <R extends object>(text: string, params?: ReadonlyArray<unknown>) =>
    runtime.runPromise(SqlDatabase.use((db) => db.query<R>(text, params)))
  const count = async (table: string) => (await query<{ n: number }>(`select count(*)::int as n from ${table}`))[0]!.n
  return {
    app,
    query,
    post: (body, headers = {}) =>
      Promise.resolve(app.request("/orders", {
        method: "POST",
        headers: { "content-type": "application/json", ...headers },
        body: typeof body === "string" ? body : JSON.stringify(body)
      })),
    counts: async () => ({
      orders: await count("orders"),
      items: await count("order_items"),
      events: await count("outbox_events"),
      keys: await count("idempotency_keys")
    }),
    close: () => runtime.dispose()
  }
}

export const validOrder = {
  customerId: "c-1",
  items: [{ sku: "apple", quantity: 3, unitPrice: 0.1 }, { sku: "pear", quantity: 1, unitPrice: 0.2 }]
}

/** The happy path: one order, its items, one pending event with the SPEC's JSON. */
export const happyPath = (setup: () => Promise<OrdersHarness>) => {
  let h: OrdersHarness
  beforeAll(async () => {
    h = await setup()
  })
  afterAll(() => h.close())

  test("POST /orders answers 201 with the order, an exact total and a Location; GET reads it back", async () => {
    const before = await h.counts()
    const response = await h.post(validOrder)
    expect(response.status).toBe(201)
    const text = await response.text()
    const order = JSON.parse(text) as { id: string; total: number; createdAt: string; items: unknown }
    expect(text).toContain(`"total":0.5,`)
    expect(order.total).toBe(0.5)
    expect(order.items).toEqual(validOrder.items)
    expect(response.headers.get("location")).toBe(`/orders/${order.id}`)
    expect(new Date(order.createdAt).toISOString()).toBe(order.createdAt)
    const after = await h.counts()
    expect(after).toEqual({ orders: before.orders + 1, items: before.items + 2, events: before.events + 1, keys: before.keys })

    const [event] = await h.query<{ id: string; payload: Record<string, unknown>; status: string; aggregate_id: string; aggregate_seq: string; event_type: string; attempts: number }>(
      "select id::text as id, payload, status, aggregate_id, aggregate_seq::text as aggregate_seq, event_type, attempts from outbox_events where aggregate_id = $1",
      [order.id]
    )
    expect(event).toEqual({
      id: event!.id,
      payload: { id: event!.id, type: "OrderCreated", aggregateId: order.id, occurredAt: order.createdAt, data: order },
      status: "pending",
      aggregate_id: order.id,
      aggregate_seq: "1",
      event_type: "OrderCreated",
      attempts: 0
    })
    const [total] = await h.query<{ total_cents: string }>("select total_cents::text as total_cents from orders where id = $1", [order.id])
    expect(total!.total_cents).toBe("50")

    const got = await h.app.request(`/orders/${order.id}`)
    expect(got.status).toBe(200)
    expect(await got.json()).toEqual(order)
  })

  test("the outbox row carries the request span's traceparent", async () => {
    const response = await h.post(validOrder)
    const order = (await response.json()) as { id: string }
    const [row] = await h.query<{ headers: { traceparent?: string } }>("select headers from outbox_events where aggregate_id = $1", [order.id])
    expect(row!.headers.traceparent).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$/)
  })

  test("a caller's traceparent is the parent: the outbox row carries its trace id and a new span id", async () => {
    const traceId = "4bf92f3577b34da6a3ce929d0e0e4736"
    const callerSpan = "00f067aa0ba902b7"
    const response = await h.post(validOrder, { traceparent: `00-${traceId}-${callerSpan}-01` })
    const order = (await response.json()) as { id: string }
    const [row] = await h.query<{ headers: { traceparent?: string } }>("select headers from outbox_events where aggregate_id = $1", [order.id])
    const [, trace, span, flags] = row!.headers.traceparent!.split("-")
    expect(trace).toBe(traceId)
    expect(span).not.toBe(callerSpan)
    expect(flags).toBe("01")
  })

  test("a replayed Idempotency-Key returns the first response and creates nothing", async () => {
    const key = crypto.randomUUID()
    const first = await h.post(validOrder, { "idempotency-key": key })
    expect(first.status).toBe(201)
    const firstBody = await first.text()
    const before = await h.counts()
    // Keys in another order and an unknown field: the same request.
    const again = await h.post({ extra: true, items: validOrder.items, customerId: validOrder.customerId }, { "idempotency-key": key })
    expect(again.status).toBe(201)
    expect(await again.text()).toBe(firstBody)
    expect(again.headers.get("location")).toBe(first.headers.get("location"))
    expect(await h.counts()).toEqual(before)
  })

  test("the same Idempotency-Key with another body is 422 and writes nothing", async () => {
    const key = crypto.randomUUID()
    expect((await h.post(validOrder, { "idempotency-key": key })).status).toBe(201)
    const before = await h.counts()
    const other = await h.post({ ...validOrder, customerId: "c-2" }, { "idempotency-key": key })
    expect(other.status).toBe(422)
    expect(((await other.json()) as { error: string }).error).toContain(key)
    expect(await h.counts()).toEqual(before)
  })

  test("GET answers 404 for an absent order and 400 for an id that is not a UUID", async () => {
    const absent = await h.app.request(`/orders/${crypto.randomUUID()}`)
    expect(absent.status).toBe(404)
    expect(((await absent.json()) as { error: string }).error).toContain("not found")
    const bad = await h.app.request("/orders/not-a-uuid")
    expect(bad.status).toBe(400)
    expect(bad.headers.get("content-type")).toContain("application/json")
  })
}

/** A SqlDatabase whose transactions fail the statement matching `pattern`. */
export const failingStatement = (pattern: RegExp) => (db: SqlDatabaseShape): SqlDatabaseShape => ({
  ...db,
  transaction: (body) =>
    db.transaction((tx) =>
      body({
        ...tx,
        query: (text, params) =>
          pattern.test(text) ? Effect.fail(new SqlError({ operation: "query", cause: new Error("injected failure") })) : tx.query(text, params),
        commitAfter: (text, params) =>
          pattern.test(text) ? Effect.fail(new SqlError({ operation: "query", cause: new Error("injected failure") })) : tx.commitAfter(text, params)
      })
    )
})

export { describe }
