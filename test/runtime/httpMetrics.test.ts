/**
 * The request metrics middleware on a Hono app called without a server (`app.request`), so a
 * request can carry a method Bun's own server and fetch would never pass on.
 */
import { expect, test } from "bun:test"
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import { Hono } from "hono"
import { httpMetrics, requests } from "../../src/runtime/httpMetrics.ts"

const countOf = (method: string, route: string, status: string) =>
  Metric.value(Metric.withAttributes(requests, { http_request_method: method, http_route: route, http_response_status_code: status }))

test("labels are the route pattern and a known method; a made-up method is _OTHER, an unmatched path `unmatched`", async () => {
  await Effect.runPromise(Effect.gen(function*() {
    const services = yield* Effect.context<never>()
    const app = new Hono()
    app.use(httpMetrics(services))
    app.get("/orders/:id", (c) => c.text(c.req.param("id")))
    for (const id of ["a", "b"]) expect((yield* Effect.promise(async () => app.request(`/orders/${id}`))).status).toBe(200)
    expect((yield* Effect.promise(async () => app.request("/elsewhere"))).status).toBe(404)
    for (const method of ["PURGE", "PROPFIND"]) {
      expect((yield* Effect.promise(async () => app.request("/orders/a", { method }))).status).toBe(404)
    }
    expect((yield* countOf("GET", "/orders/:id", "200")).count).toBe(2)
    expect((yield* countOf("GET", "unmatched", "404")).count).toBe(1)
    expect((yield* countOf("_OTHER", "unmatched", "404")).count).toBe(2)
    expect((yield* countOf("PURGE", "unmatched", "404")).count).toBe(0)
  }).pipe(Effect.provideService(Metric.MetricRegistry, new Map())))
})
