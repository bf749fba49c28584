/**
 * Telemetry: Effect metrics as Prometheus text, Effect spans to an OTLP/HTTP collector.
 *
 * - Metrics, always: `MetricsSource.prometheus` renders Effect's metric registry on each scrape,
 *   and the ops server serves it on `/metrics`, with `target_info{service_name}`.
 * - Traces, only with an OTLP endpoint: `./tracing.ts`, loaded then and only then, sends Effect
 *   spans through the OpenTelemetry tracer to `<endpoint>/v1/traces`. Without an endpoint
 *   Effect's native tracer stays: spans still exist, so `traceparent` headers and log correlation
 *   work, but they cost a couple of µs and go nowhere (which is why `consumeBatches` skips its
 *   per-message spans under that tracer).
 *
 * Closing the layer flushes pending spans and shuts the provider down, bounded by
 * `shutdownTimeout` [5 seconds], so a dead collector cannot hold up process exit.
 *
 * `layerConfig` reads `OTEL_EXPORTER_OTLP_ENDPOINT` (optional, http or https URL) and
 * `OTEL_SERVICE_NAME` (replaces the program's name).
 */
import * as Config from "effect/Config"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { type ConfigError, toConfigError, url } from "../../src/runtime/config.ts"
import { MetricsSource } from "../../src/runtime/MetricsSource.ts"

export interface TelemetryOptions {
  readonly serviceName: string
  readonly serviceVersion?: string | undefined
  /** Collector base URL (`http://jaeger:4318`); `/v1/traces` is appended unless already there. */
  readonly otlpEndpoint?: string | undefined
  /** Bound on flushing and shutting down at layer close; default 5 seconds. */
  readonly shutdownTimeout?: Duration.Input | undefined
}

export const layer = (options: TelemetryOptions): Layer.Layer<MetricsSource> => {
  const metrics = MetricsSource.prometheus({
    service_name: options.serviceName,
    ...(options.serviceVersion === undefined ? {} : { service_version: options.serviceVersion })
  })
  const endpoint = options.otlpEndpoint
  if (endpoint === undefined) return metrics
  // The tracing layer also carries Effect's Tracer, so it is merged into the output rather than
  // provided underneath (which would hide it from the program).
  const tracing = Layer.unwrap(Effect.map(
    Effect.promise(() => import("./tracing.ts")),
    (tracing) =>
      tracing.layer({
        serviceName: options.serviceName,
        serviceVersion: options.serviceVersion,
        tracesUrl: tracesUrl(endpoint),
        shutdownTimeout: options.shutdownTimeout ?? Duration.seconds(5)
      })
  ))
  return Layer.merge(metrics, tracing)
}

const OTLP_ENDPOINT = "OTEL_EXPORTER_OTLP_ENDPOINT"
const SERVICE_NAME = "OTEL_SERVICE_NAME"

// Empty counts as unset, as OpenTelemetry reads its variables (compose files often write `X=`).
const optionalText = (name: string) =>
  Config.String(name).pipe(Config.withDefault(""), Config.map((text) => text.trim()))

/** The telemetry variables; a set endpoint must be an http(s) URL. */
export const TelemetryConfig: Effect.Effect<
  { readonly otlpEndpoint: string | undefined; readonly serviceName: string | undefined },
  ConfigError
> = Effect.gen(function*() {
  const endpoint = yield* optionalText(OTLP_ENDPOINT)
  const serviceName = yield* optionalText(SERVICE_NAME)
  return {
    otlpEndpoint: endpoint === "" ? undefined : yield* url(OTLP_ENDPOINT, ["http", "https"]),
    serviceName: serviceName === "" ? undefined : serviceName
  }
}).pipe(Effect.mapError(toConfigError))

export const layerConfig = (
  serviceName: string,
  options: { readonly serviceVersion?: string | undefined } = {}
): Layer.Layer<MetricsSource, ConfigError> =>
  Layer.unwrap(
    Effect.map(TelemetryConfig, (config) =>
      layer({
        serviceName: config.serviceName ?? serviceName,
        serviceVersion: options.serviceVersion,
        otlpEndpoint: config.otlpEndpoint
      }))
  )

/** The OTLP/HTTP traces URL for a collector base URL, as the OTel spec builds it from OTEL_EXPORTER_OTLP_ENDPOINT. */
export const tracesUrl = (endpoint: string): string => {
  const base = endpoint.replace(/\/+$/, "")
  return base.endsWith("/v1/traces") ? base : `${base}/v1/traces`
}
