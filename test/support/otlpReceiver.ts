/**
 * A fake OpenTelemetry collector: accepts OTLP/HTTP JSON on `POST /v1/traces` and
 * `POST /v1/metrics`, and keeps the spans and the metric data points.
 *
 * `@opentelemetry/exporter-trace-otlp-http` and `exporter-metrics-otlp-http` send JSON
 * (`Content-Type: application/json`). A protobuf request means an exporter was swapped or
 * misconfigured; it is answered 415 and fails every waiter, so a test stops at the cause instead
 * of timing out on "no span".
 *
 * Waiting is push-based: each POST completes the deferreds of the waiters whose predicate a new
 * span (or metric) matches. `requests` lists every request that reached the receiver, whatever
 * its path, so a test can show that nothing was sent at all.
 */
import * as Data from "effect/Data"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Scope from "effect/Scope"
import { type HttpServerError, serve } from "../../layers/platform/httpServer.ts"

export interface ReceivedSpan {
  readonly traceId: string
  readonly spanId: string
  /** Undefined for a root span. */
  readonly parentSpanId: string | undefined
  readonly name: string
  /** OTLP SpanKind: 1 internal, 2 server, 3 client, 4 producer, 5 consumer. */
  readonly kind: number
  readonly attributes: Readonly<Record<string, unknown>>
  /** `service.name` of the resource the span was sent under. */
  readonly serviceName: string | undefined
}

/** One metric of one export: its data points as sent (cumulative by default). */
export interface ReceivedMetric {
  readonly name: string
  readonly kind: "sum" | "gauge" | "histogram"
  /** For sums: whether OTLP marked it monotonic (a Prometheus counter). */
  readonly isMonotonic: boolean
  readonly points: ReadonlyArray<ReceivedPoint>
  /** `service.name` of the resource the metric was sent under. */
  readonly serviceName: string | undefined
}

export interface ReceivedPoint {
  readonly attributes: Readonly<Record<string, unknown>>
  /** Sums and gauges. */
  readonly value?: number
  /** Histograms: per-bucket (not cumulative) counts, one more than `explicitBounds`. */
  readonly histogram?: {
    readonly count: number
    readonly sum: number | undefined
    readonly bucketCounts: ReadonlyArray<number>
    readonly explicitBounds: ReadonlyArray<number>
  }
}

export class OtlpReceiverError extends Data.TaggedError("OtlpReceiverError")<{ readonly reason: string }> {
  override get message() {
    return this.reason
  }
}

export interface OtlpReceiver {
  /** Base URL, as `OTEL_EXPORTER_OTLP_ENDPOINT` takes it. */
  readonly endpoint: string
  readonly spans: Effect.Effect<ReadonlyArray<ReceivedSpan>>
  /** The first span, received already or later, that matches; fails on a bad request or after `timeout` [5 s]. */
  readonly awaitSpan: (
    predicate: (span: ReceivedSpan) => boolean,
    options?: { readonly timeout?: Duration.Input }
  ) => Effect.Effect<ReceivedSpan, OtlpReceiverError>
  /** Every metric of every export, in the order received (a later export repeats cumulative series). */
  readonly metrics: Effect.Effect<ReadonlyArray<ReceivedMetric>>
  /** The first metric, received already or later, that matches; as `awaitSpan`. */
  readonly awaitMetric: (
    predicate: (metric: ReceivedMetric) => boolean,
    options?: { readonly timeout?: Duration.Input }
  ) => Effect.Effect<ReceivedMetric, OtlpReceiverError>
  /** `METHOD /path` of every request received, answered or not. */
  readonly requests: Effect.Effect<ReadonlyArray<string>>
}

interface Waiter<A> {
  readonly predicate: (item: A) => boolean
  readonly deferred: Deferred.Deferred<A, OtlpReceiverError>
}

