/**
 * The operations HTTP app: liveness, readiness and metrics, as a plain Hono app, and the routes
 * the program's parts mount on it through `OpsRoutes` when that registry is provided.
 *
 * Only `Request`/`Response`: any runtime serves it (`layers/platform/httpServer.ts` does under
 * Bun and Deno), and tests call `app.request()` without a server.
 */
import * as Effect from "effect/Effect"
import { Hono } from "hono"
import { MetricsSource } from "./MetricsSource.ts"
import { OpsRoutes } from "./OpsRoutes.ts"
import { Readiness } from "./Readiness.ts"

export const PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

export interface OpsAppOptions {
  /** Where the metrics are served; default `/metrics` (the original's `METRICS_PATH`). */
  readonly metricsPath?: string
  /** False leaves the metrics route out (the original's `METRICS_ENABLED`); default true. */
  readonly metricsEnabled?: boolean
}

export const makeOpsAppWith = (options: OpsAppOptions) => Effect.gen(function*() {
  const readiness = yield* Readiness
  const metrics = yield* MetricsSource
  const extra = yield* Effect.serviceOption(OpsRoutes)
  const services = yield* Effect.context<never>()
  const run = <A>(effect: Effect.Effect<A>) => Effect.runPromiseWith(services)(effect)

  const app = new Hono()
    .get("/healthz", (c) => c.json({ status: "ok" }))
    .get("/readyz", async (c) => {
      const report = await run(readiness.report)
      return c.json({ status: report.ready ? "ready" : "not ready", ...report }, report.ready ? 200 : 503)
    })
  if (options.metricsEnabled !== false) {
    app.get(options.metricsPath ?? "/metrics", async (c) =>
      c.body(await run(metrics.render), 200, { "content-type": PROMETHEUS_CONTENT_TYPE }))
  }
  // Last, so the built-in routes above always win over a mounted one.
  if (extra._tag === "Some") app.all("*", (c) => extra.value.fetch(c.req.raw))
  return app
})

export const makeOpsApp = makeOpsAppWith({})
