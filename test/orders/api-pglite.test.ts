/**
 * The orders API on embedded PGlite: the bad-input table (each answer, and nothing written),
 * the happy path, idempotency and atomicity.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import * as PgliteSql from "../../layers/pglite/sql.ts"
import { failingStatement, happyPath, harness, type OrdersHarness, validOrder } from "./suite.ts"

describe("orders API on PGlite", () => {
  happyPath(() => harness(PgliteSql.layer()))
})

const item = validOrder.items[0]!

// [name, body, fields]: every case is a 400 with exactly these paths.
const invalid: ReadonlyArray<readonly [string, unknown, ReadonlyArray<string>]> = [
  ["empty object", {}, ["customerId", "items"]],
  ["body is an array", [], [""]],
  ["body is null", null, [""]],
  ["body is a string", "\"order\"", [""]],
  ["customerId a number", { ...validOrder, customerId: 7 }, ["customerId"]],
  ["customerId empty", { ...validOrder, customerId: "" }, ["customerId"]],
  ["items missing", { customerId: "c" }, ["items"]],
  ["items not an array", { customerId: "c", items: {} }, ["items"]],
  ["items empty", { customerId: "c", items: [] }, ["items"]],
  ["item not an object", { customerId: "c", items: [3] }, ["items[0]"]],
  ["sku missing", { customerId: "c", items: [{ quantity: 1, unitPrice: 1 }] }, ["items[0].sku"]],
  ["sku empty", { customerId: "c", items: [{ ...item, sku: "" }] }, ["items[0].sku"]],
  ["quantity 0", { customerId: "c", items: [{ ...item, quantity: 0 }] }, ["items[0].quantity"]],
  ["quantity -1", { customerId: "c", items: [{ ...item, quantity: -1 }] }, ["items[0].quantity"]],
  ["quantity 1.5", { customerId: "c", items: [{ ...item, quantity: 1.5 }] }, ["items[0].quantity"]],
  ["quantity a string", { customerId: "c", items: [{ ...item, quantity: "2" }] }, ["items[0].quantity"]],
  ["negative price", { customerId: "c", items: [{ ...item, unitPrice: -0.01 }] }, ["items[0].unitPrice"]],
  ["price a string", { customerId: "c", items: [{ ...item, unitPrice: "1.00" }] }, ["items[0].unitPrice"]],
  ["price with three decimals", { customerId: "c", items: [{ ...item, unitPrice: 1.005 }] }, ["items[0].unitPrice"]],
  ["price too large for JSON's numbers (1e400 is Infinity)", "{\"customerId\":\"c\",\"items\":[{\"sku\":\"a\",\"quantity\":1,\"unitPrice\":1e400}]}", ["items[0].unitPrice"]],
  ["several bad items, each named", { customerId: "", items: [item, { sku: "", quantity: 0, unitPrice: -1 }] }, [
    "customerId",
    "items[1].sku",
    "items[1].quantity",
    "items[1].unitPrice"
  ]]
]

describe("orders API on PGlite: bad input writes nothing", () => {
  let h: OrdersHarness
  beforeAll(async () => {
    h = await harness(PgliteSql.layer())
  })
  afterAll(() => h.close())
  const nothing = { orders: 0, items: 0, events: 0, keys: 0 }

  for (const [name, body, paths] of invalid) {
    test(`${name} → 400 naming ${paths.map((p) => p === "" ? "the body" : p).join(", ")}`, async () => {
      const response = await h.post(body, { "idempotency-key": crypto.randomUUID() })
      expect(response.status).toBe(400)
      const answer = (await response.json()) as { error: string; fields: Array<{ path: string; message: string }> }
      expect(answer.error).toBe("validation")
      expect(answer.fields.map((f) => f.path)).toEqual([...paths])
      for (const field of answer.fields) expect(field.message.length).toBeGreaterThan(0)
      expect(await h.counts()).toEqual(nothing)
    })
  }

  test("a body that is not JSON → 400 with the parser's message", async () => {
    const response = await h.post("{\"customerId\": ")
    expect(response.status).toBe(400)
    expect(((await response.json()) as { error: string }).error).toStartWith("body is not JSON")
    expect(await h.counts()).toEqual(nothing)
  })

  test("a body that is not valid UTF-8 → 400, not a customer named with U+FFFD", async () => {
    const bytes = new Uint8Array([...new TextEncoder().encode(`{"customerId":"c`), 0xff, ...new TextEncoder().encode(`","items":[{"sku":"a","quantity":1,"unitPrice":1}]}`)])
    const response = await h.app.request("/orders", { method: "POST", headers: { "content-type": "application/json" }, body: bytes })
    expect(response.status).toBe(400)
    expect(((await response.json()) as { error: string }).error).toBe("body is not valid UTF-8")
    expect(await h.counts()).toEqual(nothing)
  })

  test("text/plain → 415; no content type → 415", async () => {
    const plain = await h.post(validOrder, { "content-type": "text/plain" })
    expect(plain.status).toBe(415)
    expect(plain.headers.get("content-type")).toContain("application/json")
    const none = await h.app.request("/orders", { method: "POST", body: new Blob([JSON.stringify(validOrder)]) })
    expect(none.status).toBe(415)
    expect(await h.counts()).toEqual(nothing)
  })

  test("application/json; charset=utf-8 is JSON", async () => {
    const response = await h.post({ customerId: "c", items: [] }, { "content-type": "application/json; charset=utf-8" })
    expect(response.status).toBe(400)
  })

  test("a 70 KiB body → 413, also when streamed without a Content-Length", async () => {
    const big = JSON.stringify({ ...validOrder, padding: "x".repeat(70 * 1024) })
    expect((await h.post(big)).status).toBe(413)
    const bytes = new TextEncoder().encode(big)
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let i = 0; i < bytes.length; i += 8192) controller.enqueue(bytes.slice(i, i + 8192))
        controller.close()
      }
    })
    const streamed = await h.app.request("/orders", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: stream,
      duplex: "half"
    } as RequestInit)
    expect(streamed.status).toBe(413)
    expect(await h.counts()).toEqual(nothing)
  })

  test("unknown extra fields are ignored", async () => {
    const response = await h.post({ ...validOrder, coupon: "X", items: [{ ...item, colour: "red" }] })
    expect(response.status).toBe(201)
    const order = (await response.json()) as Record<string, unknown>
    expect(Object.keys(order).sort()).toEqual(["createdAt", "customerId", "id", "items", "total"])
    expect(order.items).toEqual([item])
    await h.query("delete from outbox_events; delete from orders")
  })
})

describe("orders API on PGlite: atomicity", () => {
  let h: OrdersHarness
  beforeAll(async () => {
    h = await harness(PgliteSql.layer(), failingStatement(/insert into outbox_events/))
  })
  afterAll(() => h.close())

  test("a failure after the order insert leaves neither the order, its items, the event nor the key", async () => {
    const response = await h.post(validOrder, { "idempotency-key": "k-1" })
    expect(response.status).toBe(500)
    expect(await response.json()).toEqual({ error: "internal error" })
    expect(await h.counts()).toEqual({ orders: 0, items: 0, events: 0, keys: 0 })
  })
})
