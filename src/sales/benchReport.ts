/**
 * What the benchmark prints and writes: the final table, the progress line, and the HTML report
 * (the latency-by-percentile chart HdrHistogram users know: the x axis spreads the tail, 90% →
 * 99% → 99.9% each one step, as an inline SVG in a standalone page that needs no network).
 */
import { type BenchProgress, type BenchResult, errorCount } from "./bench.ts"
import type { SweepResult } from "./benchSweep.ts"

const fixed = (n: number, digits = 2) => n.toFixed(digits)

export const describeRun = (result: BenchResult): string =>
  `${result.mode} loop, ${result.targetRate} req/s for ${result.durationMillis / 1000}s over ${result.concurrency} channels to ${result.targets.join(",")}`

export const progressLine = (p: BenchProgress): string =>
  `${fixed(p.elapsedMillis / 1000, 1)}s  sent ${p.sent}  answered ${p.answered}  rate ${Math.round(p.rate)}/s  p99 ${fixed(p.p99Millis)} ms  errors ${p.errors}  timeouts ${p.timeouts}`

export const resultTable = (result: BenchResult): string => {
  const codes = Object.entries(result.errors).sort(([a], [b]) => a.localeCompare(b))
  const rows: Array<readonly [string, string]> = [
    ["run", describeRun(result)],
    ["sent", String(result.sent)],
    ["ok", String(result.ok)],
    ["errors", codes.length === 0 ? "0" : `${errorCount(result)} (${codes.map(([code, n]) => `${code} ${n}`).join(", ")})`],
    ["timeouts", String(result.timeouts)],
    ["achieved rate", `${fixed(result.achievedRate, 1)} req/s`],
    ["latency p50", `${fixed(result.latency.p50)} ms`],
    ["latency p90", `${fixed(result.latency.p90)} ms`],
    ["latency p99", `${fixed(result.latency.p99)} ms`],
    ["latency p99.9", `${fixed(result.latency.p999)} ms`],
    ["latency max", `${fixed(result.latency.max)} ms`]
  ]
  const width = Math.max(...rows.map(([name]) => name.length))
  return rows.map(([name, value]) => `${name.padEnd(width)}  ${value}`).join("\n")
}

export const sweepTable = (sweep: SweepResult, boundMillis: number): string => {
  const lines = sweep.steps.map((s) =>
    `${String(s.rate).padStart(7)}/s  ${s.held ? "held  " : "FAILED"}  achieved ${fixed(s.result.achievedRate, 0).padStart(6)}/s  p50 ${fixed(s.result.latency.p50).padStart(8)}  p99 ${fixed(s.result.latency.p99).padStart(8)}  max ${fixed(s.result.latency.max).padStart(8)} ms  errors ${errorCount(s.result)}  timeouts ${s.result.timeouts}${s.held ? "" : `  (${s.reason})`}`
  )
  const best = sweep.best === undefined
    ? `no rate held with p99 ≤ ${boundMillis} ms`
    : `highest rate that held: ${sweep.best.rate} req/s (p99 ${fixed(sweep.best.result.latency.p99)} ms ≤ ${boundMillis} ms)`
  return [...lines, best].join("\n")
}

