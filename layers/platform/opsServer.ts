/**
 * The operations HTTP server: `makeOpsApp` (/healthz, /readyz, /metrics, and the routes mounted
 * through `OpsRoutes` when it is provided) served on
 * `METRICS_PORT` [9090] and `METRICS_HOST` [0.0.0.0]; the original outbox service's
 * `METRICS_PATH` [/metrics] moves the metrics, `METRICS_ENABLED` [true] false leaves them out.
 *
 * On release it first marks readiness as shutting down, so `/readyz` answers 503 while the
 * server is still up to say so, and only then stops the server. Both steps sit in one finalizer:
 * the order between finalizers of sibling layers is not something to rely on.
 */
import * as Config from "effect/Config"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Scope from "effect/Scope"
import { type ConfigError, configIssue, intInRange, load, oneOf } from "../../src/runtime/config.ts"
import type { MetricsSource } from "../../src/runtime/MetricsSource.ts"
import { makeOpsAppWith, type OpsAppOptions } from "../../src/runtime/opsApp.ts"
import { Readiness } from "../../src/runtime/Readiness.ts"
import { type HttpServerError, serve } from "./httpServer.ts"

export class OpsServer extends Context.Service<OpsServer, {
  readonly port: number
  readonly url: string
}>()("queueworks/OpsServer") {}

export interface OpsServerOptions extends OpsAppOptions {
  /** 0 binds an ephemeral port (tests); the bound one is in `OpsServer.port`. */
  readonly port: number
  readonly hostname?: string | undefined
}

export const layerOptions = (
  options: OpsServerOptions
): Layer.Layer<OpsServer, HttpServerError, Readiness | MetricsSource> =>
  Layer.effect(
    OpsServer,
    Effect.gen(function*() {
      const readiness = yield* Readiness
      const app = yield* makeOpsAppWith(options)
      // A child scope owns the server so the one finalizer below can close it at the right moment;
      // being a child, it is still closed with the layer if anything fails before that finalizer exists.
      const serverScope = yield* Scope.fork(yield* Scope.Scope)
      const bound = yield* serve(app.fetch, options).pipe(Scope.provide(serverScope))
      yield* Effect.addFinalizer((exit) => readiness.shutdown.pipe(Effect.andThen(Scope.close(serverScope, exit))))
      // `url` is the loopback form of a wildcard bind; the bind itself goes in the annotation.
      yield* Effect.log(`ops server listening on ${bound.url}`).pipe(
        Effect.annotateLogs({ bind: `${options.hostname ?? "0.0.0.0"}:${bound.port}` })
      )
      return OpsServer.of(bound)
    })
  )

export const OpsServerConfig = Config.all({
  port: intInRange("METRICS_PORT", 0, 65535, "a port number from 0 to 65535").pipe(Config.withDefault(9090)),
  hostname: Config.String("METRICS_HOST").pipe(Config.withDefault("0.0.0.0")),
  metricsPath: Config.String("METRICS_PATH").pipe(
    Config.mapEffect((path) =>
      /^\/[A-Za-z0-9._~\-/]*$/.test(path) && path !== "/healthz" && path !== "/readyz"
        ? Effect.succeed(path)
        : Effect.fail(configIssue("METRICS_PATH", "a path such as /metrics, other than /healthz and /readyz", `got "${path}"`))
    ),
    Config.withDefault("/metrics")
  ),
  metricsEnabled: oneOf("METRICS_ENABLED", ["true", "false", "1", "0"], { caseInsensitive: true }).pipe(
    Config.map((word) => word === "true" || word === "1"),
    Config.withDefault(true)
  )
})

export const layer: Layer.Layer<OpsServer, ConfigError | HttpServerError, Readiness | MetricsSource> = Layer.unwrap(
  Effect.map(load(OpsServerConfig), layerOptions)
)
