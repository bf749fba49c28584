/**
 * A reader that pushes metrics over OTLP/HTTP (JSON) every interval, and once more when it is
 * shut down.
 *
 * Imported by `./metrics.ts` only when `OTEL_METRICS_EXPORTER` names `otlp`: the exporter and
 * its OTLP encoders are memory a worker scraped by Prometheus alone should not hold.
 */
import { OTLPMetricExporter } from "@opentelemetry/exporter-metrics-otlp-http"
import { PeriodicExportingMetricReader } from "@opentelemetry/sdk-metrics"
import * as Duration from "effect/Duration"

export const reader = (options: { readonly url: string; readonly interval: Duration.Input }): PeriodicExportingMetricReader =>
  new PeriodicExportingMetricReader({
    exporter: new OTLPMetricExporter({ url: options.url }),
    // The export timeout (30 s) is clamped to the interval by the reader when that is shorter.
    exportIntervalMillis: Duration.toMillis(Duration.fromInputUnsafe(options.interval))
  })
