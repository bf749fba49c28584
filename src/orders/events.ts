/**
 * The `OrderCreated` event as a consumer reads it off `txstream.events` (the relay's value and
 * headers, see src/outbox/relay.ts).
 *
 * Decoding is strict: a value that is not UTF-8, not JSON or not this shape, or whose `event-id`
 * header is missing or disagrees with the body's id, can never be applied, so it is refused with
 * the reason (the handler dead-letters it) instead of retried. The id must agree because it is
 * the inbox key: a header and a body naming two events would let one of them be applied twice.
 */
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import { bodyTextStrict, type Message } from "../capabilities/Message.ts"

export const orderCreated = "OrderCreated"

/** The API's money: units with at most two decimals, never negative (turned back into cents below). */
const Money = Schema.Number.check(Schema.isFinite(), Schema.isGreaterThanOrEqualTo(0))

export const OrderCreatedEvent = Schema.Struct({
  id: Schema.String.check(Schema.isNonEmpty()),
  type: Schema.Literal(orderCreated),
  aggregateId: Schema.String,
  occurredAt: Schema.String,
  data: Schema.Struct({
    id: Schema.String,
    customerId: Schema.String.check(Schema.isNonEmpty()),
    total: Money
  })
})
export type OrderCreatedEvent = typeof OrderCreatedEvent.Type

const decodeEvent = Schema.decodeUnknownResult(OrderCreatedEvent)

/** The event, or why it can never be applied. */
export const decodeOrderEvent = (message: Pick<Message, "body" | "headers">): Result.Result<OrderCreatedEvent, string> => {
  const text = bodyTextStrict(message)
  if (text === undefined) return Result.fail("the value is not valid UTF-8")
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch (error) {
    return Result.fail(`the value is not JSON: ${(error as Error).message}`)
  }
  const decoded = decodeEvent(json, { errors: "all" })
  if (Result.isFailure(decoded)) return Result.fail(`the value is not an ${orderCreated} event: ${decoded.failure.message}`)
  const header = message.headers["event-id"]
  if (header === undefined) return Result.fail("the event-id header is missing")
  if (header !== decoded.success.id) {
    return Result.fail(`the event-id header ${header} does not match the value's id ${decoded.success.id}`)
  }
  return Result.succeed(decoded.success)
}

/** The order's total in cents: exact, as the orders service computed it from cents. */
export const totalCents = (event: OrderCreatedEvent): bigint => BigInt(Math.round(event.data.total * 100))
