/**
 * What RabbitMQ itself allows for the sales service's request/reply shape on this machine: the
 * same hops as the service (client → request queue → balancer → worker queue → worker → the
 * balancer's reply queue → balancer → the client's reply queue), in plain amqplib with no
 * toolkit, no query (a worker answers with a fixed reply) and no bookkeeping beyond a round robin.
 * The figure bounds what `bench/sales.ts` can show: whatever our code costs comes on top.
 *
 *   bun run bench/salesCeiling.ts [--rates 1000,2000,3000,5000] [--duration 5s] [--workers 3]
 *                                 [--confirms | --persistent] [--concurrency 15]
 *                                 [--direct] [--p99-bound 25] [--service-balancer]
 *
 * Default: transient messages, no publisher confirms, acks after the publish was written: the
 * cheapest the broker offers. `--confirms`: transient, published on confirm channels, each
 * request acked once its forward or reply is confirmed (the toolkit with
 * RABBITMQ_DIRECT_DELIVERY=transient). `--persistent`: the same with every message persistent
 * (the toolkit's default). Each rate runs open
 * loop for the duration (latency from each request's scheduled time); a 2 s warm-up first.
 * `--direct`: each rate also runs direct, right after the balancer's run at that rate (the client
 * publishes round robin to the worker queues and the workers answer its reply queue, as
 * `sales-bench --direct`), and the last line compares the highest rates whose p99 stayed within
 * `--p99-bound` ms — the ceiling of the service's balancer/direct ratio. A rate holds as in the
 * service's sweep: p99 within the bound, at most 1% unanswered, achieved ≥ 95% of the rate.
 * Processes: one client (this one), one balancer and each worker as its own child process.
 * `--service-balancer`: the balancer is the service's own (`programs/sales-balancer.ts`, with
 * RABBITMQ_DIRECT_DELIVERY=transient unless `--persistent`) between the same plain client and echo
 * workers, so its CPU per request reads directly against the plain balancer's; with
 * `--profile-dir DIR` the balancer (either) writes a CPU profile there (`bun --cpu-prof`, and a markdown summary).
 */
import * as amqp from "amqplib"

const url = process.env.RABBITMQ_URL ?? "amqp://guest:guest@127.0.0.1:5672"
const argv = process.argv.slice(2)
const arg = (name: string) => {
  const at = argv.indexOf(name)
  return at >= 0 ? argv[at + 1] : undefined
}
const persistent = argv.includes("--persistent")
const confirms = persistent || argv.includes("--confirms")
const mode = persistent ? "persistent + confirms" : confirms ? "transient + confirms" : "transient, no confirms"
const millis = (text: string) => {
  const m = /^(\d+(?:\.\d+)?)\s*(ms|s)?$/.exec(text.trim())
  if (m === null) throw new Error(`not a duration: ${text}`)
  return Number(m[1]) * (m[2] === "ms" ? 1 : 1000)
}

/** A channel to publish on: confirmed (resolves when the broker confirms) or fire-and-forget. */
const publisher = async (connection: amqp.ChannelModel) => {
  if (confirms) {
    const channel = await connection.createConfirmChannel()
    return {
      channel,
      send: (queue: string, body: Buffer, options: amqp.Options.Publish) =>
        new Promise<void>((resolve, reject) =>
          channel.sendToQueue(queue, body, { ...options, persistent }, (error) => error ? reject(error) : resolve())
        )
    }
  }
  const channel = await connection.createChannel()
  return {
    channel,
    send: (queue: string, body: Buffer, options: amqp.Options.Publish) => {
      channel.sendToQueue(queue, body, { ...options, persistent: false })
      return Promise.resolve()
    }
  }
}

const role = argv[0]
// A child stopped by the client exits normally, so a CPU profile it was asked for is written.
if (role === "worker" || role === "balancer") process.on("SIGTERM", () => process.exit(0))

