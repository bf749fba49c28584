/**
 * Effect spans through the OpenTelemetry tracer and a `BatchSpanProcessor` to an OTLP/HTTP
 * collector (JSON; Jaeger and the collector read it).
 *
 * Imported by `./otel.ts` only when an endpoint is configured: the SDK is a few hundred modules a
 * worker without tracing should not keep in memory.
 */
import * as NodeSdk from "@effect/opentelemetry/NodeSdk"
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http"
import { BatchSpanProcessor } from "@opentelemetry/sdk-trace-base"
import * as Duration from "effect/Duration"
import type * as Layer from "effect/Layer"

export const layer = (options: {
  readonly serviceName: string
  readonly serviceVersion?: string | undefined
  readonly tracesUrl: string
  readonly shutdownTimeout: Duration.Input
}): Layer.Layer<never> =>
  NodeSdk.layer(() => ({
    resource: {
      serviceName: options.serviceName,
      ...(options.serviceVersion === undefined ? {} : { serviceVersion: options.serviceVersion })
    },
    spanProcessor: new BatchSpanProcessor(new OTLPTraceExporter({ url: options.tracesUrl })),
    shutdownTimeout: Duration.fromInputUnsafe(options.shutdownTimeout)
  }))
