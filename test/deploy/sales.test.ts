/**
 * The sales query service's deployment: its compose services, what Prometheus scrapes, and a
 * Grafana dashboard whose queries name only series the balancer and workers really export — read
 * from their /metrics text after a run that routed, answered, re-routed and dropped requests, so
 * a renamed metric or a missing `_total`/`_bucket` fails here rather than as an empty panel.
 */
import { describe, expect, test } from "bun:test"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import * as MemoryBroker from "../../layers/memory/broker.ts"
import * as Sqlite from "../../layers/sqlite/index.ts"
import * as Otel from "../../layers/telemetry/otel.ts"
import { Headers } from "../../src/capabilities/Message.ts"
import { Publisher } from "../../src/capabilities/Publisher.ts"
import { directTopic, Subscriber } from "../../src/capabilities/Subscriber.ts"
import { consume } from "../../src/messaging/consume.ts"
import { MetricsSource } from "../../src/runtime/MetricsSource.ts"
import { Balancer } from "../../src/sales/balancer.ts"
import { heartbeatTopic } from "../../src/sales/heartbeat.ts"
import { runRelay } from "../../src/sales/relay.ts"
import { defaultSeedOptions, regions, seedSales } from "../../src/sales/seed.ts"
import { deadlineHeader, makeSalesWorker } from "../../src/sales/worker.ts"
import { takeN } from "../support/broker.ts"
import { parsePrometheus } from "../support/prometheus.ts"

const root = join(import.meta.dir, "..", "..")

interface Panel {
  readonly targets?: ReadonlyArray<{ readonly expr?: string }>
  readonly panels?: ReadonlyArray<Panel>
}
const exprs = (panels: ReadonlyArray<Panel>): Array<string> =>
  panels.flatMap((panel) => [...(panel.targets ?? []).flatMap((t) => t.expr === undefined ? [] : [t.expr]), ...exprs(panel.panels ?? [])])

/** The balancer's and a worker's metrics, in one process: two workers, one leaves with five requests unanswered, one request arrives expired. */
const salesMetricsPage = () =>
  Effect.runPromise(Effect.scoped(Effect.gen(function*() {
    const db = yield* (yield* Sqlite.loadDriver).open({ path: ":memory:", create: true })
    yield* seedSales(db, { ...defaultSeedOptions, sales: 1_000 })
    const balancer = new Balancer(["w1", "w2"])
    const replies = yield* Subscriber.use((s) => s.subscribe({ topic: directTopic, group: "client", prefetch: 1_000 }))
    yield* Effect.forkScoped(runRelay(balancer, {
      requestQueue: "sales_requests", replyQueue: "balancer-replies", heartbeatTopic, heartbeatQueue: "balancer.heartbeats",
      prefetch: 100, tick: "50 millis", statsEvery: "1 hour", consumerCheck: "1 hour"
    }))
    yield* Effect.forkScoped(consume({ topic: directTopic, group: "w1" }, makeSalesWorker(db, "w1", "w1").handler))
    const w2 = yield* Subscriber.use((s) => s.subscribe({ topic: directTopic, group: "w2", prefetch: 100 }))
    yield* Subscriber.use((s) => s.declare({ topic: directTopic, group: "sales_requests" }))
    const request = (i: number, headers: Record<string, string> = {}) => ({
      key: "sales_requests",
      headers: { [Headers.replyTo]: "client", [Headers.correlationId]: `c-${i}`, ...headers },
      body: JSON.stringify({ region: regions[i % 5], from: "2024-01-01", to: "2024-06-30" })
    })
    yield* Publisher.use((p) => p.publish(directTopic, Array.from({ length: 10 }, (_, i) => request(i))))
    yield* takeN(w2, 5)
    yield* takeN(replies, 5)
    yield* Publisher.use((p) =>
      p.publish(heartbeatTopic, [{
        key: "w2",
        body: JSON.stringify({ worker: "w2", queue: "w2", inFlight: 5, answered: 0, prefetch: 100, intervalMillis: 1000, leaving: true, sentAt: Date.now() })
      }])
    )
    yield* takeN(replies, 5)
    yield* Publisher.use((p) => p.publish(directTopic, [request(10, { [deadlineHeader]: String(Date.now() - 1) }), request(11)]))
    yield* takeN(replies, 1)
    return parsePrometheus(yield* MetricsSource.use((m) => m.render))
  })).pipe(
    Effect.provide(Layer.mergeAll(MemoryBroker.layer, Otel.layer({ serviceName: "sales" }))),
    Effect.provide(Logger.layer([]))
  ))

