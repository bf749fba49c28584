/**
 * Telemetry: Effect metrics as Prometheus text, Effect spans to an OTLP/HTTP collector.
 *
 * - Metrics, always: Effect's metric registry is bridged into an OpenTelemetry
 *   `PrometheusExporter` that starts no server of its own; `MetricsSource.render` collects it and
 *   serializes the Prometheus text, and the ops server serves it on `/metrics`.
 * - Traces, only with an OTLP endpoint: Effect spans go through the OpenTelemetry tracer and a
 *   `BatchSpanProcessor` to `<endpoint>/v1/traces` (JSON over HTTP; Jaeger and the collector read
 *   it). Without an endpoint Effect's native tracer stays: spans still exist, so `traceparent`
 *   headers and log correlation work, but they cost a couple of µs and go nowhere (which is why
 *   `consumeBatches` skips its per-message spans under that tracer).
 *
 * Closing the layer flushes pending spans and shuts the providers down, each bounded by
 * `shutdownTimeout` [5 seconds], so a dead collector cannot hold up process exit.
 *
 * `layerConfig` reads `OTEL_EXPORTER_OTLP_ENDPOINT` (optional, http or https URL) and
 * `OTEL_SERVICE_NAME` (replaces the program's name).
 */
import * as NodeSdk from "@effect/opentelemetry/NodeSdk"
import { PrometheusExporter, PrometheusSerializer } from "@opentelemetry/exporter-prometheus"
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http"
import { BatchSpanProcessor } from "@opentelemetry/sdk-trace-base"
import { Config, Duration, Effect, Layer } from "effect"
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

export const layer = (options: TelemetryOptions): Layer.Layer<MetricsSource> =>
  Layer.unwrap(Effect.sync(() => {
    // Built inside the layer so every build (each test, each program) gets fresh, unshut readers.
    const exporter = new PrometheusExporter({ preventServerStart: true })
    const serializer = new PrometheusSerializer()
    const sdk = NodeSdk.layer(() => ({
      resource: {
        serviceName: options.serviceName,
        ...(options.serviceVersion === undefined ? {} : { serviceVersion: options.serviceVersion })
      },
      metricReader: exporter,
      spanProcessor: options.otlpEndpoint === undefined
        ? undefined
        : new BatchSpanProcessor(new OTLPTraceExporter({ url: tracesUrl(options.otlpEndpoint) })),
      shutdownTimeout: options.shutdownTimeout ?? Duration.seconds(5)
    }))

    const render = Effect.tryPromise(() => exporter.collect()).pipe(
      Effect.tap(({ errors }) =>
        errors.length === 0 ? Effect.void : Effect.logWarning("metrics collection reported errors", errors)
      ),
      Effect.map(({ resourceMetrics }) => serializer.serialize(resourceMetrics)),
      // A scrape racing shutdown gets an empty page rather than a 500 that would page someone.
      Effect.catch((error) => Effect.logWarning("metrics unavailable", error).pipe(Effect.as("")))
    )

    // The SDK layer also carries Effect's Tracer when it installs one, so it is merged into the
    // output rather than provided underneath (which would hide it from the program).
    return Layer.merge(Layer.succeed(MetricsSource, MetricsSource.of({ render })), sdk)
  }))

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
