import { describe, expect, test } from "bun:test"
import { formatTraceparent, parseTraceparent } from "../../src/messaging/traceContext.ts"

describe("traceparent", () => {
  const traceId = "0af7651916cd43dd8448eb211c80319c"
  const spanId = "b7ad6b7169203331"

  test("round-trips ids and the sampled flag", () => {
    expect(parseTraceparent(formatTraceparent(traceId, spanId, true))).toMatchObject({ traceId, spanId, sampled: true })
    expect(parseTraceparent(formatTraceparent(traceId, spanId, false))).toMatchObject({ traceId, spanId, sampled: false })
  })

  test("accepts upper case and surrounding blanks, as W3C allows receivers to", () => {
    expect(parseTraceparent(` 00-${traceId.toUpperCase()}-${spanId}-01 `)).toMatchObject({ traceId, spanId, sampled: true })
  })

  test("rejects what is not a valid traceparent", () => {
    for (const bad of [
      undefined,
      "",
      `00-${traceId}-${spanId}`,
      `ff-${traceId}-${spanId}-01`,
      `00-${"0".repeat(32)}-${spanId}-01`,
      `00-${traceId}-${"0".repeat(16)}-01`,
      `00-${traceId.slice(1)}x-${spanId}-01`,
      `00_${traceId}-${spanId}-01`
    ]) {
      expect(parseTraceparent(bad)).toBeUndefined()
    }
  })
})
