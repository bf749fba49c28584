/**
 * The closing figures of `bench/counter.ts`, apart from the runs so they can be tested.
 *
 * Two ratios to the raw loop answer different questions, and on a noisy machine they differ a
 * lot: the median of the per-round ratios (each counter run against the raw run of its own
 * round: what the counter costs under the same conditions) and the ratio of the medians (typical
 * counter rate over typical raw rate). Printing a median rate beside the first one read as if the
 * second were meant; both are printed now, each named, with the spread of the per-round ratios.
 */

/** One counter run of one round; `ratio` is its rate over the raw loop's rate in that round. */
export interface Run {
  readonly perSecond: number
  readonly ratio: number
  readonly rss: number
  readonly anon: number
}

export interface Summary {
  /** Median rate, msg/s. */
  readonly perSecond: number
  /** Median of the per-round ratios to the raw loop. */
  readonly ratio: number
  /** Median rate over the raw loop's median rate. */
  readonly ratioOfMedians: number
  /** Smallest and largest per-round ratio. */
  readonly ratioMin: number
  readonly ratioMax: number
  readonly peakRssMb: number
  readonly peakAnonMb: number
}

/** The middle value; with an even count, the mean of the two middle ones. */
export const median = (xs: ReadonlyArray<number>): number => {
  if (xs.length === 0) return Number.NaN
  const sorted = [...xs].sort((a, b) => a - b)
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

const fixed = (x: number, digits: number) => Number(x.toFixed(digits))

export const summarize = (runs: ReadonlyArray<Run>, rawMedian: number): Summary => {
  const ratios = runs.map((r) => r.ratio)
  const perSecond = median(runs.map((r) => r.perSecond))
  return {
    perSecond: Math.round(perSecond),
    ratio: fixed(median(ratios), 2),
    ratioOfMedians: fixed(perSecond / rawMedian, 2),
    ratioMin: fixed(Math.min(...ratios), 2),
    ratioMax: fixed(Math.max(...ratios), 2),
    peakRssMb: fixed(median(runs.map((r) => r.rss)), 1),
    peakAnonMb: fixed(median(runs.map((r) => r.anon)), 1)
  }
}

export const rawLine = (rawMedian: number): string =>
  `median: raw amqplib loop (ack every 100, multiple) ${Math.round(rawMedian)} msg/s`

export const summaryLine = (label: string, s: Summary): string =>
  `median: ${label} ${s.perSecond} msg/s; ratio to raw: median of per-round ratios ${s.ratio.toFixed(2)} ` +
  `(spread ${s.ratioMin.toFixed(2)}–${s.ratioMax.toFixed(2)}), ratio of medians ${s.ratioOfMedians.toFixed(2)}; ` +
  `peak RSS ${s.peakRssMb} MB (anonymous ${s.peakAnonMb} MB)`
