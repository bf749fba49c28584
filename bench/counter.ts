/**
 * Event counter throughput from RabbitMQ, against the fastest raw amqplib loop, in one run.
 *
 *   bun run bench/counter.ts [--messages 200000] [--prefetch 1000] [--rounds 5]
 *                            [--from bundle|source] [--memory-limit 90MiB|off]
 *                            [--baseline-bundle path/to/event-counter.js]
 *
 * 1. baseline: a bare amqplib consumer (prefetch P, ack every 100 with `multiple`) drains a queue
 *    holding the messages; rate = messages / (last ack - first delivery).
 * 2. counter: the event counter as the image runs it (the bundle `scripts/build.ts` makes; with
 *    `--from source`, programs/event-counter.ts), as a child process with its defaults, drains a
 *    queue holding the same messages; rate = what it reports (first message taken to last
 *    message settled). Its peak RSS is sampled from /proc while it runs.
 * 3. the same counter with `MEMORY_LIMIT` set (unless `--memory-limit off`), over the same messages.
 * 4. with `--baseline-bundle <file>`, the counter from that bundle (built from another commit, say)
 *    on its defaults, and with `MEMORY_LIMIT` as in 3, over the same messages, so a before/after
 *    comparison takes one run.
 * All queues are filled before any run, so publishing speed does not enter the figures.
 * The machine may be shared and noisy, so rounds alternate the runs and the medians are reported:
 * for each counter, its median rate, the median of its per-round ratios to the raw loop, their
 * spread, and the ratio of the medians (see `summary.ts`), then all of it as one JSON line.
 */
