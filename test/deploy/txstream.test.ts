/**
 * The deployment of the orders system (compose.yaml, deploy/): its services, what Prometheus
 * scrapes, and a Grafana dashboard whose queries name only series the outbox relay really
 * exports — read from the relay's own /metrics text after it has published, retried, failed
 * and tripped its breaker, so a renamed metric or a missing `_total`/`_bucket` fails here
 * rather than as an empty panel.
 */
import { describe, expect, test } from "bun:test"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as Metric from "effect/Metric"
import { readdirSync, readFileSync } from "node:fs"
import { join } from "node:path"
import * as PgliteSql from "../../layers/pglite/sql.ts"
import * as Otel from "../../layers/telemetry/otel.ts"
import { makeRelay } from "../../src/outbox/relay.ts"
import { MetricsSource } from "../../src/runtime/MetricsSource.ts"
import { config, events, insertEvent, migrated, recorder, recordingPublisher, until } from "../outbox/support.ts"
import { parsePrometheus } from "../support/prometheus.ts"

const root = join(import.meta.dir, "..", "..")
const dashboards = join(root, "deploy", "grafana", "dashboards")

/** The metric names of SPEC §2, as Prometheus shows them. */
const specNames = [
  "txstream_events_processed_total",
  "txstream_events_published_total",
  "txstream_events_failed_total",
  "txstream_events_retried_total",
  "txstream_circuit_breaker_trips_total",
  "txstream_event_processing_duration_seconds",
  "txstream_event_publishing_duration_seconds",
  "txstream_retry_delay_duration_seconds",
  "txstream_worker_pool_size",
  "txstream_events_in_queue",
  "txstream_circuit_breaker_state",
  "txstream_active_workers"
]

interface Panel {
  readonly title?: string
  readonly targets?: ReadonlyArray<{ readonly expr?: string }>
  readonly panels?: ReadonlyArray<Panel>
}

const exprs = (panels: ReadonlyArray<Panel>): Array<string> =>
  panels.flatMap((panel) => [...(panel.targets ?? []).flatMap((t) => t.expr === undefined ? [] : [t.expr]), ...exprs(panel.panels ?? [])])

const txstreamNames = (expressions: ReadonlyArray<string>) => [...new Set(expressions.flatMap((e) => e.match(/\btxstream_[a-z0-9_]+/g) ?? []))].sort()

/** The relay's /metrics page after it published, retried, failed an event and tripped its breaker. */
const relayMetricsPage = () =>
  Effect.runPromise(
    Effect.gen(function*() {
      yield* migrated
      const r = recorder()
      r.failing.add("poison")
      yield* insertEvent("poison")
      for (let i = 0; i < 5; i++) yield* insertEvent(`order-${i}`)
      const relay = yield* makeRelay(config({
        poolSize: 2,
        batchSize: 1,
        maxRetries: 1,
        baseDelay: Duration.millis(1),
        maxDelay: Duration.millis(2),
        failureThreshold: 1,
        successThreshold: 1,
        resetTimeout: Duration.millis(20),
        pollInterval: Duration.millis(50),
        queueGaugeInterval: Duration.millis(20)
      }))
      const fiber = yield* Effect.forkChild(relay.run.pipe(Effect.provide(recordingPublisher(r))))
      yield* until("every event published or failed", Effect.map(events, (rows) => rows.every((row) => row.status !== "pending")), 60_000)
      const page = parsePrometheus(yield* MetricsSource.use((m) => m.render))
      yield* Fiber.interrupt(fiber)
      return page
    }).pipe(
      Effect.provide(Layer.mergeAll(PgliteSql.layer(), Otel.layer({ serviceName: "outbox-relay" }))),
      Effect.provide(Logger.layer([])),
      // A registry of its own: other suites of the same run update the same metrics.
      Effect.provideService(Metric.MetricRegistry, new Map())
    )
  )

