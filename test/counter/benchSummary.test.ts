/**
 * The benchmark's closing lines: each ratio to the raw loop is named, and the spread is shown,
 * so a median rate is never printed beside a ratio it was not computed from.
 */
import { describe, expect, test } from "bun:test"
import { median, rawLine, summarize, summaryLine } from "../../bench/summary.ts"

// The case: the rounds where the counter was fast were not the rounds where raw was.
const raws = [40_000, 50_416, 90_000]
const rates = [64_725, 30_000, 70_000]
const runs = rates.map((perSecond, i) => ({ perSecond, ratio: perSecond / raws[i]!, rss: 80 + i, anon: 40 + i }))

describe("bench summary", () => {
  test("the median of per-round ratios and the ratio of medians are both given, and differ here", () => {
    const s = summarize(runs, median(raws))
    expect(s.perSecond).toBe(64_725)
    // Per-round ratios 1.62, 0.60, 0.78: their median is 0.78; 64 725 / 50 416 is 1.28.
    expect(s.ratio).toBe(0.78)
    expect(s.ratioOfMedians).toBe(1.28)
    expect([s.ratioMin, s.ratioMax]).toEqual([0.6, 1.62])
    expect(s.peakRssMb).toBe(81)
  })

  test("the printed line labels each ratio and shows the spread", () => {
    const line = summaryLine("event counter (bundle, defaults)", summarize(runs, median(raws)))
    expect(line).toContain("event counter (bundle, defaults) 64725 msg/s")
    expect(line).toContain("median of per-round ratios 0.78")
    expect(line).toContain("spread 0.60–1.62")
    expect(line).toContain("ratio of medians 1.28")
    // The old line's reading: the median rate "= <median of ratios> of raw".
    expect(line).not.toContain("= 0.78 of raw")
    expect(rawLine(median(raws))).toContain("50416 msg/s")
  })

  test("an even number of rounds takes the mean of the middle two, not the upper one", () => {
    expect(median([1, 2, 3, 10])).toBe(2.5)
    const s = summarize(runs.slice(0, 2), median(raws.slice(0, 2)))
    expect(s.perSecond).toBe(47_363)
    expect(s.ratioOfMedians).toBe(Number((47_362.5 / 45_208).toFixed(2)))
  })
})
