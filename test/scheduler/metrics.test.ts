/**
 * The scheduler keeps its per-job series itself (metrics.ts) and registers them in the metric
 * registry: an exporter must read exactly what Effect's own histogram and counter of the same
 * name, description, boundaries and attributes would hold after the same updates.
 */
import { expect, test } from "bun:test"
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import * as Metrics from "../../src/scheduler/metrics.ts"

const snapshot = (effect: Effect.Effect<void>) =>
  Effect.runSync(effect.pipe(Effect.andThen(Metric.snapshot), Effect.provideService(Metric.MetricRegistry, new Map())))

const byKey = (all: ReadonlyArray<Metric.Metric.Snapshot>) =>
  Object.fromEntries(all.map((m) => [`${m.id}${JSON.stringify(m.attributes)}`, { type: m.type, description: m.description, state: m.state }]))

test("per-job series read as Effect's histograms and counters after the same updates", () => {
  const values = [0, 0.0004, 0.0005, 0.0007, 0.003, 0.25, 1, 1e6]
  const ours = snapshot(Effect.gen(function*() {
    for (const v of values) {
      yield* Metrics.recordLateness("a", v)
      yield* Metrics.recordRun("a", v > 0.5 ? "failed" : "succeeded", v)
    }
    yield* Metrics.recordLateness("b", 0.002)
    yield* Metrics.recordSkip("a", "overlap")
    yield* Metrics.recordSkip("a", "missed", 41)
    yield* Metrics.recordSkip("a", "missed", -1)
  }))
  const lateness = { description: "Start minus scheduled time of each scheduled run", boundaries: Metric.exponentialBoundaries({ start: 0.0005, factor: 2, count: 20 }) }
  const duration = { description: "Start to end of each job attempt", boundaries: Metric.exponentialBoundaries({ start: 0.001, factor: 2, count: 22 }) }
  const runs = (outcome: string) =>
    Metric.counter("scheduler_job_runs", { description: "Finished job attempts, by outcome", incremental: true, attributes: { job: "a", outcome } })
  const skips = (reason: string) =>
    Metric.counter("scheduler_job_skips", { description: "Job occurrences not run, by reason", incremental: true, attributes: { job: "a", reason } })
  const effects = snapshot(Effect.gen(function*() {
    for (const v of values) {
      yield* Metric.update(Metric.histogram("scheduler_job_lateness_seconds", { ...lateness, attributes: { job: "a" } }), v)
      yield* Metric.update(runs(v > 0.5 ? "failed" : "succeeded"), 1)
      yield* Metric.update(Metric.histogram("scheduler_job_duration_seconds", { ...duration, attributes: { job: "a" } }), v)
    }
    yield* Metric.update(Metric.histogram("scheduler_job_lateness_seconds", { ...lateness, attributes: { job: "b" } }), 0.002)
    yield* Metric.update(skips("overlap"), 1)
    yield* Metric.update(skips("missed"), 41)
    yield* Metric.update(skips("missed"), -1)
  }))
  expect(Object.keys(byKey(ours)).length).toBe(7)
  expect(byKey(ours)).toEqual(byKey(effects))
})

test("Effect's own metric of the same name and attributes reads the scheduler's series instead of starting another", () => {
  const registry = new Map()
  const read = Effect.runSync(Effect.gen(function*() {
    yield* Metrics.registerJobs(["a", "b"])
    yield* Metrics.recordRun("a", "failed", 0.25)
    yield* Metrics.recordRun("a", "failed", 2)
    yield* Metrics.recordLateness("a", 0.003)
    const before = registry.size
    const runs = yield* Metric.value(
      Metric.counter("scheduler_job_runs", { description: "Finished job attempts, by outcome", incremental: true, attributes: { outcome: "failed", job: "a" } })
    )
    const lateness = yield* Metric.value(Metric.histogram("scheduler_job_lateness_seconds", {
      description: "Start minus scheduled time of each scheduled run",
      boundaries: Metric.exponentialBoundaries({ start: 0.0005, factor: 2, count: 20 }),
      attributes: { job: "a" }
    }))
    const idle = yield* Metric.value(Metric.histogram("scheduler_job_duration_seconds", {
      description: "Start to end of each job attempt",
      boundaries: Metric.exponentialBoundaries({ start: 0.001, factor: 2, count: 22 }),
      attributes: { job: "b" }
    }))
    return { before, after: registry.size, runs: runs.count, lateness: lateness.count, latenessMax: lateness.max, idle: idle.count }
  }).pipe(Effect.provideService(Metric.MetricRegistry, registry)))
  // a: lateness, duration, runs{failed}; b: lateness, duration (registered, empty).
  expect(read).toEqual({ before: 5, after: 5, runs: 2, lateness: 1, latenessMax: 0.003, idle: 0 })
})
