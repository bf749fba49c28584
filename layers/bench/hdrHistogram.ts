/**
 * The benchmark's latency histogram: HdrHistogram (`hdr-histogram-js`, pure JS), microseconds,
 * 3 significant digits (a value is off by at most 0.1%), growing as larger values arrive.
 */
import * as hdr from "hdr-histogram-js"
import type { LatencyHistogram } from "../../src/sales/bench.ts"

export const hdrHistogram = (): LatencyHistogram => {
  const histogram = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: 3, autoResize: true })
  return {
    record: (micros) => histogram.recordValue(Math.max(1, Math.round(micros))),
    count: () => histogram.totalCount,
    percentile: (p) => histogram.getValueAtPercentile(p),
    max: () => histogram.maxValue,
    mean: () => histogram.mean
  }
}
