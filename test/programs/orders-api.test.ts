/**
 * programs/orders-api.ts as a process on embedded PGlite: it migrates, serves POST and GET over
 * HTTP on an ephemeral port, reports the database on /readyz, and exits 0 on SIGTERM.
 */
import { expect, test } from "bun:test"
import { opsUrl, startProgram } from "../support/program.ts"

test("orders-api serves POST then GET, is ready with its database, and SIGTERM exits 0", async () => {
  const program = startProgram("orders-api.ts", { SERVER_PORT: "0", SERVER_HOST: "127.0.0.1", DATABASE_URL: "" })
  try {
    const line = await program.waitFor(/orders API listening on/, 60_000)
    const base = /listening on (http:\/\/[^\s"\\]+)/.exec(line)![1]!
    const ops = await opsUrl(program)

    const posted = await fetch(`${base}/orders`, {
      method: "POST",
      headers: { "content-type": "application/json", "idempotency-key": "k-1" },
      body: JSON.stringify({ customerId: "c-1", items: [{ sku: "a", quantity: 3, unitPrice: 0.1 }, { sku: "b", quantity: 1, unitPrice: 0.2 }] })
    })
    expect(posted.status).toBe(201)
    const order = (await posted.json()) as { id: string; total: number }
    expect(order.total).toBe(0.5)
    const got = await fetch(`${base}${posted.headers.get("location")}`)
    expect(got.status).toBe(200)
    expect(await got.json()).toEqual(order)

    const ready = await fetch(`${ops}/readyz`)
    expect(ready.status).toBe(200)
    expect(((await ready.json()) as { checks: Record<string, boolean> }).checks.database).toBe(true)
  } finally {
    program.kill("SIGTERM")
  }
  expect(await program.exited).toBe(0)
}, 90_000)
