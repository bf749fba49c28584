import { describe, expect, test } from "bun:test"
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import { renderPrometheus } from "../../src/runtime/prometheus.ts"
import { parsePrometheus, sample } from "../support/prometheus.ts"

// Each test renders its own registry, so nothing another test recorded shows up.
const render = (record: Effect.Effect<void>, target: Record<string, string> = {}) =>
  Effect.runSync(
    record.pipe(
      Effect.andThen(Metric.snapshot),
      Effect.map((snapshots) => renderPrometheus(snapshots, target)),
      Effect.provideService(Metric.MetricRegistry, new Map())
    )
  )

describe("Prometheus rendering of Effect metrics", () => {
  test("counters: incremental ones are counters named _total, others gauges; series share one family", () => {
    const text = render(Effect.gen(function*() {
      const jobs = Metric.counter("jobs", { description: "jobs done", incremental: true })
      yield* Metric.update(Metric.withAttributes(jobs, { queue: "a" }), 2)
      yield* Metric.update(Metric.withAttributes(jobs, { queue: "b" }), 3)
      yield* Metric.update(Metric.counter("balance"), 5)
      yield* Metric.update(Metric.counter("balance"), -7)
      yield* Metric.update(Metric.counter("sent_total", { incremental: true }), 1)
    }))
    const page = parsePrometheus(text)
    expect(page.types).toEqual({ jobs_total: "counter", balance: "gauge", sent_total: "counter" })
    expect(page.help["jobs_total"]).toBe("jobs done")
    expect(sample(page, "jobs_total", { queue: "a" }).value).toBe(2)
    expect(sample(page, "jobs_total", { queue: "b" }).value).toBe(3)
    expect(sample(page, "balance").value).toBe(-2)
    expect(sample(page, "sent_total").value).toBe(1)
    // One TYPE line per family, however many series it has.
    expect(text.match(/# TYPE jobs_total/g)).toHaveLength(1)
  })

  test("histograms: cumulative buckets, +Inf equal to the count even above the last boundary, sum and count", () => {
    const page = parsePrometheus(render(Effect.gen(function*() {
      const latency = Metric.withAttributes(Metric.histogram("latency_seconds", { boundaries: [0.01, 0.1] }), { op: "x" })
      for (const value of [0.005, 0.05, 0.07, 3]) yield* Metric.update(latency, value)
    })))
    expect(page.types["latency_seconds"]).toBe("histogram")
    expect(sample(page, "latency_seconds_bucket", { op: "x", le: "0.01" }).value).toBe(1)
    expect(sample(page, "latency_seconds_bucket", { op: "x", le: "0.1" }).value).toBe(3)
    expect(sample(page, "latency_seconds_bucket", { op: "x", le: "+Inf" }).value).toBe(4)
    expect(sample(page, "latency_seconds_count", { op: "x" }).value).toBe(4)
    expect(sample(page, "latency_seconds_sum", { op: "x" }).value).toBeCloseTo(3.125, 10)
  })

  test("gauges, frequencies (a counter per key) and summaries (quantiles, sum, count)", () => {
    const page = parsePrometheus(render(Effect.gen(function*() {
      yield* Metric.update(Metric.gauge("in_flight"), 7)
      const status = Metric.frequency("http_status")
      for (const code of ["200", "200", "503"]) yield* Metric.update(status, code)
      const sizes = Metric.summary("body_bytes", { maxAge: "1 minute", maxSize: 100, quantiles: [0.5, 0.99] })
      for (const size of [10, 20, 30]) yield* Metric.update(sizes, size)
    })))
    expect(page.types).toEqual({ in_flight: "gauge", http_status_total: "counter", body_bytes: "summary" })
    expect(sample(page, "in_flight").value).toBe(7)
    expect(sample(page, "http_status_total", { key: "200" }).value).toBe(2)
    expect(sample(page, "http_status_total", { key: "503" }).value).toBe(1)
    expect(sample(page, "body_bytes", { quantile: "0.5" }).value).toBe(20)
    expect(sample(page, "body_bytes_count").value).toBe(3)
    expect(sample(page, "body_bytes_sum").value).toBe(60)
  })

  test("names and labels are made valid and label values escaped; target_info names the program", () => {
    const page = parsePrometheus(render(
      Effect.gen(function*() {
        const odd = Metric.counter("orders.created-per/s", { description: "line one\nline \\two", incremental: true })
        yield* Metric.update(Metric.withAttributes(odd, { "http.route": "say \"hi\"\\\n" }), 1)
      }),
      { service_name: "orders-api", "service.version": "1.2.3" }
    ))
    expect(page.help["orders_created_per_s_total"]).toBe("line one\nline \\two")
    expect(sample(page, "orders_created_per_s_total", { http_route: "say \"hi\"\\\n" }).value).toBe(1)
    expect(sample(page, "target_info").labels).toEqual({ service_name: "orders-api", service_version: "1.2.3" })
  })

  test("a family name claimed by two metric types keeps the first and stays a valid exposition", () => {
    const text = render(Effect.gen(function*() {
      yield* Metric.update(Metric.gauge("clash"), 1)
      yield* Metric.update(Metric.histogram("clash", { boundaries: [1] }), 9)
    }))
    const page = parsePrometheus(text)
    expect(page.types["clash"]).toBe("gauge")
    expect(sample(page, "clash").value).toBe(1)
    expect(page.samples.filter((s) => s.name.startsWith("clash_"))).toEqual([])
  })

  test("no metrics and no target render an empty page", () => {
    expect(render(Effect.void)).toBe("")
  })
})
