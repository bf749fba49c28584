/**
 * MetricsSource: the program's metrics as Prometheus text, for `GET /metrics`.
 *
 * The telemetry layer provides it from the OpenTelemetry Prometheus exporter; tests and the
 * embedded demo can use `fromRegistry`, which renders Effect's metric registry directly.
 */
import { Context, Effect } from "effect"

export class MetricsSource extends Context.Service<MetricsSource, {
  readonly render: Effect.Effect<string>
}>()("queueworks/MetricsSource") {}
