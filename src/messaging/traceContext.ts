/**
 * W3C trace context (`traceparent`) carried in message headers.
 *
 * Written from the current Effect span on publish and read back on consume, so a consumer's
 * span is the child of the producer's whatever tracer is installed (native or OpenTelemetry).
 */
import { Effect, Tracer } from "effect"

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/

/** `00-<traceId>-<spanId>-<flags>` for the current span, or undefined outside any span. */
export const currentTraceparent: Effect.Effect<string | undefined> = Effect.currentSpan.pipe(
  Effect.map((span) => formatTraceparent(span.traceId, span.spanId, span.sampled)),
  Effect.orElseSucceed(() => undefined)
)

export const formatTraceparent = (traceId: string, spanId: string, sampled: boolean): string =>
  `00-${traceId}-${spanId}-${sampled ? "01" : "00"}`

/** The producer's span as a parent, or undefined when the header is absent or malformed. */
export const parseTraceparent = (header: string | undefined): Tracer.ExternalSpan | undefined => {
  if (header === undefined) return undefined
  const match = TRACEPARENT.exec(header.trim().toLowerCase())
  if (match === null || match[1] === "ff") return undefined
  const traceId = match[2]!
  const spanId = match[3]!
  if (/^0+$/.test(traceId) || /^0+$/.test(spanId)) return undefined
  return Tracer.externalSpan({ traceId, spanId, sampled: (parseInt(match[4]!, 16) & 1) === 1 })
}
