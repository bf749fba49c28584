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
 *
 *   bun run bench/sales.ts --cpu 500 [--delivery transient] [--duration 10s] [--broker-pid PID]
 *
 * With `--cpu RATE`, no sweep: one run at RATE through the balancer and one direct (after a
 * warm-up), each followed by the CPU time per answered request of the client, the balancer, the
 * three workers together and, with `--broker-pid`, the broker's process — counted between the
 * run's first and last progress lines, so start-up and warm-up are left out, then the system
 * (kernel) part of each and its minor page faults per request. Linux only (it reads /proc). Pick
 * a rate the machine holds: past it, the figures count waiting, not work. With
 * `--profile-dir DIR`, the workers and the balancer also write CPU profiles there (`bun
 * --cpu-prof`, with a markdown summary) when they stop.
 * Everything it declared is deleted at the end.
 */
import * as amqp from "amqplib"
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
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
const cpuRate = own(passed, "--cpu")
const brokerPid = own(passed, "--broker-pid")
if (delivery !== "persistent" && delivery !== "transient") throw new Error(`--delivery: persistent or transient, got ${delivery}`)
const tag = Date.now().toString(36)
const queues = [1, 2, 3].map((i) => `bench_sales_worker_${i}_${tag}`)
const requestQueue = `bench_sales_requests_${tag}`
const replyQueue = `bench_sales_replies_${tag}`
const balancerId = `bench_sales_balancer_${tag}`
const heartbeatTopic = `bench_sales_heartbeats_${tag}`
const dir = mkdtempSync(join(tmpdir(), "sales-bench-"))
const db = join(dir, "sales.db")

const profileDir = own(passed, "--profile-dir")
/** With `--profile-dir`, the workers and the balancer write CPU profiles there when they stop. */
const profiled = (program: string) =>
  profileDir !== undefined && (program === "sales-worker.ts" || program === "sales-balancer.ts")
    ? ["--cpu-prof", "--cpu-prof-md", `--cpu-prof-dir=${profileDir}`]
    : []
const spawn = (program: string, env: Record<string, string>, args: ReadonlyArray<string> = [], inherit = false) =>
  Bun.spawn([process.execPath, ...profiled(program), "run", join(root, "programs", program), ...args], {
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

/** utime and stime of a process in microseconds (Linux counts them in ticks of 1/100 s), and its minor page faults. */
const cpuMicros = (pid: number): readonly [number, number, number] => {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8")
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
  return [Number(fields[11]) * 10_000, Number(fields[12]) * 10_000, Number(fields[7])]
}

/** One run at `rate`; CPU per answered request of each process over its steady part. */
const cpuRun = async (label: string, rate: string, extra: ReadonlyArray<string>) => {
  console.log(`\n=== sales-bench ${rate}/s ${label} ===`)
  const child = spawn("sales-bench.ts", { REQUEST_QUEUE: requestQueue, WORKER_QUEUES: queues.join(","), LOG_LEVEL: "warn", PROGRESS_INTERVAL: "1s" }, [
    "--target-rate", rate, ...passed, ...extra
  ])
  void new Response(child.stderr as ReadableStream<Uint8Array>).text().then((text) => process.stderr.write(text))
  const processes: ReadonlyArray<readonly [string, number]> = [
    ["client", child.pid],
    ["balancer", children[3]!.pid],
    ...children.slice(0, 3).map((c) => ["workers", c.pid] as const),
    ...(brokerPid === undefined ? [] : [["broker", Number(brokerPid)] as const])
  ]
  const sample = (answered: number) => ({ answered, cpu: processes.map(([, pid]) => cpuMicros(pid)) })
  let first: ReturnType<typeof sample> | undefined
  let last: ReturnType<typeof sample> | undefined
  const decoder = new TextDecoder()
  let pending = ""
  for await (const chunk of child.stdout as ReadableStream<Uint8Array>) {
    const text = decoder.decode(chunk, { stream: true })
    process.stdout.write(text)
    pending += text
    const lines = pending.split("\n")
    pending = lines.pop()!
    for (const line of lines) {
      const progress = / answered (\d+) /.exec(line)
      if (progress === null) continue
      last = sample(Number(progress[1]))
      first ??= last
    }
  }
  const code = await child.exited
  if (code !== 0) throw new Error(`sales-bench ${label} exited with ${code}`)
  if (first === undefined || last === undefined || last.answered === first.answered) {
    console.log("cpu: too short a run to measure (no two progress lines apart)")
    return
  }
  const answered = last.answered - first.answered
  const per = new Map<string, number>()
  const system = new Map<string, number>()
  const faults = new Map<string, number>()
  processes.forEach(([name], i) => {
    const [user, sys, faulted] = [0, 1, 2].map((k) => last!.cpu[i]![k]! - first!.cpu[i]![k]!)
    per.set(name, (per.get(name) ?? 0) + user! + sys!)
    system.set(name, (system.get(name) ?? 0) + sys!)
    faults.set(name, (faults.get(name) ?? 0) + faulted!)
  })
  console.log(`cpu µs per answered request (${answered} requests): ` +
    [...per].map(([name, micros]) => `${name} ${Math.round(micros / answered)}`).join(", ") +
    `, total ${Math.round([...per.values()].reduce((a, b) => a + b, 0) / answered)}`)
  // System time (the kernel's: sockets, and memory returned to the OS) apart, to tell it from our code's.
  console.log(`  of which system: ${[...system].map(([name, micros]) => `${name} ${Math.round(micros / answered)}`).join(", ")}`)
  // Memory the allocator gave back to the OS and touches again faults in anew, page by page.
  console.log(`  minor page faults per request: ${[...faults].map(([name, n]) => `${name} ${(n / answered).toFixed(1)}`).join(", ")}`)
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
  if (cpuRate !== undefined) {
    await cpuRun("through the balancer", cpuRate, [])
    await cpuRun("direct", cpuRate, ["--direct"])
  } else {
    const balanced = await sweep("through the balancer", [])
    const direct = await sweep("direct", ["--direct"])
    console.log(`\nhighest rate within the p99 bound: through the balancer ${balanced} req/s, direct ${direct} req/s` +
      (direct > 0 ? `, ratio ${(balanced / direct).toFixed(2)}` : ""))
  }
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
