/**
 * The scheduler's deployment (compose.yaml, deploy/): two replicas on PostgreSQL and RabbitMQ,
 * both scraped by Prometheus, and a Grafana dashboard whose queries name only series a real
 * scheduler exports — read from its /metrics text after runs that succeeded and failed and
 * occurrences it skipped, so a renamed metric fails here rather than as an empty panel.
 */
import { describe, expect, test } from "bun:test"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import { TestClock } from "effect/testing"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import * as MemoryStore from "../../layers/memory/schedulerStore.ts"
import * as Otel from "../../layers/telemetry/otel.ts"
import { MetricsSource } from "../../src/runtime/MetricsSource.ts"
import { register } from "../../src/scheduler/job.ts"
import { makeScheduler } from "../../src/scheduler/scheduler.ts"
import { parsePrometheus } from "../support/prometheus.ts"

const root = join(import.meta.dir, "..", "..")

const families = [
  "scheduler_job_runs_total",
  "scheduler_job_skips_total",
  "scheduler_job_duration_seconds",
  "scheduler_job_lateness_seconds",
  "scheduler_jobs_running"
]

interface Panel {
  readonly targets?: ReadonlyArray<{ readonly expr?: string }>
  readonly panels?: ReadonlyArray<Panel>
}

const exprs = (panels: ReadonlyArray<Panel>): Array<string> =>
  panels.flatMap((panel) => [...(panel.targets ?? []).flatMap((t) => t.expr === undefined ? [] : [t.expr]), ...exprs(panel.panels ?? [])])

/** A scheduler's /metrics page after five simulated seconds of succeeding, failing and overlapping jobs. */
const schedulerMetricsPage = () =>
  Effect.runPromise(Effect.gen(function*() {
    yield* TestClock.setTime(Date.parse("2026-01-01T00:00:00Z"))
    const jobs = yield* register([
      { name: "ok", schedule: "@every 1s", run: Effect.void },
      { name: "bad", schedule: "@every 1s", run: Effect.fail(new Error("no")) },
      { name: "slow", schedule: "@every 1s", overlap: "skip", run: Effect.sleep("1500 millis") }
    ], { timeZone: "UTC", timeout: Duration.seconds(30) })
    const scheduler = yield* makeScheduler(jobs, { instance: "a", maxConcurrent: 10, shutdownTimeout: "5 seconds", retention: "1 day" })
    const fiber = yield* Effect.forkChild(scheduler.run, { startImmediately: true })
    yield* TestClock.adjust("5 seconds")
    const page = parsePrometheus(yield* MetricsSource.use((m) => m.render))
    const stopping = yield* Effect.forkChild(Fiber.interrupt(fiber), { startImmediately: true })
    yield* TestClock.adjust("10 seconds")
    yield* Fiber.join(stopping)
    return page
  }).pipe(
    Effect.provide(Layer.mergeAll(MemoryStore.layer(), Otel.layer({ serviceName: "scheduler" }), TestClock.layer())),
    Effect.provide(Logger.layer([]))
  ))

describe("scheduler dashboard", () => {
  const dashboard = JSON.parse(readFileSync(join(root, "deploy", "grafana", "dashboards", "scheduler.json"), "utf8")) as { uid: string; panels: Array<Panel> }
  const used = [...new Set(exprs(dashboard.panels).flatMap((e) => e.match(/\bscheduler_[a-z0-9_]+/g) ?? []))].sort()

  test("a scheduler exports its five metric families; the dashboard names only series it exports and uses all five", async () => {
    const page = await schedulerMetricsPage()
    expect(Object.keys(page.types).filter((name) => name.startsWith("scheduler_")).sort()).toEqual([...families].sort())
    const value = (name: string, labels: Record<string, string>) =>
      page.samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)).reduce((sum, s) => sum + s.value, 0)
    expect(value("scheduler_job_runs_total", { job: "ok", outcome: "succeeded" })).toBe(5)
    expect(value("scheduler_job_runs_total", { job: "bad", outcome: "failed" })).toBe(5)
    expect(value("scheduler_job_skips_total", { job: "slow", reason: "overlap" })).toBe(2)
    const exported = new Set(page.samples.map((s) => s.name))
    expect(used.filter((name) => !exported.has(name))).toEqual([])
    expect(families.filter((family) => !used.some((name) => name === family || name === `${family}_bucket`))).toEqual([])
    // Histograms through their buckets, counters through their totals.
    for (const name of used) if (name.includes("_seconds")) expect(name).toEndWith("_bucket")
    for (const name of used) if (/_(runs|skips)/.test(name)) expect(name).toEndWith("_total")
  }, 60_000)

  test("the dashboard has a uid of its own", () => {
    expect(dashboard.uid).toBe("scheduler")
  })
})

describe("scheduler services in compose.yaml", () => {
  interface Service {
    readonly command?: ReadonlyArray<string>
    readonly environment?: Record<string, string>
    readonly depends_on?: Record<string, { condition: string }>
    readonly ports?: ReadonlyArray<string>
  }
  const compose = Bun.YAML.parse(readFileSync(join(root, "compose.yaml"), "utf8")) as { services: Record<string, Service> }
  const prometheus = Bun.YAML.parse(readFileSync(join(root, "deploy", "prometheus", "prometheus.yml"), "utf8")) as {
    scrape_configs: Array<{ job_name: string; static_configs: Array<{ targets: Array<string> }> }>
  }

  test("two replicas run the scheduler bundle on PostgreSQL and RabbitMQ, each with its own instance id, both scraped", () => {
    const replicas = ["scheduler-1", "scheduler-2"].map((name) => [name, compose.services[name]!] as const)
    for (const [name, service] of replicas) {
      expect(service.command).toEqual(["dist/scheduler.js"])
      expect(service.environment?.["DATABASE_URL"]).toStartWith("postgres://")
      expect(service.environment?.["BROKER"]).toBe("rabbitmq")
      expect(service.environment?.["RABBITMQ_URL"]).toStartWith("amqp://")
      expect(service.environment?.["SCHEDULER_INSTANCE_ID"]).toBe(name)
      expect(service.depends_on).toEqual({ postgres: { condition: "service_healthy" }, rabbitmq: { condition: "service_healthy" } })
    }
    const job = prometheus.scrape_configs.find((c) => c.job_name === "scheduler")!
    expect(job.static_configs.flatMap((c) => c.targets)).toEqual(replicas.map(([name, s]) => `${name}:${s.environment!["METRICS_PORT"]}`))
  })
})
