/**
 * The cron scheduler under load, in one run (issue 10's goals: p99 lateness < 5 ms at 1 000
 * fires/s with 10 000 jobs, RSS < 128 MB):
 *
 *   bun run bench/scheduler.ts [--jobs 10000] [--seconds 30] [--job-ms 0] [--replica-jobs 200] [--replica-seconds 20] [--no-replicas] [--smol] [--ram-mb N]
 *
 * 1. local: one process (a child, so its RSS and CPU are its own) with `--jobs` registered `@every`
 *    jobs on the in-memory store, intervals spread over 9.5–10.5 s so the fires spread evenly
 *    (`@every` is aligned to the epoch: equal intervals would all fire in one burst) — about
 *    jobs/10 fires a second. Each job notes its lateness: when its effect starts minus its
 *    scheduled time, in microseconds. The first 5 s are warm-up and left out. With `--job-ms N`
 *    each job then waits N ms (on Effect's Clock), as a job doing I/O would: its attempt
 *    suspends, is watched for its timeout and renews its lease, which a job ending at once skips.
 *    Next to it, an idle Bun process (a timer, nothing else) in the same run: the baseline of RSS
 *    and CPU. Both are sampled from /proc every 250 ms; the scheduler's RSS is printed at intervals
 *    and at the end besides its peak, and the child reports its heap after a full GC (the store's
 *    history grows for ~20 intervals, ~200 s, so `--seconds 240` shows the steady state).
 * 2. replicas: three processes against one PostgreSQL schema, each with the same `--replica-jobs`
 *    `@every 1s` jobs: occurrences claimed a second (all replicas together), whether each
 *    occurrence ran exactly once, and the lateness of the runs.
 */
import { spawn } from "node:child_process"
import { readFileSync } from "node:fs"
import process from "node:process"
import postgres from "postgres"

const text = (name: string, fallback: string) => {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 ? process.argv[i + 1]! : fallback
}
const arg = (name: string, fallback: number) => Number(text(name, String(fallback)))

const percentile = (sorted: ArrayLike<number>, p: number) =>
  sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!
// A replica with no run after its warm-up has no percentiles (NaN, which JSON carries as null).
const ms = (micros: number | null) => (micros === null || Number.isNaN(micros) ? "none" : `${(micros / 1000).toFixed(2)} ms`)

// ---- child: a scheduler process -------------------------------------------------------------
if (text("child", "") !== "") {
  const Effect = await import("effect/Effect")
  const Layer = await import("effect/Layer")
  const Logger = await import("effect/Logger")
  const Duration = await import("effect/Duration")
  const { register } = await import("../src/scheduler/job.ts")
  const { makeScheduler, CurrentRun } = await import("../src/scheduler/scheduler.ts")
  const { SchedulerStore } = await import("../src/capabilities/SchedulerStore.ts")
  const MemoryStore = await import("../layers/memory/schedulerStore.ts")
  const mode = text("child", "")
  const jobs = arg("jobs", 10_000)
  const seconds = arg("seconds", 30)
  const warmup = arg("warmup", 5) * 1000
  const started = Date.now()
  // Preallocated, so the bench's own notes do not grow the heap it measures.
  const lateness = new Int32Array(Math.ceil((jobs / 9.5) * seconds * 1.2) + 1000)
  let measured = 0
  let fires = 0
  const jobMs = arg("job-ms", 0)
  const note = Effect.flatMap(CurrentRun, (run) =>
    Effect.sync(() => {
      const now = performance.timeOrigin + performance.now()
      if (run === undefined || run.trigger !== "schedule" || run.attempt !== 1) return
      fires++
      if (now - started >= warmup && measured < lateness.length) lateness[measured++] = Math.round((now - run.scheduledAt.getTime()) * 1000)
    })).pipe(jobMs > 0 ? Effect.andThen(Effect.sleep(Duration.millis(jobMs))) : (effect) => effect)
  const definitions = Array.from({ length: jobs }, (_, i) => ({
    name: `job-${i}`,
    schedule: mode === "local" ? `@every ${9500 + (i * 7919) % 1000}ms` : "@every 1s",
    run: note
  }))
  const store = mode === "local"
    ? MemoryStore.layer()
    : await (async () => {
      const PostgresSql = await import("../layers/postgres/sql.ts")
      const SqlStore = await import("../src/scheduler/sqlStore.ts")
      return Layer.effect(SchedulerStore, SqlStore.make).pipe(
        Layer.provide(PostgresSql.layer({ url: text("url", ""), schema: text("schema", ""), max: 4 }))
      )
    })()
  const program = Effect.gen(function*() {
    const registered = yield* register(definitions, { timeZone: "UTC", timeout: Duration.seconds(30) })
    const scheduler = yield* makeScheduler(registered, {
      instance: text("instance", "bench"),
      maxConcurrent: 100_000,
      shutdownTimeout: "5 seconds",
      retention: "1 day",
      sweepInterval: "5 seconds"
    })
    yield* Effect.raceFirst(scheduler.run, Effect.sleep(Duration.seconds(seconds)))
    // Still inside the program, so the store (its history) is alive and counted.
    return yield* Effect.promise(() => heap())
  })
  const heap = async () => {
    const { heapStats } = await import("bun:jsc")
    Bun.gc(true)
    const usage = process.memoryUsage()
    const stats = heapStats()
    const top = Object.entries(stats.objectTypeCounts).sort((a, b) => b[1] - a[1]).slice(0, 8)
    return { rss: usage.rss, heapUsed: usage.heapUsed, heapTotal: usage.heapTotal, external: usage.external, objects: stats.objectCount, top }
  }
  const memory = await Effect.runPromise(program.pipe(Effect.provide(store), Effect.provide(Logger.layer([]))))
  const sorted = lateness.subarray(0, measured).sort()
  console.log(JSON.stringify({ fires, seconds, measured, p50: percentile(sorted, 50), p99: percentile(sorted, 99), max: sorted.at(-1) ?? NaN, memory }))
  process.exit(0)
}

