/**
 * Telemetry: Effect metrics through the OpenTelemetry metrics SDK, Effect spans to an OTLP/HTTP
 * collector.
 *
 * - Metrics, always: `./metrics.ts` gives `MetricsSource` the Prometheus exporter's text, which
 *   the ops server serves on `/metrics`, with `target_info{service_name}`. When
 *   `OTEL_METRICS_EXPORTER` names `otlp`, the same metrics are also pushed to
 *   `<endpoint>/v1/metrics` every `OTEL_METRIC_EXPORT_INTERVAL`; the endpoint is
 *   `OTEL_EXPORTER_OTLP_ENDPOINT`, or OpenTelemetry's default `http://localhost:4318` (a collector
 *   beside the program), since asking for `otlp` is the opt-in.
 * - Traces, only with an OTLP endpoint: `./tracing.ts`, loaded then and only then, sends Effect
 *   spans through the OpenTelemetry tracer to `<endpoint>/v1/traces`. Without an endpoint
 *   Effect's native tracer stays: spans still exist, so `traceparent` headers and log correlation
 *   work, but they cost a couple of µs and go nowhere (which is why `consumeBatches` skips its
 *   per-message spans under that tracer).
 *
 * Closing the layer pushes the last metrics and flushes pending spans, each bounded by
 * `shutdownTimeout` [5 seconds], so a dead collector cannot hold up process exit.
 *
 * `TelemetryConfig` reads `OTEL_EXPORTER_OTLP_ENDPOINT` (optional, http or https URL),
 * `OTEL_SERVICE_NAME` (replaces the program's name), `OTEL_METRICS_EXPORTER` (comma list of
 * `prometheus`, `otlp`, `none`; default `prometheus`, and `/metrics` is served whatever it says)
 * and `OTEL_METRIC_EXPORT_INTERVAL` (milliseconds, or a duration such as `10s`; default 60000).
 */
import * as Config from "effect/Config"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { type ConfigError, configIssue, duration, toConfigError, url } from "../../src/runtime/config.ts"
import type { MetricsSource } from "../../src/runtime/MetricsSource.ts"
import * as Metrics from "./metrics.ts"

export interface TelemetryOptions {
  readonly serviceName: string
  readonly serviceVersion?: string | undefined
  /** Collector base URL (`http://jaeger:4318`); `/v1/traces` is appended unless already there. */
  readonly otlpEndpoint?: string | undefined
  /** Push metrics over OTLP/HTTP too (to `otlpEndpoint`, else `http://localhost:4318`); default false. */
  readonly otlpMetrics?: boolean | undefined
  /** Between two OTLP metric pushes; default 60 seconds, as OpenTelemetry's. */
  readonly metricExportInterval?: Duration.Input | undefined
  /** Bound on flushing and shutting down at layer close; default 5 seconds. */
  readonly shutdownTimeout?: Duration.Input | undefined
}

/** Where OpenTelemetry sends OTLP/HTTP when no endpoint is configured. */
export const DEFAULT_OTLP_ENDPOINT = "http://localhost:4318"

export const layer = (options: TelemetryOptions): Layer.Layer<MetricsSource> => {
  const endpoint = options.otlpEndpoint
  const shutdownTimeout = options.shutdownTimeout ?? Duration.seconds(5)
  const metrics = Metrics.layer({
    serviceName: options.serviceName,
    serviceVersion: options.serviceVersion,
    otlp: options.otlpMetrics === true
      ? {
        url: signalUrl(endpoint ?? DEFAULT_OTLP_ENDPOINT, "metrics"),
        interval: options.metricExportInterval ?? Duration.millis(60_000)
      }
      : undefined,
    shutdownTimeout
  })
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
        shutdownTimeout
      })
  ))
  return Layer.merge(metrics, tracing)
}

