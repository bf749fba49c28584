/**
 * Request metrics for a Hono app, under the OpenTelemetry HTTP semantic conventions' names:
 * `http_server_requests_total{http_request_method, http_route, http_response_status_code}` and
 * `http_server_request_duration_seconds{http_request_method, http_route}`.
 *
 * The route is Hono's matched pattern (`/orders/:id`), never the path, so ids cannot grow the
 * series without bound; a request no route matched is counted under `unmatched`, and a method
 * outside HTTP's usual ones under `_OTHER` (as the conventions say), for the same reason. Every answer
 * is counted, the ones a handler returns before any Effect runs (415, 413) included, which is
 * why this is middleware around the app and not a wrapper of the handlers' effects.
 */
import * as Clock from "effect/Clock"
import type * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import type { MiddlewareHandler } from "hono"

export const requests = Metric.counter("http_server_requests", {
  description: "HTTP requests answered, by method, route and status",
  incremental: true
})
const duration = Metric.histogram("http_server_request_duration_seconds", {
  description: "From the request's arrival to its answer, by method and route",
  boundaries: Metric.exponentialBoundaries({ start: 0.0005, factor: 2, count: 16 })
})

const knownMethods = new Set(["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"])

/** The middleware; `services` are the context the metrics are recorded in (their registry). */
export const httpMetrics = (services: Context.Context<never>): MiddlewareHandler => {
  const now = () => Effect.runSyncWith(services)(Clock.currentTimeMillis)
  // One tagged pair per method, route and status, made once: tagging builds the series key.
  const series = new Map<string, { readonly count: typeof requests; readonly seconds: typeof duration }>()
  const seriesOf = (method: string, route: string, status: string) => {
    const key = `${method} ${route} ${status}`
    let found = series.get(key)
    if (found === undefined) {
      series.set(key, found = {
        count: Metric.withAttributes(requests, { http_request_method: method, http_route: route, http_response_status_code: status }),
        seconds: Metric.withAttributes(duration, { http_request_method: method, http_route: route })
      })
    }
    return found
  }
  return async (c, next) => {
    const started = now()
    try {
      await next()
    } finally {
      const route = c.req.routePath === "/*" || c.req.routePath === "*" ? "unmatched" : c.req.routePath
      const method = knownMethods.has(c.req.method) ? c.req.method : "_OTHER"
      const { count, seconds } = seriesOf(method, route, String(c.res.status))
      Effect.runSyncWith(services)(Effect.all([
        Metric.update(count, 1),
        Metric.update(seconds, (now() - started) / 1000)
      ], { discard: true }))
    }
  }
}