describe("Sales dashboard", () => {
  const dashboard = JSON.parse(readFileSync(join(root, "deploy", "grafana", "dashboards", "sales.json"), "utf8")) as { uid: string; panels: Array<Panel> }
  const used = [...new Set(exprs(dashboard.panels).flatMap((e) => e.match(/\bsales_[a-z0-9_]+/g) ?? []))].sort()

  test("its queries name only series the balancer and workers export, and use every sales family", async () => {
    const page = await salesMetricsPage()
    const families = Object.keys(page.types).filter((name) => name.startsWith("sales_")).sort()
    expect(families).toEqual([
      "sales_balancer_dropped_total", "sales_balancer_outstanding", "sales_balancer_replies_total", "sales_balancer_reply_latency_seconds",
      "sales_balancer_rerouted_total", "sales_balancer_routed_total", "sales_balancer_worker_healthy", "sales_query_duration_seconds",
      "sales_requests_total"
    ])
    const exported = new Set(page.samples.map((s) => s.name))
    expect(used.filter((name) => !exported.has(name))).toEqual([])
    expect(families.filter((family) => !used.some((name) => name === family || name === `${family}_bucket`))).toEqual([])
    for (const name of used) if (name.endsWith("_seconds_bucket") === false) expect(name).not.toContain("_seconds")
    expect(dashboard.uid).toBe("sales")
  }, 60_000)
})

describe("Sales services in compose.yaml", () => {
  interface Service {
    readonly command?: ReadonlyArray<string>
    readonly entrypoint?: ReadonlyArray<string>
    readonly environment?: Record<string, string>
    readonly depends_on?: Record<string, { condition: string }>
    readonly healthcheck?: unknown
    readonly volumes?: ReadonlyArray<string>
    readonly profiles?: ReadonlyArray<string>
  }
  const services = (Bun.YAML.parse(readFileSync(join(root, "compose.yaml"), "utf8")) as { services: Record<string, Service> }).services
  const prometheus = Bun.YAML.parse(readFileSync(join(root, "deploy", "prometheus", "prometheus.yml"), "utf8")) as {
    scrape_configs: Array<{ static_configs: Array<{ targets: Array<string> }> }>
  }
  const targets = prometheus.scrape_configs.flatMap((job) => job.static_configs.flatMap((c) => c.targets))
  const workers = ["sales-worker-1", "sales-worker-2", "sales-worker-3"]

  test("three workers with the original's queue names read the seeded database, once RabbitMQ is healthy and the seed is done", () => {
    workers.forEach((name, i) => {
      const service = services[name]!
      expect(service.command).toEqual(["dist/sales-worker.js"])
      expect(service.environment?.["QUEUE_NAME"]).toBe(`mom-worker-${i + 1}`)
      expect(service.environment?.["DB_PATH"]).toBe("/data/sales.db")
      expect(service.volumes).toEqual(["sales-data:/data"])
      expect(service.depends_on).toEqual({ rabbitmq: { condition: "service_healthy" }, "sales-seed": { condition: "service_completed_successfully" } })
      expect(service.healthcheck).toBeDefined()
    })
    const seed = services["sales-seed"]!
    expect(seed.environment?.["DB_PATH"]).toBe("/data/sales.db")
    expect(seed.entrypoint?.join(" ")).toContain("test -f /data/sales.db || exec bun run dist/sales-seed.js")
    expect(services["sales-balancer"]!.environment?.["WORKER_QUEUES"]).toBe("mom-worker-1,mom-worker-2,mom-worker-3")
    expect(services["sales-bench"]!.profiles).toEqual(["tools"])
    expect(services["sales-bench"]!.command).toEqual(["dist/sales-bench.js"])
  })

  test("Prometheus scrapes the balancer and the three workers", () => {
    for (const name of ["sales-balancer", ...workers]) expect(targets).toContain(`${name}:9090`)
  })
})