const OTLP_ENDPOINT = "OTEL_EXPORTER_OTLP_ENDPOINT"
const SERVICE_NAME = "OTEL_SERVICE_NAME"
const METRICS_EXPORTER = "OTEL_METRICS_EXPORTER"
const METRIC_EXPORT_INTERVAL = "OTEL_METRIC_EXPORT_INTERVAL"

const METRICS_EXPORTERS = ["prometheus", "otlp", "none"] as const

// Empty counts as unset, as OpenTelemetry reads its variables (compose files often write `X=`).
const optionalText = (name: string) =>
  Config.String(name).pipe(Config.withDefault(""), Config.map((text) => text.trim()))

/**
 * `OTEL_METRICS_EXPORTER` as the OpenTelemetry spec writes it: a comma-separated list, values
 * case-insensitive. `prometheus` and `none` change nothing here (`/metrics` is always served);
 * `otlp` adds the push.
 */
const metricsExporters = Config.String(METRICS_EXPORTER).pipe(
  Config.withDefault("prometheus"),
  Config.mapEffect((text) => {
    const names = text.split(",").map((name) => name.trim().toLowerCase()).filter((name) => name !== "")
    const unknown = names.filter((name) => !(METRICS_EXPORTERS as ReadonlyArray<string>).includes(name))
    return unknown.length > 0
      ? Effect.fail(configIssue(METRICS_EXPORTER, `a comma-separated list of ${METRICS_EXPORTERS.join(", ")}`, `got "${text}"`))
      : Effect.succeed(names as ReadonlyArray<typeof METRICS_EXPORTERS[number]>)
  })
)

// The spec's unit is milliseconds, so a bare number is read as such.
const metricExportInterval = duration(METRIC_EXPORT_INTERVAL, { bareUnit: "millis" }).pipe(
  Config.withDefault(Duration.millis(60_000)),
  Config.mapEffect((interval) =>
    Duration.toMillis(interval) >= 1
      ? Effect.succeed(interval)
      : Effect.fail(configIssue(METRIC_EXPORT_INTERVAL, "an interval of at least 1 millisecond", `got ${Duration.format(interval)}`))
  )
)

/** The telemetry variables; a set endpoint must be an http(s) URL. */
export const TelemetryConfig: Effect.Effect<
  {
    readonly otlpEndpoint: string | undefined
    readonly serviceName: string | undefined
    readonly otlpMetrics: boolean
    readonly metricExportInterval: Duration.Duration
  },
  ConfigError
> = Effect.gen(function*() {
  const endpoint = yield* optionalText(OTLP_ENDPOINT)
  const serviceName = yield* optionalText(SERVICE_NAME)
  const exporters = yield* metricsExporters
  return {
    otlpEndpoint: endpoint === "" ? undefined : yield* url(OTLP_ENDPOINT, ["http", "https"]),
    serviceName: serviceName === "" ? undefined : serviceName,
    otlpMetrics: exporters.includes("otlp"),
    metricExportInterval: yield* metricExportInterval
  }
}).pipe(Effect.mapError(toConfigError))

export const layerConfig = (
  serviceName: string,
  options: { readonly serviceVersion?: string | undefined } = {}
): Layer.Layer<MetricsSource, ConfigError> =>
  Layer.unwrap(
    Effect.map(TelemetryConfig, (config) =>
      layer({ ...config, serviceName: config.serviceName ?? serviceName, serviceVersion: options.serviceVersion }))
  )

/**
 * The OTLP/HTTP URL of one signal for a collector base URL, as the OTel spec builds it from
 * OTEL_EXPORTER_OTLP_ENDPOINT; a URL that already ends with the signal's path is kept.
 */
export const signalUrl = (endpoint: string, signal: "traces" | "metrics"): string => {
  const base = endpoint.replace(/\/+$/, "")
  return base.endsWith(`/v1/${signal}`) ? base : `${base}/v1/${signal}`
}

/** The OTLP/HTTP traces URL for a collector base URL. */
export const tracesUrl = (endpoint: string): string => signalUrl(endpoint, "traces")
