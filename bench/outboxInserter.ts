/**
 * The load of `outbox.ts`'s latency run, in a process of its own so that inserting does not
 * take the relay's CPU time (nor the relay the inserts'):
 *
 *   bun run bench/outboxInserter.ts <database url> <events/s> <seconds> <durable: true|false>
 *
 * Inserts events on an open-loop schedule (the k-th is due at start + k/rate, whether or not the
 * earlier ones are done), each by the orders API's statement as a transaction of its own, and
 * prints one JSON line: the achieved rate and, per event, its id and when its commit was answered
 * (`now()`, comparable with the parent's clock).
 */
import postgres from "postgres"
import * as Orders from "../src/orders/sql.ts"
import { now, orderEvent, traceparent } from "./outboxEvents.ts"

const [url, rateText, secondsText, durable] = process.argv.slice(2)
const rate = Number(rateText)
const total = Math.round(rate * Number(secondsText))
const sql = postgres(url!, {
  max: 8,
  onnotice: () => {},
  // The load, not what is measured: the relay sees a row when its commit is visible, flushed or not.
  ...(durable === "true" ? {} : { connection: { synchronous_commit: "off" } })
})
const committed: Array<readonly [string, number]> = []
const insert = (n: number) => {
  const orderId = crypto.randomUUID()
  const eventId = crypto.randomUUID()
  // One statement outside BEGIN … COMMIT is a transaction of its own, committed when it answers.
  return sql.unsafe(Orders.insertEvent, [
    eventId, "order", orderId, "OrderCreated", JSON.stringify(orderEvent(eventId, orderId, n)), JSON.stringify({ traceparent: traceparent() })
  ]).then(() => {
    committed.push([eventId, now()])
  })
}
try {
  const inserts: Array<Promise<void>> = []
  const started = performance.now()
  let k = 0
  while (k < total) {
    const at = performance.now()
    while (k < total && started + (k * 1000) / rate <= at) inserts.push(insert(k++))
    await Bun.sleep(1)
  }
  await Promise.all(inserts)
  const insertRate = total / ((performance.now() - started) / 1000)
  console.log(JSON.stringify({ insertRate, committed }))
} finally {
  await sql.end({ timeout: 5 })
}
