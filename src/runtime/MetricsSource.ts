/**
 * MetricsSource: the program's metrics as Prometheus text, for `GET /metrics`.
 *
 * The telemetry layer (`layers/telemetry/otel.ts`) provides it from the OpenTelemetry Prometheus
 * exporter, which reads Effect's metric registry on every scrape.
 */
import { Context, Effect } from "effect"

export class MetricsSource extends Context.Service<MetricsSource, {
  readonly render: Effect.Effect<string>
}>()("queueworks/MetricsSource") {}
