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
 *
 * What it costs, so that the load is not what limits the rate (measured on the loaded 2-core
 * development machine, CPU per insert):
 * - The statement is prepared once per connection. postgres.js sends a text with parameters
 *   unprepared unless asked, and PostgreSQL then parses and plans it for every insert: 490 µs
 *   of the backend's CPU per insert instead of 150, and 240 µs of this process's instead of 120.
 *   It capped the load at about 1 200 inserts/s. The statement and what it writes are the same.
 * - Two connections, each pipelining its inserts (postgres.js sends one without waiting for the
 *   answer to the one before; each still ends with its own Sync, so each is a transaction of its
 *   own, committed before the next starts). Eight connections cost the backends more than half
 *   again as much CPU per insert, in lock and buffer contention between them on two cores.
 * - Each event's parameters are built before the schedule starts, so the loop only sends.
 */
import postgres from "postgres"
import * as Orders from "../src/orders/sql.ts"
import { now, orderEvent, traceparent } from "./outboxEvents.ts"

const [url, rateText, secondsText, durable] = process.argv.slice(2)
const rate = Number(rateText)
const total = Math.round(rate * Number(secondsText))
const sql = postgres(url!, {
  max: 2,
  onnotice: () => {},
  // Named, so the relay's sessions can be told apart from these. The load, not what is measured:
  // the relay sees a row when its commit is visible, flushed or not.
  connection: { application_name: "outbox-bench-inserter", ...(durable === "true" ? {} : { synchronous_commit: "off" }) }
})
const events = Array.from({ length: total }, (_, n) => {
  const orderId = crypto.randomUUID()
  const eventId = crypto.randomUUID()
  return [eventId, "order", orderId, "OrderCreated", JSON.stringify(orderEvent(eventId, orderId, n)), JSON.stringify({ traceparent: traceparent() })]
})
const committed: Array<readonly [string, number]> = []
// One statement outside BEGIN … COMMIT is a transaction of its own, committed when it answers.
const insert = (params: Array<string>) =>
  sql.unsafe(Orders.insertEvent, params, { prepare: true }).then(() => {
    committed.push([params[0]!, now()])
  })
try {
  // Both connections open and the statement prepared on each (described, not run) before the clock starts.
  await Promise.all([sql.reserve(), sql.reserve()].map(async (reserving) => {
    const conn = await reserving
    await conn.unsafe(Orders.insertEvent, events[0] ?? [], { prepare: true }).describe()
    conn.release()
  }))
  const inserts: Array<Promise<void>> = []
  const started = performance.now()
  let k = 0
  while (k < total) {
    const at = performance.now()
    while (k < total && started + (k * 1000) / rate <= at) inserts.push(insert(events[k++]!))
    await Bun.sleep(1)
  }
  await Promise.all(inserts)
  const insertRate = total / ((performance.now() - started) / 1000)
  console.log(JSON.stringify({ insertRate, committed }))
} finally {
  await sql.end({ timeout: 5 })
}
