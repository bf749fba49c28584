/**
 * Sales query service capacity on RabbitMQ, through the balancer and direct, in one run.
 *
 *   bun run bench/sales.ts [--delivery persistent|transient] [any sales-bench flag: --sweep-start 100
 *                           --sweep-step 100 --duration 5s --p99-bound 25ms --concurrency 15 --report-dir <dir>]
 *
 * Seeds a database (the original's sizes), starts three sales workers and the balancer as the
 * image runs them (`programs/`, fresh queue names), then runs `sales-bench --sweep` twice with
 * the same flags: through the balancer (`sales_requests`-style request queue) and `--direct`
 * (round robin over the worker queues). Both sweeps print as they go; the last lines compare the
 * highest rates that held. With `--report-dir`, each sweep's HTML report is written there.
 * `--delivery transient` runs every program with RABBITMQ_DIRECT_DELIVERY=transient (requests and
 * replies not written to disk); the default is the programs' own, persistent.
 * `bench/salesCeiling.ts` measures the same hops in plain amqplib: the broker's ceiling.
 * Everything it declared is deleted at the end.
 */
import * as amqp from "amqplib"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"

const root = join(import.meta.dir, "..")
const url = process.env.RABBITMQ_URL ?? "amqp://guest:guest@127.0.0.1:5672"
/** Takes `--name value` out of the flags passed on to sales-bench. */
const own = (args: Array<string>, name: string): string | undefined => {
  const at = args.indexOf(name)
  if (at < 0) return undefined
  const [, value] = args.splice(at, 2)
  return value
}
const passed = process.argv.slice(2)
const reportDir = own(passed, "--report-dir")
const delivery = own(passed, "--delivery") ?? "persistent"
if (delivery !== "persistent" && delivery !== "transient") throw new Error(`--delivery: persistent or transient, got ${delivery}`)
const tag = Date.now().toString(36)
const queues = [1, 2, 3].map((i) => `bench_sales_worker_${i}_${tag}`)
const requestQueue = `bench_sales_requests_${tag}`
const replyQueue = `bench_sales_replies_${tag}`
const balancerId = `bench_sales_balancer_${tag}`
const heartbeatTopic = `bench_sales_heartbeats_${tag}`
const dir = mkdtempSync(join(tmpdir(), "sales-bench-"))
const db = join(dir, "sales.db")

const spawn = (program: string, env: Record<string, string>, args: ReadonlyArray<string> = [], inherit = false) =>
  Bun.spawn([process.execPath, "run", join(root, "programs", program), ...args], {
    cwd: root,
    env: { ...process.env, RABBITMQ_URL: url, RABBITMQ_DIRECT_DELIVERY: delivery, METRICS_PORT: "0", LOG_FORMAT: "json", ...env },
    stdout: inherit ? "inherit" : "pipe",
    stderr: inherit ? "inherit" : "pipe"
  })

/** Resolves when the child's output (stdout or stderr, where its logs go) matches; drains both for good. */
const waitFor = (child: ReturnType<typeof spawn>, pattern: RegExp) =>
  new Promise<void>((resolve, reject) => {
    let seen = ""
    let done = false
    const pump = async (stream: ReadableStream<Uint8Array>) => {
      const decoder = new TextDecoder()
      for await (const chunk of stream) {
        if (done) continue
        seen += decoder.decode(chunk, { stream: true })
        if (pattern.test(seen)) {
          done = true
          resolve()
        }
      }
    }
    void Promise.all([pump(child.stdout as ReadableStream<Uint8Array>), pump(child.stderr as ReadableStream<Uint8Array>)]).then(() => {
      if (!done) reject(new Error(`child exited before printing ${pattern}: ${seen.slice(-2000)}`))
    })
  })

const sweep = async (label: string, extra: ReadonlyArray<string>) => {
  console.log(`\n=== sales-bench --sweep ${label} ===`)
  const report = reportDir === undefined ? [] : ["--report", join(reportDir, `sales-sweep-${label.replaceAll(" ", "-")}.html`)]
  const child = spawn("sales-bench.ts", { REQUEST_QUEUE: requestQueue, WORKER_QUEUES: queues.join(","), LOG_LEVEL: "warn" }, [
    "--sweep", ...passed, ...extra, ...report
  ])
  void new Response(child.stderr as ReadableStream<Uint8Array>).text().then((text) => process.stderr.write(text))
  let printed = ""
  const decoder = new TextDecoder()
  for await (const chunk of child.stdout as ReadableStream<Uint8Array>) {
    const text = decoder.decode(chunk, { stream: true })
    printed += text
    process.stdout.write(text)
  }
  const code = await child.exited
  if (code !== 0) throw new Error(`sales-bench ${label} exited with ${code}`)
  const best = /highest rate that held: (\d+) req\/s/.exec(printed)
  return best === null ? 0 : Number(best[1])
}

const seeded = spawn("sales-seed.ts", { DB_PATH: db }, [], true)
if ((await seeded.exited) !== 0) throw new Error("sales-seed failed")
const children = [
  ...queues.map((queue) => spawn("sales-worker.ts", { QUEUE_NAME: queue, DB_PATH: db, HEARTBEAT_TOPIC: heartbeatTopic, LOG_LEVEL: "info" })),
  spawn("sales-balancer.ts", {
    WORKER_QUEUES: queues.join(","), REQUEST_QUEUE: requestQueue, REPLY_QUEUE: replyQueue, BALANCER_ID: balancerId,
    HEARTBEAT_TOPIC: heartbeatTopic, LOG_LEVEL: "info", STATS_INTERVAL: "1h"
  })
]
try {
  await Promise.all([
    ...children.slice(0, 3).map((child) => waitFor(child, /sales worker .* answering/)),
    waitFor(children[3]!, /sales balancer:/)
  ])
  console.log(`machine: ${navigator.hardwareConcurrency} CPUs; three workers and the balancer on RabbitMQ ${url.replace(/\/\/[^@]*@/, "//")}, ${delivery} requests and replies`)
  const balanced = await sweep("through the balancer", [])
  const direct = await sweep("direct", ["--direct"])
  console.log(`\nhighest rate within the p99 bound: through the balancer ${balanced} req/s, direct ${direct} req/s` +
    (direct > 0 ? `, ratio ${(balanced / direct).toFixed(2)}` : ""))
} finally {
  for (const child of children) child.kill("SIGTERM")
  await Promise.all(children.map((child) => child.exited))
  const connection = await amqp.connect(url)
  const channel = await connection.createChannel()
  for (const queue of [...queues, ...queues.map((q) => `${q}.dlq`), requestQueue, `${requestQueue}.dlq`, replyQueue, `${replyQueue}.dlq`, `${balancerId}.heartbeats`, `${balancerId}.heartbeats.dlq`]) {
    await channel.deleteQueue(queue).catch(() => {})
  }
  for (const exchange of [heartbeatTopic, ...[...queues, requestQueue, replyQueue, `${balancerId}.heartbeats`].map((q) => `${q}.dlq`)]) {
    await channel.deleteExchange(exchange).catch(() => {})
  }
  await connection.close()
  rmSync(dir, { recursive: true, force: true })
}