// ---- parent ---------------------------------------------------------------------------------
const ticks = 100 // USER_HZ on Linux
const sample = (pid: number) => {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8")
    const rss = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) * 1024
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ")
    const cpu = (Number(stat[11]) + Number(stat[12])) / ticks
    return { rss, cpu }
  } catch {
    return undefined
  }
}

interface Watched {
  readonly output: Promise<string>
  readonly peakRss: () => number
  readonly lastRss: () => number
  readonly cpuSeconds: () => number
  readonly kill: () => void
}

/** `every`: print the RSS (and CPU) that often, in seconds (0: never). */
const watch = (args: ReadonlyArray<string>, every = 0, label = "", env: Record<string, string> = {}): Watched => {
  const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "inherit"], env: { ...process.env, ...env } })
  let out = ""
  child.stdout.on("data", (chunk) => { out += chunk })
  let peak = 0
  let last = 0
  let cpu = 0
  let samples = 0
  const timer = setInterval(() => {
    const s = sample(child.pid!)
    // An exiting process has no VmRSS left.
    if (s === undefined || s.rss === 0) return
    peak = Math.max(peak, s.rss)
    last = s.rss
    cpu = s.cpu
    samples++
    if (every > 0 && samples % (every * 4) === 0) {
      console.log(`${label}: at ${samples / 4} s RSS ${mb(s.rss)} (peak ${mb(peak)}), CPU ${cpu.toFixed(1)} s`)
    }
  }, 250)
  const output = new Promise<string>((resolve) => child.on("exit", () => { clearInterval(timer); resolve(out) }))
  return { output, peakRss: () => peak, lastRss: () => last, cpuSeconds: () => cpu, kill: () => child.kill("SIGTERM") }
}

