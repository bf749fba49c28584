/** Tracing helpers for tests. */
import * as Tracer from "effect/Tracer"

/** Effect's native tracer, telling `onSpan` of every span it makes. */
export const recordingTracer = (onSpan: (span: Tracer.Span) => void): Tracer.Tracer =>
  Tracer.make({
    span: (options) => {
      const span = Tracer.nativeTracer.span(options)
      onSpan(span)
      return span
    }
  })
