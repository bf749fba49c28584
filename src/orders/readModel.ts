/**
 * The order-events consumer's handler: applies each `OrderCreated` event once to the
 * `customer_orders` read model through the `inbox` table.
 *
 * Kafka delivers at least once (the relay may publish twice, a consumer may be stopped before
 * committing its offset). The event id goes into the inbox in the same transaction as the
 * effect; a redelivered event finds its id there and changes nothing, so the effect is exactly
 * once.
 */
import * as Effect from "effect/Effect"
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import type { Received } from "../capabilities/Delivery.ts"
import { SqlDatabase, type SqlError } from "../capabilities/SqlDatabase.ts"
import * as Outcome from "../messaging/Outcome.ts"
import { type BackoffPolicy, delayFor } from "../resilience/backoff.ts"
import { isPermanentForData } from "../sql/failures.ts"
import { decodeOrderEvent, totalCents } from "./events.ts"
import * as Sql from "./readModelSql.ts"

const Recorded = Schema.Struct({ event_id: Schema.String })

export const CustomerOrders = Schema.Struct({ customer_id: Schema.String, orders: Schema.Number, total_cents: Schema.String })
export type CustomerOrders = typeof CustomerOrders.Type

/** Waits between the tries of an event the database could not take for now. */
export const readModelBackoff: BackoffPolicy = { base: "1 second", factor: 2, max: "30 seconds" }

/**
 * The handler; `backoff` spaces the tries while the database fails for now. Such a failure is
 * the database's, not the event's: the retry does not count as an attempt, so an outage never
 * dead-letters events, and the wait grows with the failures in a row of this consumer (reset by
 * a success), not with the event's attempts.
 */
export const applyOrderEvents = (backoff: BackoffPolicy = readModelBackoff) => {
  let failuresInARow = 0
  return (received: Received): Effect.Effect<Outcome.Outcome, never, SqlDatabase> =>
    Effect.gen(function*() {
      const decoded = decodeOrderEvent(received.message)
      if (Result.isFailure(decoded)) return Outcome.deadLetter(decoded.failure)
      const event = decoded.success
      const db = yield* SqlDatabase
      const applied = yield* db.transaction((tx) =>
        Effect.gen(function*() {
          const fresh = yield* tx.queryAs(Recorded, Sql.recordEvent, [event.id])
          // Already in the inbox: a redelivery, whose effect was committed with it.
          if (fresh.length === 0) return
          yield* tx.query(Sql.addOrder, [event.data.customerId, totalCents(event).toString()])
        })
      ).pipe(Effect.result)
      if (Result.isSuccess(applied)) {
        failuresInARow = 0
        return Outcome.ack
      }
      const error: SqlError = applied.failure
      if (isPermanentForData(error)) return Outcome.deadLetter(`the read model refused event ${event.id}: ${error.message}`)
      const after = yield* delayFor(backoff, ++failuresInARow)
      return Outcome.retry(error.message, { after, countsAsAttempt: false })
    })
}

/** The read model, by customer. */
export const customerOrders: Effect.Effect<ReadonlyArray<CustomerOrders>, SqlError, SqlDatabase> =
  SqlDatabase.use((db) => db.queryAs(CustomerOrders, Sql.customerOrders))
