/**
 * Effect's metric registry as Prometheus text (exposition format 0.0.4), read on every scrape.
 *
 * Written here rather than bridged through the OpenTelemetry metrics SDK: the bridge and SDK
 * load some 150 modules and keep a second copy of every series, which a worker holding a few
 * dozen series pays for in resident memory on every host it runs on.
 *
 * Naming follows what the OpenTelemetry Prometheus exporter wrote, so dashboards carry over:
 * - Counter: `counter` named `<id>_total` when incremental (only goes up), else a `gauge`.
 * - Gauge: `gauge`.
 * - Frequency: `counter` `<id>_total` with the occurrence in the `key` label.
 * - Histogram: `histogram` with cumulative `<id>_bucket{le}`, `+Inf` = the count, `_sum`, `_count`.
 * - Summary: `summary` with `<id>{quantile}`, `_sum`, `_count`.
 * - `target_info{service_name,…} 1` names the program, as OpenTelemetry resources do.
 * Invalid characters in names become `_`; series of one family sit under one HELP and TYPE.
 */
import type * as Metric from "effect/Metric"

interface Family {
  readonly name: string
  readonly type: "counter" | "gauge" | "histogram" | "summary"
  readonly help: string | undefined
  readonly lines: Array<string>
}

export const renderPrometheus = (
  snapshots: ReadonlyArray<Metric.Metric.Snapshot>,
  target: Readonly<Record<string, string>> = {}
): string => {
  const families = new Map<string, Family>()
  const family = (name: string, type: Family["type"], help: string | undefined) => {
    const existing = families.get(name)
    if (existing !== undefined) return existing.type === type ? existing : undefined
    const created: Family = { name, type, help, lines: [] }
    families.set(name, created)
    return created
  }

  for (const snapshot of snapshots) {
    const base = metricName(snapshot.id)
    const labels = Object.entries(snapshot.attributes ?? {}).map(([k, v]) => [labelName(k), String(v)] as const)
    switch (snapshot.type) {
      case "Counter": {
        const monotonic = snapshot.state.incremental
        const name = monotonic && !base.endsWith("_total") ? `${base}_total` : base
        family(name, monotonic ? "counter" : "gauge", snapshot.description)?.lines.push(
          sample(name, labels, snapshot.state.count)
        )
        break
      }
      case "Gauge":
        family(base, "gauge", snapshot.description)?.lines.push(sample(base, labels, snapshot.state.value))
        break
      case "Frequency": {
        const name = base.endsWith("_total") ? base : `${base}_total`
        const into = family(name, "counter", snapshot.description)
        for (const [key, count] of snapshot.state.occurrences) into?.lines.push(sample(name, [...labels, ["key", key]], count))
        break
      }
      case "Histogram": {
        const into = family(base, "histogram", snapshot.description)
        if (into === undefined) break
        const { buckets, count, sum } = snapshot.state
        for (const [boundary, cumulative] of buckets) {
          if (boundary === Number.POSITIVE_INFINITY) break
          into.lines.push(sample(`${base}_bucket`, [...labels, ["le", String(boundary)]], cumulative))
        }
        // Effect counts values above the last boundary only in `count`.
        into.lines.push(sample(`${base}_bucket`, [...labels, ["le", "+Inf"]], count))
        into.lines.push(sample(`${base}_sum`, labels, sum), sample(`${base}_count`, labels, count))
        break
      }
      case "Summary": {
        const into = family(base, "summary", snapshot.description)
        if (into === undefined) break
        const { quantiles, count, sum } = snapshot.state
        for (const [q, value] of quantiles) into.lines.push(sample(base, [...labels, ["quantile", String(q)]], value ?? Number.NaN))
        into.lines.push(sample(`${base}_sum`, labels, sum), sample(`${base}_count`, labels, count))
        break
      }
    }
  }

  const out: Array<string> = []
  const info = Object.entries(target).map(([k, v]) => [labelName(k), v] as const)
  if (info.length > 0) out.push("# HELP target_info Target metadata", "# TYPE target_info gauge", sample("target_info", info, 1))
  for (const f of families.values()) {
    if (f.help !== undefined && f.help !== "") out.push(`# HELP ${f.name} ${escapeHelp(f.help)}`)
    out.push(`# TYPE ${f.name} ${f.type}`, ...f.lines)
  }
  return out.length === 0 ? "" : out.join("\n") + "\n"
}

const sample = (name: string, labels: ReadonlyArray<readonly [string, string]>, value: number | bigint): string =>
  labels.length === 0
    ? `${name} ${formatValue(value)}`
    : `${name}{${labels.map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(",")}} ${formatValue(value)}`

const formatValue = (value: number | bigint): string => {
  if (typeof value === "bigint") return value.toString()
  if (Number.isNaN(value)) return "NaN"
  if (value === Number.POSITIVE_INFINITY) return "+Inf"
  if (value === Number.NEGATIVE_INFINITY) return "-Inf"
  return String(value)
}

// Both kinds of name: invalid characters become `_`, and one never starts with a digit.
const validName = (text: string, invalid: RegExp): string => {
  const name = text.replace(invalid, "_")
  return /^[0-9]/.test(name) || name === "" ? `_${name}` : name
}

const metricName = (id: string): string => validName(id, /[^a-zA-Z0-9_:]/g)

const labelName = (key: string): string => validName(key, /[^a-zA-Z0-9_]/g)

const escapeLabel = (value: string): string => value.replace(/\\/g, "\\\\").replace(/"/g, "\\\"").replace(/\n/g, "\\n")

const escapeHelp = (text: string): string => text.replace(/\\/g, "\\\\").replace(/\n/g, "\\n")
