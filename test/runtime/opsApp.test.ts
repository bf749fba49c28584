import { describe, expect, test } from "bun:test"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Scope from "effect/Scope"
import { TestClock } from "effect/testing"
import { MetricsSource } from "../../src/runtime/MetricsSource.ts"
import { makeOpsApp, PROMETHEUS_CONTENT_TYPE } from "../../src/runtime/opsApp.ts"
import { checkTimeout, Readiness } from "../../src/runtime/Readiness.ts"

const METRICS_TEXT = "# TYPE qw_up gauge\nqw_up 1\n"

// The app is called through `app.request()`: no server, so these tests are about the routes only.
// `clock: "test"` builds the app under TestClock, so the checks it runs see virtual time.
const run = <A>(
  body: (request: (path: string) => Effect.Effect<Response>) => Effect.Effect<A, never, Readiness>,
  clock: "live" | "test" = "live"
) =>
  Effect.runPromise(
    Effect.gen(function*() {
      const app = yield* makeOpsApp
      return yield* body((path) => Effect.promise(async () => app.request(path)))
    }).pipe(
      Effect.provide(Layer.mergeAll(
        Readiness.layer,
        Layer.succeed(MetricsSource, MetricsSource.of({ render: Effect.succeed(METRICS_TEXT) })),
        clock === "test" ? TestClock.layer() : Layer.empty
      ))
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

  test("a check that hangs counts as not ready after the check timeout", () => {
    const started = performance.now()
    return run((request) =>
      Effect.gen(function*() {
        const readiness = yield* Readiness
        const running = yield* Deferred.make<void>()
        yield* readiness.set("broker", true)
        yield* readiness.register("database", Deferred.succeed(running, undefined).pipe(Effect.andThen(Effect.never)))
        const response = yield* Effect.forkChild(request("/readyz"))
        yield* Deferred.await(running)
        yield* TestClock.adjust(Duration.subtract(checkTimeout, Duration.millis(1)))
        // Still waiting just short of the timeout: the hanging check is what the answer waits for.
        expect(response.pollUnsafe()).toBeUndefined()
        yield* TestClock.adjust(Duration.millis(1))
        const answered = yield* Fiber.join(response)
        expect(answered.status).toBe(503)
        expect((yield* json(answered)).checks).toEqual({ broker: true, database: false })
      }), "test").then(() => {
      // Virtual time: without the timeout the answer never comes and the test times out.
      expect(performance.now() - started).toBeLessThan(1_000)
    })
  }, 5_000)

  test("a scoped check is reported while its scope is open and gone once it closes", () =>
    run((request) =>
      Effect.gen(function*() {
        yield* Readiness.use((r) => r.set("worker", true))
        yield* Effect.scoped(Effect.gen(function*() {
          yield* Readiness.check("database", Effect.fail("connection refused"))
          const during = yield* request("/readyz")
          expect(during.status).toBe(503)
          expect((yield* json(during)).checks).toEqual({ worker: true, database: false })
        }))
        const after = yield* request("/readyz")
        expect(after.status).toBe(200)
        expect((yield* json(after)).checks).toEqual({ worker: true })
      })
    ))

  test("closing a scope removes only its own registration of a name", () =>
    run((request) =>
      Effect.gen(function*() {
        const outer = yield* Scope.make()
        yield* Readiness.check("broker", Effect.succeed(false)).pipe(Scope.provide(outer))
        yield* Effect.scoped(Effect.gen(function*() {
          yield* Readiness.check("broker", Effect.succeed(true))
          expect((yield* json(yield* request("/readyz"))).checks).toEqual({ broker: true })
          // The first registration's scope closes while the second one holds the name.
          yield* Scope.close(outer, Exit.void)
          expect((yield* json(yield* request("/readyz"))).checks).toEqual({ broker: true })
        }))
        expect((yield* json(yield* request("/readyz"))).checks).toEqual({})
      })
    ))

  test("a check layer takes the services its check needs from where it is built", () =>
    run((request) =>
      Effect.gen(function*() {
        class Breaker extends Context.Service<Breaker, { readonly open: boolean }>()("test/Breaker") {}
        const check = Readiness.layerCheck("breaker", Breaker.useSync((breaker) => !breaker.open))
        const body = yield* Layer.build(check.pipe(Layer.provide(Layer.succeed(Breaker, Breaker.of({ open: true }))))).pipe(
          Effect.andThen(request("/readyz")),
          Effect.flatMap(json),
          Effect.scoped
        )
        expect(body.status).toBe("not ready")
        expect(body.checks).toEqual({ breaker: false })
        expect((yield* json(yield* request("/readyz"))).checks).toEqual({})
      })
    ))

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
