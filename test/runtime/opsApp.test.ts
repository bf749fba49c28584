import { describe, expect, test } from "bun:test"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { MetricsSource } from "../../src/runtime/MetricsSource.ts"
import { makeOpsApp, PROMETHEUS_CONTENT_TYPE } from "../../src/runtime/opsApp.ts"
import { Readiness } from "../../src/runtime/Readiness.ts"

const METRICS_TEXT = "# TYPE qw_up gauge\nqw_up 1\n"

// The app is called through `app.request()`: no server, so these tests are about the routes only.
const run = <A>(body: (request: (path: string) => Effect.Effect<Response>) => Effect.Effect<A, never, Readiness>) =>
  Effect.runPromise(
    Effect.gen(function*() {
      const app = yield* makeOpsApp
      return yield* body((path) => Effect.promise(async () => app.request(path)))
    }).pipe(
      Effect.provide(Layer.mergeAll(Readiness.layer, Layer.succeed(MetricsSource, MetricsSource.of({ render: Effect.succeed(METRICS_TEXT) }))))
    )
  )

const json = (response: Response) => Effect.promise(() => response.json() as Promise<Record<string, unknown>>)

describe("ops app", () => {
  test("/healthz answers 200 whatever readiness says", () =>
    run((request) =>
      Effect.gen(function*() {
        yield* Readiness.use((r) => r.set("broker", false))
        const response = yield* request("/healthz")
        expect(response.status).toBe(200)
        expect(yield* json(response)).toEqual({ status: "ok" })
      })
    ))

  test("/readyz answers 200 with every check named when all pass", () =>
    run((request) =>
      Effect.gen(function*() {
        const readiness = yield* Readiness
        yield* readiness.register("broker", Effect.succeed(true))
        yield* readiness.set("database", true)
        const response = yield* request("/readyz")
        expect(response.status).toBe(200)
        expect(yield* json(response)).toEqual({
          status: "ready",
          ready: true,
          checks: { broker: true, database: true },
          shuttingDown: false
        })
      })
    ))

  test("/readyz answers 503 naming the failing check", () =>
    run((request) =>
      Effect.gen(function*() {
        const readiness = yield* Readiness
        yield* readiness.register("broker", Effect.succeed(true))
        yield* readiness.register("database", Effect.succeed(false))
        const response = yield* request("/readyz")
        expect(response.status).toBe(503)
        const body = yield* json(response)
        expect(body.status).toBe("not ready")
        expect(body.checks).toEqual({ broker: true, database: false })
      })
    ))

  test("/readyz follows a check that changes: live checks run on every request", () =>
    run((request) =>
      Effect.gen(function*() {
        let up = true
        yield* Readiness.use((r) => r.register("broker", Effect.sync(() => up)))
        expect((yield* request("/readyz")).status).toBe(200)
        up = false
        expect((yield* request("/readyz")).status).toBe(503)
      })
    ))

  test("/readyz answers 503 once shutdown was called, even with every check passing", () =>
    run((request) =>
      Effect.gen(function*() {
        const readiness = yield* Readiness
        yield* readiness.set("broker", true)
        expect((yield* request("/readyz")).status).toBe(200)
        yield* readiness.shutdown
        const response = yield* request("/readyz")
        expect(response.status).toBe(503)
        const body = yield* json(response)
        expect(body.shuttingDown).toBe(true)
        expect(body.checks).toEqual({ broker: true })
      })
    ))

  test("a check that defects counts as not ready, and does not break the endpoint", () =>
    run((request) =>
      Effect.gen(function*() {
        const readiness = yield* Readiness
        yield* readiness.set("broker", true)
        yield* readiness.register("database", Effect.die(new Error("connection pool exploded")))
        const response = yield* request("/readyz")
        expect(response.status).toBe(503)
        expect((yield* json(response)).checks).toEqual({ broker: true, database: false })
      })
    ))

  test("a check that hangs counts as not ready after the check timeout", () =>
    run((request) =>
      Effect.gen(function*() {
        const readiness = yield* Readiness
        yield* readiness.set("broker", true)
        yield* readiness.register("database", Effect.never)
        const started = performance.now()
        const response = yield* request("/readyz")
        const elapsed = performance.now() - started
        expect(response.status).toBe(503)
        expect((yield* json(response)).checks).toEqual({ broker: true, database: false })
        // Bounded by the per-check timeout (2 s), not by the hanging check.
        expect(elapsed).toBeLessThan(4_000)
      })
    ), 10_000)

  test("/metrics serves the MetricsSource text as Prometheus exposition", () =>
    run((request) =>
      Effect.gen(function*() {
        const response = yield* request("/metrics")
        expect(response.status).toBe(200)
        expect(response.headers.get("content-type")).toBe(PROMETHEUS_CONTENT_TYPE)
        expect(yield* Effect.promise(() => response.text())).toBe(METRICS_TEXT)
      })
    ))
})
