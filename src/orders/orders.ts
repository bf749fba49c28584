/**
 * The orders service: create an order with its `OrderCreated` outbox event in one transaction,
 * replay a stored response for a repeated `Idempotency-Key`, read an order back.
 *
 * Idempotency: the transaction first takes an advisory lock on the key, then reads the key's
 * row. Two requests with one key therefore run one after the other: the second sees the first's
 * committed row and replays it (or, when the first rolled back, creates the order itself). The
 * key's primary key is the backstop should the lock ever be bypassed. The request is compared by
 * the SHA-256 of its decoded form, so a retry that only reorders keys or adds unknown fields is
 * still the same request.
 */
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import { SqlDatabase, type SqlError, type SqlTransaction } from "../capabilities/SqlDatabase.ts"
import { currentTraceparent } from "../messaging/traceContext.ts"
import type { OrderRequest } from "./request.ts"
import * as Sql from "./sql.ts"

export interface OrderItem {
  readonly sku: string
  readonly quantity: number
  readonly unitPrice: number
}

export interface Order {
  readonly id: string
  readonly customerId: string
  readonly items: ReadonlyArray<OrderItem>
  readonly total: number
  readonly createdAt: string
}

/** A response as it went out, so a replay is the same bytes. */
export interface StoredResponse {
  readonly status: number
  readonly body: string
  readonly replayed: boolean
}

export class IdempotencyKeyReused extends Data.TaggedError("IdempotencyKeyReused")<{ readonly key: string }> {
  override get message() {
    return `Idempotency-Key "${this.key}" was already used with a different request body`
  }
}

export const aggregateType = "order"
export const orderCreated = "OrderCreated"

/** Cents to the number JSON shows with at most two decimals: the double nearest the exact amount. */
const fromCents = (cents: bigint | number): number => Number(cents) / 100

const toCents = (price: number): number => Math.round(price * 100)

const canonical = (request: OrderRequest): string =>
  JSON.stringify({
    customerId: request.customerId,
    items: request.items.map((item) => ({ sku: item.sku, quantity: item.quantity, unitPrice: item.unitPrice }))
  })

const KeyRow = Schema.Struct({ request_hash: Schema.String, response_status: Schema.Number, response_body: Schema.String })
const HashRow = Schema.Struct({ hash: Schema.String })
const CreatedRow = Schema.Struct({ created_at: Schema.Date })
const OrderRow = Schema.Struct({ id: Schema.String, customer_id: Schema.String, total_cents: Schema.String, created_at: Schema.Date })
const ItemRow = Schema.Struct({ sku: Schema.String, quantity: Schema.Number, unit_price_cents: Schema.String })

/**
 * The order, its items and its `OrderCreated` outbox row. The order and its items go out
 * together (one round trip); with `last`, the outbox row is the transaction's last statement and
 * goes with the COMMIT.
 */
const insertOrder = (tx: SqlTransaction, request: OrderRequest, last: boolean) =>
  Effect.gen(function*() {
    const id = crypto.randomUUID()
    const lines = request.items.map((item, line) => ({
      line,
      sku: item.sku,
      quantity: item.quantity,
      unit_price_cents: toCents(item.unitPrice)
    }))
    // BigInt: a quantity times a price in cents may pass 2^53 even when each is safe.
    const totalCents = lines.reduce((sum, line) => sum + BigInt(line.quantity) * BigInt(line.unit_price_cents), 0n)
    const [[created]] = yield* Effect.all([
      tx.queryAs(CreatedRow, Sql.insertOrder, [id, request.customerId, totalCents.toString()]),
      tx.query(Sql.insertItems, [id, JSON.stringify(lines)])
    ], { concurrency: 2 })
    const order: Order = {
      id,
      customerId: request.customerId,
      items: request.items.map((item) => ({ sku: item.sku, quantity: item.quantity, unitPrice: fromCents(toCents(item.unitPrice)) })),
      total: fromCents(totalCents),
      createdAt: created!.created_at.toISOString()
    }
    const eventId = crypto.randomUUID()
    const payload = { id: eventId, type: orderCreated, aggregateId: id, occurredAt: order.createdAt, data: order }
    const traceparent = yield* currentTraceparent
    const headers = traceparent === undefined ? {} : { traceparent }
    const event = [eventId, aggregateType, id, orderCreated, JSON.stringify(payload), JSON.stringify(headers)]
    yield* last ? tx.commitAfter(Sql.insertEvent, event) : tx.query(Sql.insertEvent, event)
    return order
  })

export const createOrder = Effect.fn("orders.create")(function*(
  request: OrderRequest,
  idempotencyKey?: string
): Effect.fn.Return<StoredResponse, SqlError | IdempotencyKeyReused, SqlDatabase> {
  const db = yield* SqlDatabase
  return yield* db.transaction((tx) =>
    Effect.gen(function*() {
      if (idempotencyKey === undefined) {
        const order = yield* insertOrder(tx, request, true)
        return { status: 201, body: JSON.stringify(order), replayed: false }
      }
      const body = canonical(request)
      yield* tx.query(Sql.lockKey, [idempotencyKey])
      const [stored] = yield* tx.queryAs(KeyRow, Sql.selectKey, [idempotencyKey])
      if (stored !== undefined) {
        const [hashed] = yield* tx.queryAs(HashRow, Sql.hashOf, [body])
        if (hashed?.hash !== stored.request_hash) return yield* new IdempotencyKeyReused({ key: idempotencyKey })
        return { status: stored.response_status, body: stored.response_body, replayed: true }
      }
      const order = yield* insertOrder(tx, request, false)
      const response = JSON.stringify(order)
      yield* tx.commitAfter(Sql.insertKey, [idempotencyKey, body, 201, response])
      return { status: 201, body: response, replayed: false }
    })
  )
})

export const getOrder = Effect.fn("orders.get")(function*(id: string): Effect.fn.Return<Order | undefined, SqlError, SqlDatabase> {
  const db = yield* SqlDatabase
  const [row] = yield* db.queryAs(OrderRow, Sql.selectOrder, [id])
  if (row === undefined) return undefined
  const items = yield* db.queryAs(ItemRow, Sql.selectItems, [id])
  return {
    id: row.id,
    customerId: row.customer_id,
    items: items.map((item) => ({ sku: item.sku, quantity: item.quantity, unitPrice: fromCents(BigInt(item.unit_price_cents)) })),
    total: fromCents(BigInt(row.total_cents)),
    createdAt: row.created_at.toISOString()
  }
})
