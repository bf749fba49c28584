/**
 * Event counter throughput from RabbitMQ, against the fastest raw amqplib loop, in one run.
 *
 *   bun run bench/counter.ts [--messages 200000] [--prefetch 1000] [--rounds 5]
 *
 * 1. baseline: a bare amqplib consumer (prefetch P, ack every 100 with `multiple`) drains a queue
 *    holding the messages; rate = messages / (last ack - first delivery).
 * 2. counter: programs/event-counter.ts, as a child process, drains a queue holding the same
 *    messages; rate = what it reports (first message taken to last message settled). Its peak
 *    RSS is sampled from /proc while it runs.
 * Both queues are filled before either run, so publishing speed does not enter the figures.
 * The machine may be shared and noisy, so rounds alternate the two and the medians are reported.
 */
import * as amqp from "amqplib"
import * as Effect from "effect/Effect"
import { mkdtempSync, readFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as RabbitMQ from "../layers/rabbitmq/index.ts"
import { publishTraffic } from "../src/counter/publishTraffic.ts"

const arg = (name: string, fallback: number) => {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 ? Number(process.argv[i + 1]) : fallback
}
const messages = arg("messages", 200_000)
const prefetch = arg("prefetch", 1000)
const rounds = arg("rounds", 5)
const url = process.env.RABBITMQ_URL ?? "amqp://guest:guest@127.0.0.1:5672"
const tag = Date.now().toString(36)
const raw = { exchange: `bench_raw_x_${tag}`, queue: `bench_raw_q_${tag}` }
const counted = { exchange: `bench_counter_x_${tag}`, queue: `bench_counter_q_${tag}` }

const fill = (dest: { exchange: string; queue: string }) =>
  Effect.runPromise(
    publishTraffic(dest, { count: messages, users: 50, duplicateRatio: 0.05, malformed: 0, seed: 1 }).pipe(
      Effect.provide(RabbitMQ.layer({ url }))
    )
  )

const rawLoop = async (queue: string) => {
  const connection = await amqp.connect(url)
  const channel = await connection.createChannel()
  await channel.prefetch(prefetch)
  let received = 0
  let first = 0
  const done = Promise.withResolvers<number>()
  await channel.consume(queue, (msg) => {
    if (msg === null) return
    if (received === 0) first = performance.now()
    received++
    if (received % 100 === 0 || received === messages) channel.ack(msg, true)
    if (received === messages) done.resolve(performance.now())
  })
  const last = await done.promise
  await connection.close()
  return messages / ((last - first) / 1000)
}

/** Peak VmRSS and peak RssAnon (RSS without the mapped executable and libraries) of a process. */
const peakRss = (pid: number) => {
  let peak = 0
  let peakAnon = 0
  const timer = setInterval(() => {
    try {
      const status = readFileSync(`/proc/${pid}/status`, "utf8")
      peak = Math.max(peak, Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0))
      peakAnon = Math.max(peakAnon, Number(/RssAnon:\s+(\d+)/.exec(status)?.[1] ?? 0))
    } catch {
      // the process has exited
    }
  }, 20)
  return () => {
    clearInterval(timer)
    return { rss: peak / 1024, anon: peakAnon / 1024 }
  }
}

const counterRun = async (dest: { exchange: string; queue: string }) => {
  const proc = Bun.spawn([process.execPath, "run", join(import.meta.dir, "..", "programs", "event-counter.ts")], {
    env: {
      ...process.env,
      RABBITMQ_URL: url, RABBITMQ_EXCHANGE: dest.exchange, RABBITMQ_QUEUE: dest.queue,
      OUTPUT_DIR: mkdtempSync(join(tmpdir(), "bench-counter-")), IDLE_TIMEOUT: "1s", METRICS_PORT: "0",
      PREFETCH: String(prefetch), LOG_FORMAT: "json"
    },
    stdout: "ignore",
    stderr: "pipe"
  })
  const rss = peakRss(proc.pid)
  const log = await new Response(proc.stderr).text()
  const code = await proc.exited
  const peak = rss()
  const summary = log.split("\n").filter((l) => l.includes(`"counter finished"`)).map((l) => JSON.parse(l))[0]
  if (code !== 0 || summary === undefined) throw new Error(`counter exited ${code}\n${log.slice(-2000)}`)
  return {
    perSecond: summary.annotations.perSecond as number,
    handled: summary.annotations.messages as number,
    peakRssMb: peak.rss,
    peakAnonMb: peak.anon
  }
}

const cleanup = async () => {
  const connection = await amqp.connect(url)
  const channel = await connection.createChannel()
  for (const d of [raw, counted]) {
    await channel.deleteQueue(d.queue)
    await channel.deleteQueue(`${d.queue}.dlq`)
    await channel.deleteExchange(d.exchange)
    await channel.deleteExchange(`${d.queue}.dlq`)
  }
  await connection.close()
}

const median = (xs: ReadonlyArray<number>) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!

console.log(`bench/counter: ${messages} messages, prefetch ${prefetch}, ${rounds} rounds, ${url.replace(/:[^:@/]*@/, ":***@")}`)
try {
  const results: Array<{ raw: number; counter: number; ratio: number; rss: number; anon: number }> = []
  for (let round = 1; round <= rounds; round++) {
    await fill(raw)
    await fill(counted)
    const baseline = await rawLoop(raw.queue)
    const counter = await counterRun(counted)
    if (counter.handled !== messages) throw new Error(`the counter handled ${counter.handled} of ${messages}`)
    results.push({
      raw: baseline,
      counter: counter.perSecond,
      ratio: counter.perSecond / baseline,
      rss: counter.peakRssMb,
      anon: counter.peakAnonMb
    })
    console.log(
      `round ${round}: raw amqplib loop ${Math.round(baseline)} msg/s | event counter ${counter.perSecond} msg/s = ${(counter.perSecond / baseline).toFixed(2)} of raw | counter peak RSS ${counter.peakRssMb.toFixed(1)} MB (anonymous ${counter.peakAnonMb.toFixed(1)} MB)`
    )
  }
  const summary = {
    messages,
    prefetch,
    rounds,
    rawPerSecond: Math.round(median(results.map((r) => r.raw))),
    counterPerSecond: Math.round(median(results.map((r) => r.counter))),
    ratio: Number(median(results.map((r) => r.ratio)).toFixed(2)),
    counterPeakRssMb: Number(median(results.map((r) => r.rss)).toFixed(1)),
    counterPeakAnonMb: Number(median(results.map((r) => r.anon)).toFixed(1))
  }
  console.log(`median: raw amqplib loop (ack every 100, multiple) ${summary.rawPerSecond} msg/s`)
  console.log(`median: event counter (programs/event-counter.ts)  ${summary.counterPerSecond} msg/s = ${summary.ratio} of raw`)
  console.log(`median: event counter peak RSS ${summary.counterPeakRssMb} MB (anonymous ${summary.counterPeakAnonMb} MB)`)
  console.log(JSON.stringify(summary))
} finally {
  await cleanup()
}
