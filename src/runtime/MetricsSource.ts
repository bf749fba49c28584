/**
 * MetricsSource: the program's metrics as Prometheus text, for `GET /metrics`.
 *
 * The telemetry layer (`layers/telemetry/metrics.ts`) provides it from the OpenTelemetry
 * Prometheus exporter; the ops app only asks it for text, so it serves whatever backs it.
 */
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"

export class MetricsSource extends Context.Service<MetricsSource, {
  /** The exposition (text format 0.0.4), collected when asked. */
  readonly render: Effect.Effect<string>
}>()("queueworks/MetricsSource") {}