import * as amqp from "amqplib"
import * as Effect from "effect/Effect"
import { existsSync, mkdtempSync, readFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as RabbitMQ from "../layers/rabbitmq/index.ts"
import { publishTraffic } from "../src/counter/publishTraffic.ts"
import { median, rawLine, type Run, summarize, summaryLine } from "./summary.ts"

const text = (name: string, fallback: string) => {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 ? process.argv[i + 1]! : fallback
}
const arg = (name: string, fallback: number) => Number(text(name, String(fallback)))
const messages = arg("messages", 200_000)
const prefetch = arg("prefetch", 1000)
const rounds = arg("rounds", 5)
const from = text("from", "bundle")
const memoryLimit = text("memory-limit", "90MiB")
const baselineBundle = text("baseline-bundle", "") || undefined
const url = process.env.RABBITMQ_URL ?? "amqp://guest:guest@127.0.0.1:5672"
const tag = Date.now().toString(36)
const raw = { exchange: `bench_raw_x_${tag}`, queue: `bench_raw_q_${tag}` }
const counted = { exchange: `bench_counter_x_${tag}`, queue: `bench_counter_q_${tag}` }
const limited = { exchange: `bench_limited_x_${tag}`, queue: `bench_limited_q_${tag}` }
const before = { exchange: `bench_before_x_${tag}`, queue: `bench_before_q_${tag}` }
const beforeLimited = { exchange: `bench_before_limited_x_${tag}`, queue: `bench_before_limited_q_${tag}` }

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

/** The counter as it ships: bundled alone into a scratch directory, or the source file. */
const counterFile = async () => {
  if (from === "source") return join(import.meta.dir, "..", "programs", "event-counter.ts")
  const outdir = mkdtempSync(join(tmpdir(), "bench-bundle-"))
  const build = Bun.spawn([process.execPath, "run", join(import.meta.dir, "..", "scripts", "build.ts"), "--outdir", outdir], {
    stdout: "ignore",
    stderr: "inherit"
  })
  if ((await build.exited) !== 0) throw new Error("scripts/build.ts failed")
  return join(outdir, "event-counter.js")
}

const counterRun = async (file: string, dest: { exchange: string; queue: string }, env: Record<string, string> = {}) => {
  const proc = Bun.spawn([process.execPath, "run", file], {
    env: {
      ...process.env,
      ...env,
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
  for (const d of [raw, counted, limited, before, beforeLimited]) {
    await channel.deleteQueue(d.queue)
    await channel.deleteQueue(`${d.queue}.dlq`)
    await channel.deleteExchange(d.exchange)
    await channel.deleteExchange(`${d.queue}.dlq`)
  }
  await connection.close()
}

const withLimit = memoryLimit !== "off"
if (baselineBundle !== undefined && !existsSync(baselineBundle)) throw new Error(`--baseline-bundle: no file ${baselineBundle}`)
console.log(
  `bench/counter: ${messages} messages, prefetch ${prefetch}, ${rounds} rounds, counter from ${from}${
    withLimit ? `, also with MEMORY_LIMIT=${memoryLimit}` : ""
  }${baselineBundle === undefined ? "" : `, also the baseline bundle ${baselineBundle}`}, ${url.replace(/:[^:@/]*@/, ":***@")}`
)
try {
  const file = await counterFile()
  const results: Array<{ raw: number; counter: Run; limited: Run | undefined; before: Run | undefined; beforeLimited: Run | undefined }> = []
  const describe = (label: string, run: Run) =>
    `${label} ${run.perSecond} msg/s = ${run.ratio.toFixed(2)} of raw, peak RSS ${run.rss.toFixed(1)} MB (anonymous ${run.anon.toFixed(1)} MB)`
  for (let round = 1; round <= rounds; round++) {
    await fill(raw)
    await fill(counted)
    if (withLimit) await fill(limited)
    if (baselineBundle !== undefined) await fill(before)
    if (baselineBundle !== undefined && withLimit) await fill(beforeLimited)
    const baseline = await rawLoop(raw.queue)
    const measure = async (dest: typeof counted, env?: Record<string, string>, program = file): Promise<Run> => {
      const run = await counterRun(program, dest, env)
      if (run.handled !== messages) throw new Error(`the counter handled ${run.handled} of ${messages}`)
      return { perSecond: run.perSecond, ratio: run.perSecond / baseline, rss: run.peakRssMb, anon: run.peakAnonMb }
    }
    const counter = await measure(counted)
    // Right after the counter it is compared with, both on their defaults.
    const old = baselineBundle === undefined ? undefined : await measure(before, {}, baselineBundle)
    const capped = withLimit ? await measure(limited, { MEMORY_LIMIT: memoryLimit }) : undefined
    const oldCapped = baselineBundle === undefined || !withLimit
      ? undefined
      : await measure(beforeLimited, { MEMORY_LIMIT: memoryLimit }, baselineBundle)
    results.push({ raw: baseline, counter, limited: capped, before: old, beforeLimited: oldCapped })
    console.log(
      `round ${round}: raw amqplib loop ${Math.round(baseline)} msg/s | ${describe("event counter", counter)}${
        capped === undefined ? "" : ` | ${describe(`with MEMORY_LIMIT=${memoryLimit}`, capped)}`
      }${old === undefined ? "" : ` | ${describe("baseline bundle", old)}`}${
        oldCapped === undefined ? "" : ` | ${describe(`baseline bundle with MEMORY_LIMIT=${memoryLimit}`, oldCapped)}`
      }`
    )
  }
  const rawMedian = median(results.map((r) => r.raw))
  const medians = (runs: ReadonlyArray<Run>) => summarize(runs, rawMedian)
  const summary = {
    messages,
    prefetch,
    rounds,
    from,
    rawPerSecond: Math.round(rawMedian),
    counter: medians(results.map((r) => r.counter)),
    ...(withLimit ? { memoryLimit, limited: medians(results.flatMap((r) => (r.limited === undefined ? [] : [r.limited]))) } : {}),
    ...(baselineBundle === undefined
      ? {}
      : {
        baselineBundle,
        before: medians(results.flatMap((r) => (r.before === undefined ? [] : [r.before]))),
        ...(withLimit ? { beforeLimited: medians(results.flatMap((r) => (r.beforeLimited === undefined ? [] : [r.beforeLimited]))) } : {})
      })
  }
  const line = (label: string, m: ReturnType<typeof medians>) => console.log(summaryLine(label, m))
  console.log(rawLine(rawMedian))
  line(`event counter (${from}, defaults)`, summary.counter)
  if (summary.limited !== undefined) line(`event counter (${from}, MEMORY_LIMIT=${memoryLimit})`, summary.limited)
  if (summary.before !== undefined) line(`event counter (baseline bundle ${baselineBundle}, defaults)`, summary.before)
  if (summary.beforeLimited !== undefined) {
    line(`event counter (baseline bundle ${baselineBundle}, MEMORY_LIMIT=${memoryLimit})`, summary.beforeLimited)
  }
  console.log(JSON.stringify(summary))
} finally {
  await cleanup()
}
