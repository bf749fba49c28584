/**
 * The sweep's decisions, on a fake system whose p99 is a function of the rate: no broker, no
 * waiting. And the report: a standalone page whose SVG is well-formed and draws each series.
 */
import { describe, expect, test } from "bun:test"
import * as Effect from "effect/Effect"
import { type BenchResult, distributionPercentiles } from "../../src/sales/bench.ts"
import { htmlReport, percentileSvg, resultTable, sweepTable } from "../../src/sales/benchReport.ts"
import { judge, sweep, type SweepOptions } from "../../src/sales/benchSweep.ts"

const fake = (rate: number, p99: number, overrides: Partial<BenchResult> = {}): BenchResult => ({
  mode: "open",
  targetRate: rate,
  durationMillis: 5_000,
  concurrency: 15,
  targets: ["sales_requests"],
  sent: rate * 5,
  ok: rate * 5,
  errors: {},
  timeouts: 0,
  achievedRate: rate,
  latency: { p50: p99 / 4, p90: p99 / 2, p99, p999: p99 * 2, max: p99 * 3, mean: p99 / 3 },
  distribution: distributionPercentiles.map((p) => [p, p < 50 ? p99 / 8 : p < 99 ? p99 / 2 : p < 99.9 ? p99 : p99 * 3] as const),
  ...overrides
})

const options: SweepOptions = { start: 1_000, step: 1_000, max: 10_000, p99BoundMillis: 25, refinements: 2 }

/** A system that holds p99 at 5 ms up to `knee` requests/s and at 40 ms above it; records each rate asked. */
const system = (knee: number) => {
  const asked: Array<number> = []
  return { asked, measure: (rate: number) => Effect.sync(() => (asked.push(rate), fake(rate, rate <= knee ? 5 : 40))) }
}

describe("sales-bench sweep", () => {
  test("steps up until p99 passes the bound, then halves the step between the last held and the first failed", async () => {
    const { asked, measure } = system(2_800)
    const result = await Effect.runPromise(sweep(options, measure))
    expect(asked).toEqual([1_000, 2_000, 3_000, 2_500, 2_750])
    expect(result.best?.rate).toBe(2_750)
    expect(result.steps.map((s) => s.held)).toEqual([true, true, false, true, true])
    expect(result.steps[2]!.reason).toBe("p99 40.0 ms > 25 ms")
  })

  test("a refinement that fails keeps the best below it", async () => {
    const { asked, measure } = system(2_200)
    const result = await Effect.runPromise(sweep(options, measure))
    expect(asked).toEqual([1_000, 2_000, 3_000, 2_500, 2_250])
    expect(result.best?.rate).toBe(2_000)
  })

  test("stops at max when every step holds; reports none when the first fails", async () => {
    const all = await Effect.runPromise(sweep({ ...options, max: 4_000 }, system(1e9).measure))
    expect([all.best?.rate, all.steps.length]).toEqual([4_000, 4])
    const none = system(10)
    const result = await Effect.runPromise(sweep(options, none.measure))
    expect(result.best).toBeUndefined()
    // Probes between 0 and the first rate too.
    expect(none.asked).toEqual([1_000, 500, 250])
    expect(sweepTable(result, 25)).toContain("no rate held with p99 ≤ 25 ms")
  })

  test("a step with quick replies still fails when too many failed or the replies fell behind the schedule", () => {
    expect(judge(fake(1_000, 5), options)).toBe("")
    expect(judge(fake(1_000, 5, { timeouts: 60 }), options)).toBe("60 of 5000 failed")
    expect(judge(fake(1_000, 5, { errors: { unavailable: 40, internal: 20 } }), options)).toBe("60 of 5000 failed")
    expect(judge(fake(1_000, 5, { errors: { unavailable: 50 } }), options)).toBe("")
    expect(judge(fake(1_000, 5, { achievedRate: 900 }), options)).toBe("achieved 900/s of 1000/s")
  })
})

/** Checks tag nesting and attribute quoting of an XML fragment; returns the element names in order. */
const wellFormed = (xml: string): Array<string> => {
  const stack: Array<string> = []
  const names: Array<string> = []
  for (const [, closing, name, attributes, selfClosing] of xml.matchAll(/<(\/?)([a-zA-Z][\w:-]*)([^<>]*?)(\/?)>/g)) {
    if (closing === "/") {
      expect(stack.pop()).toBe(name)
      continue
    }
    const rest = attributes!.replace(/\s+[\w:-]+="[^"<>]*"/g, "")
    expect(rest.trim()).toBe("")
    names.push(name!)
    if (selfClosing !== "/") stack.push(name!)
  }
  expect(stack).toEqual([])
  // Nothing but whitespace and text outside tags: no stray "<" or ">".
  expect(xml.replace(/<[^<>]*>/g, "")).not.toMatch(/[<>]/)
  return names
}

describe("sales-bench report", () => {
  const series = [
    { label: "through the balancer", result: fake(2_000, 12) },
    { label: "direct <3 workers> & \"quoted\"", result: fake(2_000, 8) }
  ]

  test("a standalone page with a well-formed SVG: one line per series, the bound, labels escaped", () => {
    const html = htmlReport("sales-bench --sweep", series, { boundMillis: 25 })
    expect(html.startsWith("<!DOCTYPE html>")).toBe(true)
    // Nothing to fetch: no scripts, stylesheets or images from elsewhere.
    expect(html).not.toMatch(/<script|<link|src=|href=/)
    const svg = html.slice(html.indexOf("<svg"), html.indexOf("</svg>") + "</svg>".length)
    const names = wellFormed(svg)
    expect(names.filter((n) => n === "polyline").length).toBe(2)
    expect(svg).toContain("direct &lt;3 workers&gt; &amp; &quot;quoted&quot;")
    expect(svg).toContain("bound 25 ms")
    wellFormed(html.replace("<!DOCTYPE html>", "").replaceAll(`<meta charset="utf-8">`, ""))
  })

  test("each line rises with the percentile: latency drawn upwards, tail to the right", () => {
    const svg = percentileSvg(series, 25)
    for (const [, points] of svg.matchAll(/<polyline [^>]*points="([^"]+)"/g)) {
      const xy = points!.split(" ").map((p) => p.split(",").map(Number) as [number, number])
      expect(xy.length).toBe(distributionPercentiles.length)
      for (let i = 1; i < xy.length; i++) {
        expect(xy[i]![0]).toBeGreaterThanOrEqual(xy[i - 1]![0])
        expect(xy[i]![1]).toBeLessThanOrEqual(xy[i - 1]![1])
      }
    }
  })

  test("the table names every figure the brief asks for", () => {
    const table = resultTable(fake(400, 20, { errors: { unknown_region: 2, publish: 1 }, timeouts: 3 }))
    for (const row of ["sent", "ok", "errors         3 (publish 1, unknown_region 2)", "timeouts", "achieved rate", "latency p50", "latency p90", "latency p99 ", "latency p99.9", "latency max"]) {
      expect(table).toContain(row)
    }
  })
})
