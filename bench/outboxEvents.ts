/** Outbox rows for `outbox.ts` and its inserter, shaped like the orders API's (src/orders/orders.ts). */

const hex = (bytes: number) => Array.from(crypto.getRandomValues(new Uint8Array(bytes)), (b) => b.toString(16).padStart(2, "0")).join("")

/** A sampled W3C traceparent, as the API stores from its request span. */
export const traceparent = () => `00-${hex(16)}-${hex(8)}-01`

/** An `OrderCreated` event with a two-item order. */
export const orderEvent = (eventId: string, orderId: string, n: number) => {
  const createdAt = new Date().toISOString()
  const items = [
    { sku: `SKU-${n % 97}`, quantity: 1 + (n % 3), unitPrice: 19.99 },
    { sku: `SKU-${n % 89}`, quantity: 2, unitPrice: 5.5 }
  ]
  const total = items.reduce((sum, item) => sum + item.quantity * Math.round(item.unitPrice * 100), 0) / 100
  return {
    id: eventId,
    type: "OrderCreated",
    aggregateId: orderId,
    occurredAt: createdAt,
    data: { id: orderId, customerId: `customer-${n % 1000}`, items, total, createdAt }
  }
}

/** Wall-clock milliseconds with sub-millisecond precision, comparable between processes. */
export const now = () => performance.timeOrigin + performance.now()
