/**
 * A parser for the Prometheus text exposition format (version 0.0.4), for asserting on `/metrics`.
 *
 * Strict on purpose: a line it cannot read throws with the line, so a malformed exposition fails
 * the test instead of silently losing samples.
 */

export interface Sample {
  readonly name: string
  readonly labels: Readonly<Record<string, string>>
  readonly value: number
}

export interface Exposition {
  readonly samples: ReadonlyArray<Sample>
  /** `# TYPE` per metric family: counter, gauge, histogram, summary, untyped. */
  readonly types: Readonly<Record<string, string>>
  readonly help: Readonly<Record<string, string>>
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*/
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*/

export const parsePrometheus = (text: string): Exposition => {
  const samples: Array<Sample> = []
  const types: Record<string, string> = {}
  const help: Record<string, string> = {}
  for (const [index, raw] of text.split("\n").entries()) {
    const line = raw.trim()
    if (line === "") continue
    const fail = (why: string): never => {
      throw new Error(`prometheus text line ${index + 1}: ${why}: ${JSON.stringify(raw)}`)
    }
    if (line.startsWith("#")) {
      const meta = /^#\s*(TYPE|HELP)\s+(\S+)\s*(.*)$/.exec(line)
      if (meta === null) continue // other comments (`# UNIT`, free text) carry nothing we check
      const [, kind, family, rest] = meta
      if (kind === "TYPE") {
        if (!/^(counter|gauge|histogram|summary|untyped)$/.test(rest!)) fail(`unknown type "${rest}"`)
        types[family!] = rest!
      } else {
        help[family!] = unescape(rest!, fail)
      }
      continue
    }
    const name = NAME.exec(line)?.[0] ?? fail("no metric name")
    let at = name.length
    const labels: Record<string, string> = {}
    if (line[at] === "{") {
      at++
      while (true) {
        at = skipSpaces(line, at)
        if (line[at] === "}") {
          at++
          break
        }
        const label = LABEL_NAME.exec(line.slice(at))?.[0] ?? fail("bad label name")
        at += label.length
        if (line[at] !== "=" || line[at + 1] !== "\"") fail(`expected ="…" after label ${label}`)
        at += 2
        let value = ""
        while (line[at] !== "\"") {
          if (at >= line.length) fail("unterminated label value")
          if (line[at] === "\\") {
            const next = line[at + 1]
            value += next === "n" ? "\n" : next === "\\" ? "\\" : next === "\"" ? "\"" : fail(`bad escape \\${next}`)
            at += 2
          } else {
            value += line[at++]
          }
        }
        at++
        if (label in labels) fail(`label ${label} repeated`)
        labels[label] = value
        at = skipSpaces(line, at)
        if (line[at] === ",") at++
        else if (line[at] !== "}") fail("expected , or } after a label")
      }
    }
    // value, then an optional timestamp
    const fields = line.slice(at).trim().split(/\s+/)
    if (fields.length < 1 || fields.length > 2 || fields[0] === "") fail("expected a value and an optional timestamp")
    samples.push({ name, labels, value: parseValue(fields[0]!, fail) })
  }
  return { samples, types, help }
}

/** Samples named `name` whose labels include every one given (others are ignored). */
export const findSamples = (
  exposition: Exposition,
  name: string,
  labels: Readonly<Record<string, string>> = {}
): ReadonlyArray<Sample> =>
  exposition.samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))

/** The one sample matching; throws listing what exists when there is not exactly one. */
export const sample = (
  exposition: Exposition,
  name: string,
  labels: Readonly<Record<string, string>> = {}
): Sample => {
  const found = findSamples(exposition, name, labels)
  if (found.length !== 1) {
    const same = exposition.samples.filter((s) => s.name === name).map((s) => JSON.stringify(s.labels))
    throw new Error(
      `expected one sample ${name}${JSON.stringify(labels)}, found ${found.length}; samples named ${name}: ${
        same.length === 0 ? "none" : same.join(" ")
      }`
    )
  }
  return found[0]!
}

const skipSpaces = (line: string, at: number): number => {
  while (line[at] === " " || line[at] === "\t") at++
  return at
}

const parseValue = (text: string, fail: (why: string) => never): number => {
  if (text === "+Inf" || text === "Inf") return Number.POSITIVE_INFINITY
  if (text === "-Inf") return Number.NEGATIVE_INFINITY
  if (text === "NaN") return Number.NaN
  const value = Number(text)
  return Number.isNaN(value) ? fail(`bad value "${text}"`) : value
}

const unescape = (text: string, fail: (why: string) => never): string =>
  text.replace(/\\(.)/g, (_, c: string) => (c === "n" ? "\n" : c === "\\" ? "\\" : fail(`bad escape \\${c}`)))