/** Items of one signal, and the waiters for them. */
const inbox = <A>(what: string, describe: (item: A) => string) => {
  const received: Array<A> = []
  const waiters = new Set<Waiter<A>>()
  let broken: OtlpReceiverError | undefined
  return {
    received,
    fail: (error: OtlpReceiverError) => {
      broken ??= error
      for (const waiter of waiters) Deferred.doneUnsafe(waiter.deferred, Exit.fail(error))
    },
    accept: (items: ReadonlyArray<A>) => {
      received.push(...items)
      for (const waiter of waiters) {
        const match = items.find(waiter.predicate)
        if (match !== undefined) Deferred.doneUnsafe(waiter.deferred, Exit.succeed(match))
      }
    },
    await: (predicate: (item: A) => boolean, options: { readonly timeout?: Duration.Input } = {}) =>
      Effect.suspend(() => {
        if (broken !== undefined) return Effect.fail(broken)
        const already = received.find(predicate)
        if (already !== undefined) return Effect.succeed(already)
        const waiter: Waiter<A> = { predicate, deferred: Deferred.makeUnsafe() }
        waiters.add(waiter)
        const timeout = options.timeout ?? Duration.seconds(5)
        return Deferred.await(waiter.deferred).pipe(
          Effect.timeoutOrElse({
            duration: timeout,
            orElse: () =>
              Effect.fail(
                new OtlpReceiverError({
                  reason: `no matching ${what} within ${Duration.format(Duration.fromInputUnsafe(timeout))}; received: ${
                    received.length === 0 ? "none" : received.map(describe).join(", ")
                  }`
                })
              )
          }),
          Effect.ensuring(Effect.sync(() => waiters.delete(waiter)))
        )
      })
  }
}

export const make: Effect.Effect<OtlpReceiver, HttpServerError, Scope.Scope> = Effect.gen(function*() {
  const spans = inbox<ReceivedSpan>("span", (s) => s.name)
  const metrics = inbox<ReceivedMetric>("metric", (m) => m.name)
  const requests: Array<string> = []

  const breakWith = (reason: string) => {
    const error = new OtlpReceiverError({ reason })
    spans.fail(error)
    metrics.fail(error)
  }

  const handle = async (request: Request): Promise<Response> => {
    const path = new URL(request.url).pathname
    requests.push(`${request.method} ${path}`)
    const signal = request.method !== "POST" ? undefined : path === "/v1/traces" ? "traces" : path === "/v1/metrics" ? "metrics" : undefined
    if (signal === undefined) return new Response("not found", { status: 404 })
    const type = request.headers.get("content-type") ?? ""
    if (!type.startsWith("application/json")) {
      breakWith(`OTLP receiver got Content-Type "${type}"; only JSON (application/json) is understood`)
      return new Response("unsupported media type", { status: 415 })
    }
    try {
      const body = request.headers.get("content-encoding") === "gzip"
        ? await new Response(request.body!.pipeThrough(new DecompressionStream("gzip"))).text()
        : await request.text()
      if (signal === "traces") spans.accept(spansOf(JSON.parse(body)))
      else metrics.accept(metricsOf(JSON.parse(body)))
      return Response.json({})
    } catch (error) {
      breakWith(`OTLP receiver could not read a request: ${error instanceof Error ? error.message : String(error)}`)
      return new Response("bad request", { status: 400 })
    }
  }

  const server = yield* serve(handle, { port: 0, hostname: "127.0.0.1" })

  return {
    endpoint: server.url,
    spans: Effect.sync(() => spans.received.slice()),
    awaitSpan: spans.await,
    metrics: Effect.sync(() => metrics.received.slice()),
    awaitMetric: metrics.await,
    requests: Effect.sync(() => requests.slice())
  }
})

// ---- OTLP JSON (ExportTraceServiceRequest, ExportMetricsServiceRequest) ----

interface KeyValue {
  readonly key: string
  readonly value: AnyValue
}
interface AnyValue {
  readonly stringValue?: string
  readonly boolValue?: boolean
  readonly intValue?: number | string
  readonly doubleValue?: number
  readonly arrayValue?: { readonly values?: ReadonlyArray<AnyValue> }
  readonly kvlistValue?: { readonly values?: ReadonlyArray<KeyValue> }
  readonly bytesValue?: string
}
interface OtlpSpan {
  readonly traceId: string
  readonly spanId: string
  readonly parentSpanId?: string
  readonly name: string
  readonly kind?: number
  readonly attributes?: ReadonlyArray<KeyValue>
}
interface ExportRequest {
  readonly resourceSpans?: ReadonlyArray<{
    readonly resource?: { readonly attributes?: ReadonlyArray<KeyValue> }
    readonly scopeSpans?: ReadonlyArray<{ readonly spans?: ReadonlyArray<OtlpSpan> }>
  }>
}

const HEX_TRACE = /^[0-9a-f]{32}$/
const HEX_SPAN = /^[0-9a-f]{16}$/

