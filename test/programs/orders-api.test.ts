/**
 * programs/orders-api.ts as a process on embedded PGlite, under Bun and under Deno: it migrates,
 * serves POST and GET over HTTP on an ephemeral port, reports the database on /readyz, and
 * exits 0 on SIGTERM.
 */
import { describe, expect, test } from "bun:test"
import { existsSync } from "node:fs"
import { join } from "node:path"
import { opsUrl, startProgram } from "../support/program.ts"
import { requireServer } from "../support/servers.ts"

const root = join(import.meta.dir, "..", "..")
const env = { SERVER_PORT: "0", SERVER_HOST: "127.0.0.1", DATABASE_URL: "", METRICS_PORT: "0", LOG_FORMAT: "json" }

const listening = (line: string) => /listening on (http:\/\/[^\s"\\]+)/.exec(line)![1]!

/** POST then GET the order; the answers a client relies on. */
const exercise = async (base: string) => {
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
}

test("orders-api serves POST then GET, is ready with its database, counts requests by route and status, and SIGTERM exits 0", async () => {
  const program = startProgram("orders-api.ts", env)
  try {
    const base = listening(await program.waitFor(/orders API listening on/, 60_000))
    await exercise(base)
    expect((await fetch(`${base}/orders`, { method: "POST", headers: { "content-type": "text/plain" }, body: "x" })).status).toBe(415)
    expect((await fetch(`${base}/nowhere/${crypto.randomUUID()}`)).status).toBe(404)
    const ops = await opsUrl(program)
    const ready = await fetch(`${ops}/readyz`)
    expect(ready.status).toBe(200)
    expect(((await ready.json()) as { checks: Record<string, boolean> }).checks.database).toBe(true)
    // Routes, not paths: the order's id and the unknown path never become labels.
    const series = (await (await fetch(`${ops}/metrics`)).text()).split("\n").filter((line) => line.startsWith("http_server_requests_total{"))
    const count = (method: string, route: string, status: number) =>
      series.find((line) =>
        line.includes(`http_request_method="${method}"`) && line.includes(`http_route="${route}"`) &&
        line.includes(`http_response_status_code="${status}"`)
      )?.split(" ").at(-1)
    expect(count("POST", "/orders", 201)).toBe("1")
    expect(count("POST", "/orders", 415)).toBe("1")
    expect(count("GET", "/orders/:id", 200)).toBe("1")
    expect(count("GET", "unmatched", 404)).toBe("1")
    expect(series).toHaveLength(4)
  } finally {
    program.kill("SIGTERM")
  }
  expect(await program.exited).toBe(0)
}, 90_000)

const deno = join(root, ".services", "deno", "node_modules", ".bin", "deno")
const denoInstalled = await requireServer("Deno (install it with scripts/deno.sh)", async () => {
  if (!existsSync(deno)) throw new Error(`${deno} does not exist`)
})

describe.if(denoInstalled)("under Deno", () => {
  test("the same program answers a POST and a GET, and SIGTERM exits 0", async () => {
    const proc = Bun.spawn([deno, "run", "-A", "--node-modules-dir=manual", join(root, "programs", "orders-api.ts")], {
      cwd: root,
      env: { ...process.env, ...env },
      stdout: "pipe",
      stderr: "pipe"
    })
    let output = ""
    let heard: (line: string) => void = () => {}
    const listeningLine = new Promise<string>((resolve) => {
      heard = resolve
    })
    // Drain both streams (a full pipe would stall the program) and watch for the listening line.
    const drain = async (stream: ReadableStream<Uint8Array>) => {
      const decoder = new TextDecoder()
      for await (const chunk of stream) {
        output += decoder.decode(chunk, { stream: true })
        const line = output.split("\n").find((l) => l.includes("orders API listening on"))
        if (line !== undefined) heard(line)
      }
    }
    const drained = Promise.all([drain(proc.stdout), drain(proc.stderr)])
    try {
      const line = await Promise.race([
        listeningLine,
        proc.exited.then((code) => Promise.reject(new Error(`deno exited with ${code} before listening:\n${output}`)))
      ])
      await exercise(listening(line))
    } finally {
      proc.kill("SIGTERM")
    }
    await drained
    expect(await proc.exited).toBe(0)
  }, 90_000)
})