const mb = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MB`
const jobs = arg("jobs", 10_000)
const seconds = arg("seconds", 30)
const self = new URL(import.meta.url).pathname

const jobMs = arg("job-ms", 0)
console.log(`bench/scheduler: ${jobs} @every jobs (9.5–10.5 s)${jobMs > 0 ? `, each waiting ${jobMs} ms,` : ""} for ${seconds} s on the memory store, beside an idle Bun process`)
const idle = watch(["-e", "setInterval(() => {}, 1000)"])
// `--smol`: the scheduler process runs under `bun --smol`. `--ram-mb N`: JavaScriptCore sizes its
// collection thresholds for N MB of RAM instead of the machine's (as in a small container).
const smol = process.argv.includes("--smol") ? ["--smol"] : []
const ram = text("ram-mb", "")
const local = watch([...smol, self, "--child", "local", "--jobs", String(jobs), "--seconds", String(seconds), "--job-ms", String(jobMs)], seconds > 60 ? 30 : 10, "local",
  ram === "" ? {} : { BUN_JSC_forceRAMSize: String(Number(ram) * 2 ** 20) })
interface Memory {
  readonly rss: number
  readonly heapUsed: number
  readonly heapTotal: number
  readonly external: number
  readonly objects: number
  readonly top: ReadonlyArray<readonly [string, number]>
}
const result = JSON.parse(await local.output) as { fires: number; measured: number; p50: number; p99: number; max: number; memory: Memory }
const idleRss = idle.peakRss()
const idleCpu = idle.cpuSeconds()
idle.kill()
await idle.output
const localLine = {
  jobs,
  seconds,
  jobMs,
  firesPerSecond: Math.round(result.fires / seconds),
  lateness: { p50: result.p50 / 1000, p99: result.p99 / 1000, max: result.max / 1000, measured: result.measured },
  peakRssMb: Number((local.peakRss() / 2 ** 20).toFixed(1)),
  endRssMb: Number((local.lastRss() / 2 ** 20).toFixed(1)),
  afterGc: { rssMb: Number((result.memory.rss / 2 ** 20).toFixed(1)), heapUsedMb: Number((result.memory.heapUsed / 2 ** 20).toFixed(1)), objects: result.memory.objects },
  cpuSeconds: local.cpuSeconds(),
  idle: { peakRssMb: Number((idleRss / 2 ** 20).toFixed(1)), cpuSeconds: idleCpu }
}
console.log(`local: ${localLine.firesPerSecond} fires/s; lateness p50 ${ms(result.p50)}, p99 ${ms(result.p99)}, max ${ms(result.max)} (${result.measured} runs after warm-up)`)
console.log(`local: scheduler peak RSS ${mb(local.peakRss())}, at the end ${mb(local.lastRss())}, CPU ${local.cpuSeconds().toFixed(1)} s of ${seconds} s | idle Bun peak RSS ${mb(idleRss)}, CPU ${idleCpu.toFixed(2)} s`)
const m = result.memory
console.log(`local: after a full GC at the end: RSS ${mb(m.rss)}, heap used ${mb(m.heapUsed)} of ${mb(m.heapTotal)}, external ${mb(m.external)}, ${m.objects} objects; most: ${m.top.map(([type, n]) => `${type} ${n}`).join(", ")}`)
if (process.argv.includes("--no-replicas")) {
  console.log(JSON.stringify({ local: localLine }))
  process.exit(0)
}

const url = process.env.TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test"
const replicaJobs = arg("replica-jobs", 200)
const replicaSeconds = arg("replica-seconds", 20)
const schema = `bench_sched_${Date.now().toString(36)}`
const sql = postgres(url, { max: 1, onnotice: () => {} })
await sql.unsafe(`create schema ${schema}`)
let replicaLine: Record<string, unknown> = {}
try {
  console.log(`replicas: 3 processes, ${replicaJobs} @every 1s jobs each (the same jobs), ${replicaSeconds} s, one PostgreSQL schema`)
  // The first creates the tables (advisory lock); the others find them.
  const replicas = [1, 2, 3].map((n) =>
    watch([self, "--child", "replica", "--jobs", String(replicaJobs), "--seconds", String(replicaSeconds), "--warmup", "3", "--url", url, "--schema", schema, "--instance", `r${n}`]))
  const outputs = (await Promise.all(replicas.map((r) => r.output))).map((o) => JSON.parse(o) as { fires: number; p50: number | null; p99: number | null; max: number | null })
  const [counts] = await sql.unsafe<Array<{ runs: number; occurrences: number; first: Date; last: Date }>>(
    `select count(*)::int as runs, count(distinct (job, scheduled_at))::int as occurrences, min(scheduled_at) as first, max(scheduled_at) as last
     from ${schema}.scheduler_runs where trigger = 'schedule' and attempt = 1 and outcome <> 'skipped'`)
  const span = (counts!.last.getTime() - counts!.first.getTime()) / 1000 + 1
  replicaLine = {
    replicas: 3,
    jobs: replicaJobs,
    claimedPerSecond: Math.round(counts!.runs / span),
    runs: counts!.runs,
    exactlyOnce: counts!.runs === counts!.occurrences,
    perReplica: outputs.map((o) => o.fires),
    latenessP99: outputs.map((o) => (o.p99 === null ? null : o.p99 / 1000)),
    peakRssMb: replicas.map((r) => Number((r.peakRss() / 2 ** 20).toFixed(1)))
  }
  console.log(`replicas: ${replicaLine.claimedPerSecond} occurrences claimed and run a second; ${counts!.runs} runs for ${counts!.occurrences} occurrences (${replicaLine.exactlyOnce ? "each exactly once" : "DUPLICATES"}); per replica ${outputs.map((o) => o.fires).join(" / ")}`)
  console.log(`replicas: lateness p50 ${outputs.map((o) => ms(o.p50)).join(" / ")}, p99 ${outputs.map((o) => ms(o.p99)).join(" / ")}, max ${outputs.map((o) => ms(o.max)).join(" / ")}`)
} finally {
  await sql.unsafe(`drop schema ${schema} cascade`)
  await sql.end()
}
console.log(JSON.stringify({ local: localLine, replicas: replicaLine }))
