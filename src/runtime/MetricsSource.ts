/**
 * MetricsSource: the program's metrics as Prometheus text, for `GET /metrics`.
 *
 * `MetricsSource.prometheus` renders Effect's metric registry on every scrape
 * (`./prometheus.ts`); the telemetry layer (`layers/telemetry/otel.ts`) provides it.
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import { renderPrometheus } from "./prometheus.ts"

export class MetricsSource extends Context.Service<MetricsSource, {
  readonly render: Effect.Effect<string>
}>()("queueworks/MetricsSource") {
  /** Effect's metrics as Prometheus text, with `target_info` carrying `target` (e.g. `service_name`). */
  static prometheus(target: Readonly<Record<string, string>>): Layer.Layer<MetricsSource> {
    return Layer.succeed(MetricsSource, MetricsSource.of({ render: Effect.map(Metric.snapshot, (s) => renderPrometheus(s, target)) }))
  }
}
