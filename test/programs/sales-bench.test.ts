/**
 * sales-bench as a user runs it, on real RabbitMQ against the real programs: three workers and
 * the balancer, a short open-loop run through the balancer and one --direct, with --json and
 * --report; and a bad setting stops it before it sends anything.
 */
import { afterAll, describe, expect, test } from "bun:test"
import { existsSync, mkdtempSync, readFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { BenchResult } from "../../src/sales/bench.ts"
import { opsUrl, type RunningProgram, startProgram } from "../support/program.ts"
import { findSamples, parsePrometheus } from "../support/prometheus.ts"
import { deleteRabbitmqTopology } from "../support/rabbitmq.ts"
import { salesTopology } from "../support/salesTopology.ts"
import { freshName, probeRabbitmq, rabbitmqUrl, requireServer } from "../support/servers.ts"

const url = rabbitmqUrl()
const rabbitUp = await requireServer("RabbitMQ", probeRabbitmq(url))
const dir = mkdtempSync(join(tmpdir(), "sales-bench-"))

const cleanup: Array<{ topic: string; group: string }> = []
const running: Array<RunningProgram> = []
afterAll(async () => {
  for (const program of running) program.kill("SIGKILL")
  await deleteRabbitmqTopology(url, cleanup)
})

const bench = async (env: Record<string, string>, args: ReadonlyArray<string>) => {
  const run = startProgram("sales-bench.ts", { RABBITMQ_URL: url, ...env }, args)
  running.push(run)
  return { code: await run.exited, stdout: run.stdout(), stderr: run.stderr() }
}

const routedByWorker = async (ops: string) =>
  Object.fromEntries(findSamples(parsePrometheus(await (await fetch(`${ops}/metrics`)).text()), "sales_balancer_routed_total").map((s) => [s.labels.worker!, s.value]))

describe.if(rabbitUp)("sales-bench on RabbitMQ", () => {
  test("through the balancer with three workers and --direct: every request answered, figures in order, a report written", async () => {
    const db = join(dir, "sales.db")
    expect(await startProgram("sales-seed.ts", { DB_PATH: db }, ["--seed", "8"]).exited).toBe(0)
    const queues = [1, 2, 3].map((i) => freshName(`mom_worker_${i}`))
    const { requestQueue, heartbeatTopic, balancerEnv } = salesTopology(queues, cleanup)
    const workers = queues.map((queue) =>
      startProgram("sales-worker.ts", { QUEUE_NAME: queue, DB_PATH: db, RABBITMQ_URL: url, HEARTBEAT_TOPIC: heartbeatTopic })
    )
    running.push(...workers)
    const balancer = startProgram("sales-balancer.ts", {
      RABBITMQ_URL: url, ...balancerEnv
    })
    running.push(balancer)
    const ops = await opsUrl(balancer)
    await Promise.all(workers.map((w) => w.waitFor(/sales worker .* answering/)))

    // A generous timeout: the machine running the tests may be busy; the figures are not judged here.
    const common = { WARMUP: "0", DURATION: "3s", TARGET_RATE: "100", CONCURRENCY: "5", REQUEST_TIMEOUT: "20s", WORKER_QUEUES: queues.join(",") }
    const report = join(dir, "report.html")
    const viaBalancer = await bench({ ...common, REQUEST_QUEUE: requestQueue }, ["--json", "--report", report])
    expect(viaBalancer.code).toBe(0)
    const result = JSON.parse(viaBalancer.stdout) as BenchResult
    expect([result.mode, result.targetRate, result.concurrency, result.targets]).toEqual(["open", 100, 5, [requestQueue]])
    // A failed query answers `internal`; the workers' logs say why.
    const queryFailures = () => workers.flatMap((w) => (w.stderr() + w.stdout()).split("\n").filter((line) => line.includes("sales query failed")))
    expect({ counts: [result.sent, result.ok, result.timeouts, result.errors], queryFailures: queryFailures() })
      .toEqual({ counts: [300, 300, 0, {}], queryFailures: [] })
    const { p50, p90, p99, p999, max } = result.latency
    expect(0 < p50 && p50 <= p90 && p90 <= p99 && p99 <= p999 && p999 <= max * 1.001).toBe(true)
    // Replies cannot come faster than the schedule sends; how much slower depends on the machine.
    expect(result.achievedRate).toBeGreaterThan(0)
    expect(result.achievedRate).toBeLessThanOrEqual(100.5)
    // Not a terminal: progress came as plain lines, on stderr beside the JSON.
    expect(viaBalancer.stderr).toMatch(/sent \d+ +answered \d+ +rate \d+\/s +p99 [\d.]+ ms/)
    expect(viaBalancer.stderr).not.toContain("\r")
    expect(viaBalancer.stderr).toContain(`report written to ${report}`)
    const html = readFileSync(report, "utf8")
    expect(html).toContain("<svg")
    expect(html).toContain("</svg>")
    // The balancer routed them all, to all three.
    const routed = await routedByWorker(ops)
    expect(Object.values(routed).reduce((n, v) => n + v, 0)).toBe(300)
    for (const queue of queues) expect(routed[queue]).toBeGreaterThan(0)

    const direct = await bench(common, ["--direct", "--duration", "2s"])
    expect(direct.code).toBe(0)
    expect(direct.stdout).toContain(`to ${queues.join(",")}`)
    expect(direct.stdout).toMatch(/^sent +200$/m)
    expect(direct.stdout).toMatch(/^ok +200$/m)
    expect(direct.stdout).toMatch(/^timeouts +0$/m)
    expect(direct.stdout).toMatch(/^latency p99 +[\d.]+ ms$/m)
    // Nothing went through the balancer this time.
    expect(Object.values(await routedByWorker(ops)).reduce((n, v) => n + v, 0)).toBe(300)
  }, 120_000)

  test("a bad setting stops it at start naming the variable, before it sends anything", async () => {
    const never = join(dir, "never.html")
    const run = await bench({ TARGET_RATE: "0" }, ["--report", never])
    expect(run.code).toBe(2)
    expect(run.stderr).toContain("TARGET_RATE")
    const sweep = await bench({}, ["--sweep", "--sweep-start", "5000", "--sweep-max", "1000", "--report", never])
    expect(sweep.code).toBe(2)
    expect(sweep.stderr).toContain("SWEEP_MAX")
    expect(existsSync(never)).toBe(false)
  }, 60_000)
})

const hasScript = await requireServer("script (util-linux), to give the program a terminal", async () => {
  if (Bun.which("script") === null) throw new Error("script is not installed")
})

describe.if(hasScript)("sales-bench progress", () => {
  // The in-process memory broker with nobody answering: every request times out, which is all this needs.
  const env = { BROKER: "memory", WARMUP: "0", DURATION: "2s", TARGET_RATE: "20", REQUEST_TIMEOUT: "300ms", PROGRESS_INTERVAL: "250ms" }

  test("on a terminal it rewrites one line; the table follows on a clean line", async () => {
    const command = [process.execPath, "run", join(import.meta.dir, "..", "..", "programs", "sales-bench.ts")].join(" ")
    const proc = Bun.spawn(["script", "-qec", command, "/dev/null"], { env: { ...process.env, ...env }, stdout: "pipe", stderr: "pipe" })
    const [out, code] = await Promise.all([new Response(proc.stdout).text(), proc.exited])
    expect(code).toBe(0)
    const rewrites = out.split("\r\x1b[K").length - 1
    expect(rewrites).toBeGreaterThanOrEqual(4)
    expect(out).toMatch(/\r\x1b\[K[\d.]+s  sent \d+  answered 0  rate 0\/s  p99 [\d.]+ ms  errors 0  timeouts \d+/)
    // The terminal turns "\n" into "\r\n".
    expect(out).toMatch(/\r\x1b\[Krun +open loop, 20 req\/s/)
    expect(out).toMatch(/timeouts +40\r?\n/)
  }, 60_000)

  test("elsewhere it prints plain lines", async () => {
    const run = await bench(env, [])
    expect(run.code).toBe(0)
    expect(run.stdout).not.toContain("\r")
    expect(run.stdout.split("\n").filter((line) => /^[\d.]+s  sent \d+/.test(line)).length).toBeGreaterThanOrEqual(4)
    expect(run.stdout).toMatch(/^timeouts +40$/m)
  }, 60_000)
})
