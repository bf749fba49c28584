/**
 * W3C trace context (`traceparent`) carried in message headers.
 *
 * Written from the current Effect span on publish and read back on consume, so a consumer's
 * span is the child of the producer's whatever tracer is installed (native or OpenTelemetry).
 */
import * as Effect from "effect/Effect"
import * as Tracer from "effect/Tracer"

const TRACEPARENT = /^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/
const ZEROS = /^0+$/

/** `00-<traceId>-<spanId>-<flags>` for the current span, or undefined outside any span. */
export const currentTraceparent: Effect.Effect<string | undefined> = Effect.currentSpan.pipe(
  Effect.map((span) => formatTraceparent(span.traceId, span.spanId, span.sampled)),
  Effect.orElseSucceed(() => undefined)
)

export const formatTraceparent = (traceId: string, spanId: string, sampled: boolean): string =>
  `00-${traceId}-${spanId}-${sampled ? "01" : "00"}`

/** The producer's span as a parent, or undefined when the header is absent or malformed. */
// Runs once per consumed message, so it slices a fixed layout instead of capturing groups.
export const parseTraceparent = (header: string | undefined): Tracer.ExternalSpan | undefined => {
  if (header === undefined) return undefined
  let value = header.length === 55 ? header : header.trim()
  if (!TRACEPARENT.test(value)) {
    value = value.toLowerCase()
    if (!TRACEPARENT.test(value)) return undefined
  }
  if (value.startsWith("ff")) return undefined
  const traceId = value.slice(3, 35)
  const spanId = value.slice(36, 52)
  if (ZEROS.test(traceId) || ZEROS.test(spanId)) return undefined
  return Tracer.externalSpan({ traceId, spanId, sampled: (parseInt(value.slice(53, 55), 16) & 1) === 1 })
}
