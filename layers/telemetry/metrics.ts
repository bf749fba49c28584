/**
 * Effect metrics through the OpenTelemetry metrics SDK: `@effect/opentelemetry`'s producer reads
 * Effect's registry on every collection, a `PrometheusExporter` without a server of its own
 * gives `MetricsSource` its text (the ops server serves it on `/metrics`), and, when asked, a
 * periodic reader pushes the same metrics over OTLP/HTTP (`./otlpMetrics.ts`, imported only then).
 *
 * Series keep the labels the program gave them: the scope label (`otel_scope_name`) is left off,
 * since every series comes from the one Effect producer and the label would only rename them all
 * for Prometheus. `target_info` carries the resource: `service_name` and the SDK's attributes.
 *
 * Closing the layer shuts the readers down, which pushes the last OTLP export, bounded by
 * `shutdownTimeout`.
 */
import * as OtelMetrics from "@effect/opentelemetry/OtelMetrics"
import * as Resource from "@effect/opentelemetry/Resource"
import { PrometheusExporter, PrometheusSerializer } from "@opentelemetry/exporter-prometheus"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { MetricsSource } from "../../src/runtime/MetricsSource.ts"

export interface MetricsOptions {
  readonly serviceName: string
  readonly serviceVersion?: string | undefined
  /** Also push to this OTLP/HTTP metrics URL (`…/v1/metrics`), every `interval`. */
  readonly otlp?: { readonly url: string; readonly interval: Duration.Input } | undefined
  readonly shutdownTimeout: Duration.Input
}

export const layer = (options: MetricsOptions): Layer.Layer<MetricsSource> =>
  Layer.effect(
    MetricsSource,
    Effect.gen(function*() {
      const prometheus = new PrometheusExporter({ preventServerStart: true, withoutScopeInfo: true })
      // The exporter keeps its serializer private; this one is built with the same options.
      const serializer = new PrometheusSerializer(undefined, false, undefined, false, true)
      const otlp = options.otlp
      const readers = otlp === undefined
        ? [prometheus] as const
        : [prometheus, (yield* Effect.promise(() => import("./otlpMetrics.ts"))).reader(otlp)] as const
      yield* OtelMetrics.registerProducer(yield* OtelMetrics.makeProducer(), () => readers, {
        shutdownTimeout: options.shutdownTimeout
      })
      return MetricsSource.of({
        render: Effect.promise(() => prometheus.collect()).pipe(
          Effect.tap(({ errors }) =>
            errors.length === 0 ? Effect.void : Effect.logWarning("collecting metrics for /metrics failed in part", ...errors)
          ),
          Effect.map(({ resourceMetrics }) => serializer.serialize(resourceMetrics))
        )
      })
    })
  ).pipe(Layer.provide(Resource.layer({
    serviceName: options.serviceName,
    ...(options.serviceVersion === undefined ? {} : { serviceVersion: options.serviceVersion })
  })))