const escape = (text: string) =>
  text.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;").replaceAll(`"`, "&quot;")

export interface ReportSeries {
  readonly label: string
  readonly result: BenchResult
}

const colours = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"]

/** x position of a percentile: log10(1 / (1 - p)), so 90% is 1, 99% is 2, 99.9% is 3. */
const tail = (percentile: number) => Math.log10(1 / Math.max(1e-5, 1 - percentile / 100))

const niceCeiling = (value: number) => {
  if (value <= 0) return 1
  const power = 10 ** Math.floor(Math.log10(value))
  for (const m of [1, 2, 2.5, 5, 10]) if (m * power >= value) return m * power
  return 10 * power
}

/** The latency-by-percentile chart of each series, as SVG. */
export const percentileSvg = (series: ReadonlyArray<ReportSeries>, boundMillis?: number): string => {
  const width = 900
  const height = 480
  const left = 70
  const right = 20
  const top = 20
  const bottom = 60
  const xMax = 5
  const yMax = niceCeiling(Math.max(boundMillis ?? 0, ...series.flatMap((s) => s.result.distribution.map(([, ms]) => ms))))
  const x = (p: number) => left + (Math.min(tail(p), xMax) / xMax) * (width - left - right)
  const y = (ms: number) => top + (1 - ms / yMax) * (height - top - bottom)
  const parts: Array<string> = []
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`)
  parts.push(`<rect x="0" y="0" width="${width}" height="${height}" fill="white"/>`)
  for (const [p, label] of [[0, "0%"], [90, "90%"], [99, "99%"], [99.9, "99.9%"], [99.99, "99.99%"], [99.999, "99.999%"]] as const) {
    parts.push(`<line x1="${x(p)}" y1="${top}" x2="${x(p)}" y2="${height - bottom}" stroke="#ddd"/>`)
    parts.push(`<text x="${x(p)}" y="${height - bottom + 18}" text-anchor="middle">${label}</text>`)
  }
  for (let i = 0; i <= 5; i++) {
    const ms = (yMax * i) / 5
    parts.push(`<line x1="${left}" y1="${y(ms)}" x2="${width - right}" y2="${y(ms)}" stroke="#ddd"/>`)
    parts.push(`<text x="${left - 6}" y="${y(ms) + 4}" text-anchor="end">${Number(ms.toPrecision(4))}</text>`)
  }
  parts.push(`<text x="${(left + width - right) / 2}" y="${height - 18}" text-anchor="middle">percentile</text>`)
  parts.push(`<text x="16" y="${(top + height - bottom) / 2}" text-anchor="middle" transform="rotate(-90 16 ${(top + height - bottom) / 2})">latency (ms)</text>`)
  if (boundMillis !== undefined) {
    parts.push(`<line x1="${left}" y1="${y(boundMillis)}" x2="${width - right}" y2="${y(boundMillis)}" stroke="#888" stroke-dasharray="6 4"/>`)
    parts.push(`<text x="${width - right - 4}" y="${y(boundMillis) - 4}" text-anchor="end" fill="#555">bound ${boundMillis} ms</text>`)
  }
  series.forEach((s, i) => {
    const colour = colours[i % colours.length]!
    const points = s.result.distribution.map(([p, ms]) => `${x(p).toFixed(1)},${y(ms).toFixed(1)}`).join(" ")
    parts.push(`<polyline fill="none" stroke="${colour}" stroke-width="2" points="${points}"/>`)
    parts.push(`<rect x="${left + 12}" y="${top + 8 + i * 18}" width="14" height="4" fill="${colour}"/>`)
    parts.push(`<text x="${left + 32}" y="${top + 14 + i * 18}">${escape(s.label)}</text>`)
  })
  parts.push(`<line x1="${left}" y1="${height - bottom}" x2="${width - right}" y2="${height - bottom}" stroke="black"/>`)
  parts.push(`<line x1="${left}" y1="${top}" x2="${left}" y2="${height - bottom}" stroke="black"/>`)
  parts.push(`</svg>`)
  return parts.join("\n")
}

/** A standalone HTML page: the chart and each series' table. Nothing is fetched to show it. */
export const htmlReport = (title: string, series: ReadonlyArray<ReportSeries>, options: { readonly boundMillis?: number; readonly notes?: string } = {}): string =>
  `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>${escape(title)}</title>
<style>body { font-family: sans-serif; margin: 2em; } pre { background: #f6f6f6; padding: 1em; }</style>
</head>
<body>
<h1>${escape(title)}</h1>
${options.notes === undefined ? "" : `<p>${escape(options.notes)}</p>\n`}${percentileSvg(series, options.boundMillis)}
${series.map((s) => `<h2>${escape(s.label)}</h2>\n<pre>${escape(resultTable(s.result))}</pre>`).join("\n")}
</body>
</html>
`