if (role === "worker") {
  const queue = argv[1]!
  const connection = await amqp.connect(url)
  const out = await publisher(connection)
  const channel = await connection.createChannel()
  await channel.prefetch(10)
  const reply = Buffer.from(JSON.stringify({
    ok: true,
    result: { sales: 42, revenue: 12345.67, averageTicket: 293.94, topProducts: [{ product: "Books #1", revenue: 999.5 }] }
  }))
  await channel.consume(queue, (msg) => {
    if (msg === null) return
    void out.send(msg.properties.replyTo, reply, { correlationId: msg.properties.correlationId }).then(() => channel.ack(msg))
  })
  process.stdout.write("ready\n")
} else if (role === "balancer") {
  const [, requestQueue, replyQueue, ...workers] = argv
  const connection = await amqp.connect(url)
  const out = await publisher(connection)
  const requests = await connection.createChannel()
  await requests.prefetch(200)
  const replies = await connection.createChannel()
  await replies.prefetch(200)
  const clients = new Map<string, { replyTo: string; correlationId: string }>()
  const outstanding = new Map<string, number>(workers.map((w) => [w, 0]))
  const owner = new Map<string, string>()
  let next = 0
  let id = 0
  await requests.consume(requestQueue!, (msg) => {
    if (msg === null) return
    // Least outstanding, round robin among ties: the service's rule, at its cheapest.
    let best = workers[next % workers.length]!
    for (let i = 1; i < workers.length; i++) {
      const w = workers[(next + i) % workers.length]!
      if (outstanding.get(w)! < outstanding.get(best)!) best = w
    }
    next++
    const key = String(id++)
    clients.set(key, { replyTo: msg.properties.replyTo, correlationId: msg.properties.correlationId })
    owner.set(key, best)
    outstanding.set(best, outstanding.get(best)! + 1)
    void out.send(best, msg.content, { replyTo: replyQueue!, correlationId: key, headers: msg.properties.headers })
      .then(() => requests.ack(msg))
  })
  await replies.consume(replyQueue!, (msg) => {
    if (msg === null) return
    const key = msg.properties.correlationId as string
    const client = clients.get(key)
    if (client === undefined) {
      replies.ack(msg)
      return
    }
    clients.delete(key)
    const w = owner.get(key)!
    owner.delete(key)
    outstanding.set(w, outstanding.get(w)! - 1)
    void out.send(client.replyTo, msg.content, { correlationId: client.correlationId }).then(() => replies.ack(msg))
  })
  process.stdout.write("ready\n")
} else {
  const rates = (arg("--rates") ?? "1000,2000,3000,4000,5000").split(",").map(Number)
  const duration = millis(arg("--duration") ?? "5s")
  const workerCount = Number(arg("--workers") ?? 3)
  const concurrency = Number(arg("--concurrency") ?? 15)
  const direct = argv.includes("--direct")
  const p99Bound = Number(arg("--p99-bound") ?? 25)
  const tag = Date.now().toString(36)
  const requestQueue = `ceiling_requests_${tag}`
  const replyQueue = `ceiling_replies_${tag}`
  const workers = Array.from({ length: workerCount }, (_, i) => `ceiling_worker_${i + 1}_${tag}`)
  const serviceBalancer = argv.includes("--service-balancer")
  const profileDir = arg("--profile-dir")
  const profiling = profileDir === undefined ? [] : ["--cpu-prof", "--cpu-prof-md", `--cpu-prof-dir=${profileDir}`, "--cpu-prof-interval=250"]
  const heartbeatTopic = `ceiling_heartbeats_${tag}`
  const balancerId = `ceiling_balancer_${tag}`
  const connection = await amqp.connect(url)
  const admin = await connection.createChannel()
  for (const queue of [requestQueue, replyQueue, ...workers]) await admin.assertQueue(queue, { durable: true })
  const own = await admin.assertQueue("", { exclusive: true, autoDelete: true })
  const self = new URL(import.meta.url).pathname
  const spawn = (args: ReadonlyArray<string>) =>
    Bun.spawn([process.execPath, ...(args[0] === "balancer" ? profiling : []), "run", self, ...args, ...(persistent ? ["--persistent"] : confirms ? ["--confirms"] : [])], {
      env: { ...process.env, RABBITMQ_URL: url },
      stdout: "pipe",
      stderr: "inherit"
    })
  const service = () =>
    Bun.spawn([
      process.execPath,
      ...profiling,
      "run",
      new URL("../programs/sales-balancer.ts", import.meta.url).pathname], {
      env: {
        ...process.env, RABBITMQ_URL: url, RABBITMQ_DIRECT_DELIVERY: persistent ? "persistent" : "transient", METRICS_PORT: "0",
        LOG_FORMAT: "json", LOG_LEVEL: "info", STATS_INTERVAL: "1h", REQUEST_QUEUE: requestQueue, REPLY_QUEUE: replyQueue,
        WORKER_QUEUES: workers.join(","), BALANCER_ID: balancerId, HEARTBEAT_TOPIC: heartbeatTopic
      },
      stdout: "pipe",
      stderr: "pipe"
    })
  const children = [
    ...workers.map((w) => spawn(["worker", w])),
    serviceBalancer ? service() : spawn(["balancer", requestQueue, replyQueue, ...workers])
  ]
  // Ready once it says so (the service's balancer logs on stderr); both outputs drained for good,
  // as a child whose pipe fills up stalls.
  const ready = (child: { readonly stdout: unknown; readonly stderr: unknown }) =>
    new Promise<void>((resolve, reject) => {
      let seen = ""
      let done = false
      const pump = async (stream: unknown) => {
        if (!(stream instanceof ReadableStream)) return
        const decoder = new TextDecoder()
        for await (const chunk of stream) {
          if (done) continue
          seen += decoder.decode(chunk, { stream: true })
          if (seen.includes("ready\n") || seen.includes("sales balancer:")) {
            done = true
            resolve()
          }
        }
      }
      void Promise.all([pump(child.stdout), pump(child.stderr)]).then(() => {
        if (!done) reject(new Error(`a child exited before it was ready: ${seen.slice(-2000)}`))
      })
    })
  const cpuOf = (pid: number) => {
    // utime + stime in clock ticks (100 per second on Linux), fields 14 and 15 of /proc/PID/stat.
    const stat = require("node:fs").readFileSync(`/proc/${pid}/stat`, "utf8") as string
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
    return (Number(fields[11]) + Number(fields[12])) * 10_000
  }
  const brokerPid = (() => {
    try {
      for (const entry of require("node:fs").readdirSync("/proc") as Array<string>) {
        if (!/^\d+$/.test(entry)) continue
        const cmd = require("node:fs").readFileSync(`/proc/${entry}/cmdline`, "utf8") as string
        if (cmd.includes("beam") && cmd.includes("rabbit")) return Number(entry)
      }
    } catch {}
    return undefined
  })()
  try {
    await Promise.all(children.map(ready))
    const out = await publisher(connection)
    const consumer = await connection.createChannel()
    const pending = new Map<string, number>()
    let latencies: Array<number> = []
    let lastReply = 0
    await consumer.consume(own.queue, (msg) => {
      if (msg === null) return
      const at = performance.now()
      const from = pending.get(msg.properties.correlationId)
      if (from === undefined) return
      pending.delete(msg.properties.correlationId)
      latencies.push(at - from)
      lastReply = at
    }, { noAck: true })
    const body = Buffer.from(JSON.stringify({ region: "North", category: "Books", from: "2024-02-01", to: "2024-06-30" }))
    const viaBalancer = () => requestQueue
    const viaWorkers = (i: number) => workers[i % workers.length]!
    const run = async (rate: number, ms: number, target: (i: number) => string) => {
      latencies = []
      pending.clear()
      const total = Math.round(rate * ms / 1000)
      const start = performance.now() + 5
      const interval = 1000 / rate
      const sender = async (lane: number) => {
        for (let i = lane; i < total; i += concurrency) {
          const due = start + i * interval
          const wait = due - performance.now()
          if (wait > 0) await Bun.sleep(wait)
          const id = `${rate}-${i}`
          pending.set(id, due)
          await out.send(target(i), body, { replyTo: own.queue, correlationId: id })
        }
      }
      await Promise.all(Array.from({ length: Math.min(concurrency, total) }, (_, lane) => sender(lane)))
      const giveUp = performance.now() + 5000
      while (pending.size > 0 && performance.now() < giveUp) await Bun.sleep(5)
      const sorted = latencies.sort((a, b) => a - b)
      const at = (p: number) => sorted.length === 0 ? Number.NaN : sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p / 100))]!
      const elapsed = Math.max(lastReply - start, ms)
      return { total, answered: sorted.length, achieved: sorted.length * 1000 / elapsed, p50: at(50), p99: at(99), max: at(100) }
    }
    console.log(`machine: ${navigator.hardwareConcurrency} CPUs; raw amqplib, ${mode}, ${workerCount} workers, ` +
      (serviceBalancer ? "the service's balancer" : "one balancer"))
    const paths = direct
      ? [{ name: "balancer", target: viaBalancer }, { name: "direct", target: viaWorkers }]
      : [{ name: "balancer", target: viaBalancer }]
    for (const path of paths) await run(rates[0]!, 2000, path.target)
    const best = new Map<string, number>()
    for (const rate of rates) {
      for (const path of paths) {
        const pids = [process.pid, ...children.map((c) => c.pid), ...(brokerPid === undefined ? [] : [brokerPid])]
        const before = pids.map(cpuOf)
        const r = await run(rate, duration, path.target)
        const used = pids.map((pid, i) => cpuOf(pid) - before[i]!)
        const per = (micros: number) => (micros / Math.max(1, r.answered)).toFixed(0)
        const [client, ...rest] = used
        const broker = brokerPid === undefined ? undefined : rest.pop()
        const balancer = rest.pop()!
        const workersCpu = rest.reduce((a, b) => a + b, 0)
        const held = r.p99 <= p99Bound && r.answered >= r.total * 0.99 && r.achieved >= rate * 0.95
        if (held) best.set(path.name, Math.max(best.get(path.name) ?? 0, rate))
        console.log(
          (direct ? `${path.name.padEnd(8)} ` : "") +
            `${String(rate).padStart(6)}/s  achieved ${r.achieved.toFixed(0).padStart(6)}/s  answered ${r.answered}/${r.total}  ` +
            `p50 ${r.p50.toFixed(2)}  p99 ${r.p99.toFixed(2)}  max ${r.max.toFixed(2)} ms  ` +
            `cpu µs/request: client ${per(client!)} ` +
            (path.name === "balancer" ? `balancer ${per(balancer)} ` : "") +
            `workers ${per(workersCpu)}` +
            (broker === undefined ? "" : ` broker ${per(broker)}`) +
            (direct ? (held ? "  held" : "  FAILED") : "")
        )
      }
    }
    if (direct) {
      const b = best.get("balancer") ?? 0
      const d = best.get("direct") ?? 0
      console.log(
        `highest rate with p99 ≤ ${p99Bound} ms: balancer ${b || "none"}, direct ${d || "none"}, ` +
          `ratio ${d === 0 ? "n/a" : (b / d).toFixed(2)}`
      )
    }
  } finally {
    for (const child of children) child.kill("SIGTERM")
    await Promise.all(children.map((c) => c.exited))
    const declared = [requestQueue, replyQueue, ...workers, `${balancerId}.heartbeats`]
    for (const queue of [...declared, ...declared.map((q) => `${q}.dlq`)]) await admin.deleteQueue(queue).catch(() => {})
    for (const exchange of [heartbeatTopic, ...declared.map((q) => `${q}.dlq`)]) await admin.deleteExchange(exchange).catch(() => {})
    await connection.close()
  }
}
