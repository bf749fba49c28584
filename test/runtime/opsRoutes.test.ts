/**
 * OpsRoutes: routes mounted after the ops app was built are served by it for as long as their
 * scope lives; the built-in routes win over a mounted one of the same path.
 */
import { describe, expect, test } from "bun:test"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Scope from "effect/Scope"
import { Hono } from "hono"
import { MetricsSource } from "../../src/runtime/MetricsSource.ts"
import { makeOpsApp } from "../../src/runtime/opsApp.ts"
import { OpsRoutes } from "../../src/runtime/OpsRoutes.ts"
import { Readiness } from "../../src/runtime/Readiness.ts"

const services = Layer.mergeAll(
  Readiness.layer,
  OpsRoutes.layer,
  Layer.succeed(MetricsSource, MetricsSource.of({ render: Effect.succeed("") }))
)

describe("OpsRoutes", () => {
  test("a route mounted after the app was built is served until its scope closes", () =>
    Effect.runPromise(Effect.gen(function*() {
      const app = yield* makeOpsApp
      const request = (path: string, init?: RequestInit) => Effect.promise(async () => app.request(path, init))
      expect((yield* request("/hello")).status).toBe(404)

      const scope = yield* Scope.make()
      const routes = new Hono()
        .get("/hello", (c) => c.text("hi"))
        .post("/hello/:name", (c) => c.json({ name: c.req.param("name") }))
        .get("/healthz", (c) => c.text("shadowed"))
      yield* OpsRoutes.use((r) => r.mount("greeter", routes)).pipe(Scope.provide(scope))

      const hello = yield* request("/hello")
      expect(hello.status).toBe(200)
      expect(yield* Effect.promise(() => hello.text())).toBe("hi")
      const named = yield* request("/hello/ada", { method: "POST" })
      expect(yield* Effect.promise(() => named.json())).toEqual({ name: "ada" })
      // The ops server's own route comes first.
      expect(yield* Effect.promise(async () => (await app.request("/healthz")).json())).toEqual({ status: "ok" })

      yield* Scope.close(scope, Exit.void)
      expect((yield* request("/hello")).status).toBe(404)
    }).pipe(Effect.provide(services))))

  test("two parts mount routes side by side", () =>
    Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const app = yield* makeOpsApp
      const registry = yield* OpsRoutes
      yield* registry.mount("a", new Hono().get("/a", (c) => c.text("a")))
      yield* registry.mount("b", new Hono().get("/b", (c) => c.text("b")))
      expect(yield* Effect.promise(async () => (await app.request("/a")).text())).toBe("a")
      expect(yield* Effect.promise(async () => (await app.request("/b")).text())).toBe("b")
    })).pipe(Effect.provide(services))))

  test("without the registry the app serves its built-in routes only", () =>
    Effect.runPromise(Effect.gen(function*() {
      const app = yield* makeOpsApp
      expect((yield* Effect.promise(async () => app.request("/anything"))).status).toBe(404)
      expect((yield* Effect.promise(async () => app.request("/healthz"))).status).toBe(200)
    }).pipe(Effect.provide(Layer.mergeAll(
      Readiness.layer,
      Layer.succeed(MetricsSource, MetricsSource.of({ render: Effect.succeed("") }))
    )))))
})
