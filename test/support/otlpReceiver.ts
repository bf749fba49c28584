/**
 * A fake OpenTelemetry collector: accepts OTLP/HTTP JSON on `POST /v1/traces` and keeps the spans.
 *
 * `@opentelemetry/exporter-trace-otlp-http` sends JSON (`Content-Type: application/json`). A
 * protobuf request means the exporter was swapped or misconfigured; it is answered 415 and fails
 * every waiter, so a test stops at the cause instead of timing out on "no span".
 *
 * Waiting is push-based: each POST completes the deferreds of the waiters whose predicate a new
 * span matches.
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
}

interface Waiter {
  readonly predicate: (span: ReceivedSpan) => boolean
  readonly deferred: Deferred.Deferred<ReceivedSpan, OtlpReceiverError>
}

export const make: Effect.Effect<OtlpReceiver, HttpServerError, Scope.Scope> = Effect.gen(function*() {
  const received: Array<ReceivedSpan> = []
  const waiters = new Set<Waiter>()
  let broken: OtlpReceiverError | undefined

  const breakWith = (reason: string) => {
    broken ??= new OtlpReceiverError({ reason })
    for (const waiter of waiters) Deferred.doneUnsafe(waiter.deferred, Exit.fail(broken))
  }

  const accept = (spans: ReadonlyArray<ReceivedSpan>) => {
    received.push(...spans)
    for (const waiter of waiters) {
      const match = spans.find(waiter.predicate)
      if (match !== undefined) Deferred.doneUnsafe(waiter.deferred, Exit.succeed(match))
    }
  }

  const handle = async (request: Request): Promise<Response> => {
    const path = new URL(request.url).pathname
    if (request.method !== "POST" || path !== "/v1/traces") return new Response("not found", { status: 404 })
    const type = request.headers.get("content-type") ?? ""
    if (!type.startsWith("application/json")) {
      breakWith(`OTLP receiver got Content-Type "${type}"; only JSON (application/json) is understood`)
      return new Response("unsupported media type", { status: 415 })
    }
    try {
      const body = request.headers.get("content-encoding") === "gzip"
        ? await new Response(request.body!.pipeThrough(new DecompressionStream("gzip"))).text()
        : await request.text()
      accept(spansOf(JSON.parse(body)))
      return Response.json({})
    } catch (error) {
      breakWith(`OTLP receiver could not read a request: ${error instanceof Error ? error.message : String(error)}`)
      return new Response("bad request", { status: 400 })
    }
  }

  const server = yield* serve(handle, { port: 0, hostname: "127.0.0.1" })

  const awaitSpan: OtlpReceiver["awaitSpan"] = (predicate, options = {}) =>
    Effect.suspend(() => {
      if (broken !== undefined) return Effect.fail(broken)
      const already = received.find(predicate)
      if (already !== undefined) return Effect.succeed(already)
      const waiter: Waiter = { predicate, deferred: Deferred.makeUnsafe() }
      waiters.add(waiter)
      const timeout = options.timeout ?? Duration.seconds(5)
      return Deferred.await(waiter.deferred).pipe(
        Effect.timeoutOrElse({
          duration: timeout,
          orElse: () =>
            Effect.fail(
              new OtlpReceiverError({
                reason: `no matching span within ${Duration.format(Duration.fromInputUnsafe(timeout))}; received: ${
                  received.length === 0 ? "none" : received.map((s) => s.name).join(", ")
                }`
              })
            )
        }),
        Effect.ensuring(Effect.sync(() => waiters.delete(waiter)))
      )
    })

  return {
    endpoint: server.url,
    spans: Effect.sync(() => received.slice()),
    awaitSpan
  }
})

// ---- OTLP JSON (ExportTraceServiceRequest) ----

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