const spansOf = (request: ExportRequest): Array<ReceivedSpan> => {
  const out: Array<ReceivedSpan> = []
  for (const resourceSpans of request.resourceSpans ?? []) {
    const resource = attributesOf(resourceSpans.resource?.attributes)
    const serviceName = typeof resource["service.name"] === "string" ? resource["service.name"] : undefined
    for (const scopeSpans of resourceSpans.scopeSpans ?? []) {
      for (const span of scopeSpans.spans ?? []) {
        // The JSON mapping of OTLP uses hex ids; base64 here would mean a protobuf-JSON encoder.
        if (!HEX_TRACE.test(span.traceId) || !HEX_SPAN.test(span.spanId)) {
          throw new Error(`span "${span.name}" has non-hex ids (traceId ${span.traceId}, spanId ${span.spanId})`)
        }
        out.push({
          traceId: span.traceId,
          spanId: span.spanId,
          parentSpanId: span.parentSpanId === undefined || span.parentSpanId === "" ? undefined : span.parentSpanId,
          name: span.name,
          kind: span.kind ?? 0,
          attributes: attributesOf(span.attributes),
          serviceName
        })
      }
    }
  }
  return out
}

interface OtlpNumberPoint {
  readonly attributes?: ReadonlyArray<KeyValue>
  readonly asDouble?: number
  readonly asInt?: number | string
}
interface OtlpHistogramPoint {
  readonly attributes?: ReadonlyArray<KeyValue>
  readonly count?: number | string
  readonly sum?: number
  readonly bucketCounts?: ReadonlyArray<number | string>
  readonly explicitBounds?: ReadonlyArray<number>
}
interface OtlpMetric {
  readonly name: string
  readonly sum?: { readonly dataPoints?: ReadonlyArray<OtlpNumberPoint>; readonly isMonotonic?: boolean }
  readonly gauge?: { readonly dataPoints?: ReadonlyArray<OtlpNumberPoint> }
  readonly histogram?: { readonly dataPoints?: ReadonlyArray<OtlpHistogramPoint> }
}
interface MetricsRequest {
  readonly resourceMetrics?: ReadonlyArray<{
    readonly resource?: { readonly attributes?: ReadonlyArray<KeyValue> }
    readonly scopeMetrics?: ReadonlyArray<{ readonly metrics?: ReadonlyArray<OtlpMetric> }>
  }>
}

const numberPoint = (point: OtlpNumberPoint): ReceivedPoint => ({
  attributes: attributesOf(point.attributes),
  value: point.asDouble ?? Number(point.asInt)
})

const metricsOf = (request: MetricsRequest): Array<ReceivedMetric> => {
  const out: Array<ReceivedMetric> = []
  for (const resourceMetrics of request.resourceMetrics ?? []) {
    const resource = attributesOf(resourceMetrics.resource?.attributes)
    const serviceName = typeof resource["service.name"] === "string" ? resource["service.name"] : undefined
    for (const scopeMetrics of resourceMetrics.scopeMetrics ?? []) {
      for (const metric of scopeMetrics.metrics ?? []) {
        if (metric.sum !== undefined) {
          out.push({
            name: metric.name,
            kind: "sum",
            isMonotonic: metric.sum.isMonotonic === true,
            points: (metric.sum.dataPoints ?? []).map(numberPoint),
            serviceName
          })
        } else if (metric.gauge !== undefined) {
          out.push({ name: metric.name, kind: "gauge", isMonotonic: false, points: (metric.gauge.dataPoints ?? []).map(numberPoint), serviceName })
        } else if (metric.histogram !== undefined) {
          out.push({
            name: metric.name,
            kind: "histogram",
            isMonotonic: false,
            points: (metric.histogram.dataPoints ?? []).map((point) => ({
              attributes: attributesOf(point.attributes),
              histogram: {
                count: Number(point.count ?? 0),
                sum: point.sum,
                bucketCounts: (point.bucketCounts ?? []).map(Number),
                explicitBounds: point.explicitBounds ?? []
              }
            })),
            serviceName
          })
        } else {
          throw new Error(`metric "${metric.name}" is neither a sum, a gauge nor a histogram`)
        }
      }
    }
  }
  return out
}

const attributesOf = (list: ReadonlyArray<KeyValue> | undefined): Record<string, unknown> => {
  const out: Record<string, unknown> = {}
  for (const { key, value } of list ?? []) out[key] = valueOf(value)
  return out
}

const valueOf = (value: AnyValue): unknown => {
  if (value.stringValue !== undefined) return value.stringValue
  if (value.boolValue !== undefined) return value.boolValue
  if (value.intValue !== undefined) return Number(value.intValue)
  if (value.doubleValue !== undefined) return value.doubleValue
  if (value.arrayValue !== undefined) return (value.arrayValue.values ?? []).map(valueOf)
  if (value.kvlistValue !== undefined) return attributesOf(value.kvlistValue.values)
  if (value.bytesValue !== undefined) return value.bytesValue
  return undefined
}