describe("TX Stream dashboard", () => {
  const dashboard = JSON.parse(readFileSync(join(dashboards, "txstream.json"), "utf8")) as { uid: string; panels: Array<Panel> }
  const used = txstreamNames(exprs(dashboard.panels))

  test("the relay exports the twelve metrics of the SPEC, and the dashboard's queries name only series it exports and use all twelve", async () => {
    const page = await relayMetricsPage()
    const families = Object.keys(page.types).filter((name) => name.startsWith("txstream_")).sort()
    expect(families).toEqual([...specNames].sort())
    // What the run did: each outcome happened, so each series is on the page with a value.
    const value = (name: string) => page.samples.filter((s) => s.name === name).reduce((sum, s) => sum + s.value, 0)
    expect(value("txstream_events_published_total")).toBe(5)
    expect(value("txstream_events_failed_total")).toBe(1)
    expect(value("txstream_events_retried_total")).toBe(1)
    expect(value("txstream_circuit_breaker_trips_total")).toBeGreaterThanOrEqual(1)

    const exported = new Set(page.samples.map((s) => s.name))
    expect(used.filter((name) => !exported.has(name))).toEqual([])
    const unused = families.filter((family) => !used.some((name) => name === family || name === `${family}_bucket`))
    expect(unused).toEqual([])
  }, 120_000)

  test("histograms are queried through their buckets, counters through their totals", () => {
    for (const name of used) {
      if (name.includes("duration_seconds")) expect(name).toEndWith("_bucket")
    }
    const counters = used.filter((name) => /_(processed|published|failed|retried|trips)/.test(name))
    expect(counters.length).toBeGreaterThan(0)
    for (const name of counters) expect(name).toEndWith("_total")
  })

  test("every provisioned dashboard is valid JSON with a uid of its own", () => {
    const files = readdirSync(dashboards).filter((f) => f.endsWith(".json"))
    expect(files).toContain("txstream.json")
    const uids = files.map((file) => (JSON.parse(readFileSync(join(dashboards, file), "utf8")) as { uid: string }).uid)
    expect(new Set(uids).size).toBe(uids.length)
  })
})

describe("TX Stream services in compose.yaml", () => {
  interface Service {
    readonly command?: ReadonlyArray<string>
    readonly environment?: Record<string, string>
    readonly depends_on?: Record<string, { condition: string }>
    readonly healthcheck?: unknown
    readonly ports?: ReadonlyArray<string>
    readonly build?: unknown
  }
  const compose = Bun.YAML.parse(readFileSync(join(root, "compose.yaml"), "utf8")) as { services: Record<string, Service> }
  const services = compose.services
  const prometheus = Bun.YAML.parse(readFileSync(join(root, "deploy", "prometheus", "prometheus.yml"), "utf8")) as {
    scrape_configs: Array<{ static_configs: Array<{ targets: Array<string> }> }>
  }
  const targets = prometheus.scrape_configs.flatMap((job) => job.static_configs.flatMap((c) => c.targets))
  const txstream = {
    "orders-api": "dist/orders-api.js",
    "outbox-relay-1": "dist/outbox-relay.js",
    "outbox-relay-2": "dist/outbox-relay.js",
    "order-events-consumer": "dist/order-events-consumer.js"
  }

  test("the API, two relays and the consumer run their bundles on PostgreSQL and Kafka, once both are healthy", () => {
    for (const [name, bundle] of Object.entries(txstream)) {
      const service = services[name]!
      expect(service.build).toBe(".")
      expect(service.command).toEqual([bundle])
      expect(service.environment?.["BROKER"]).toBe("kafka")
      expect(service.environment?.["KAFKA_BROKERS"]).toBe("kafka:9092")
      expect(service.environment?.["DATABASE_URL"]).toStartWith("postgres://")
      expect(service.depends_on).toEqual({ postgres: { condition: "service_healthy" }, kafka: { condition: "service_healthy" } })
    }
    expect(services["kafka"]!.healthcheck).toBeDefined()
    expect(services["postgres"]!.healthcheck).toBeDefined()
    expect(services["orders-api"]!.ports).toContain(`8080:${services["orders-api"]!.environment!["SERVER_PORT"]}`)
  })

  test("Prometheus scrapes every program service on its METRICS_PORT, and scrapes nothing else", () => {
    const programs = Object.entries(services).filter(([, s]) => (s.command ?? []).some((c) => c.startsWith("dist/")))
    const scraped = programs
      // One-shot tools serve no /metrics.
      .filter(([name]) => !["event-generator", "sales-seed", "sales-bench", "session-sender"].includes(name))
      .map(([name, s]) => `${name}:${s.environment?.["METRICS_PORT"]}`)
    expect([...targets].sort()).toEqual(scraped.sort())
    for (const name of Object.keys(txstream)) expect(targets).toContain(`${name}:9090`)
  })
})
