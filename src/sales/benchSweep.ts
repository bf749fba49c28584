/**
 * The rate sweep: run the benchmark at rising rates until one does not hold, and report the
 * highest rate that did.
 *
 * A step holds when its p99 is within the bound, at most `maxFailureRatio` of its requests failed
 * (error replies, timeouts, publishes the broker refused), and the replies kept up with the
 * schedule (achieved rate ≥ `minRateRatio` × target; a client or system that cannot keep up
 * shows it here even when the few replies it got were quick). Rates go up by `step` from `start`;
 * after the first step that fails, `refinements` halvings of the step probe between the last
 * rate that held and the first that failed. It stops at `max`.
 *
 * `measure` runs one step; the sweep does not care how (tests give it a latency function).
 */
import * as Effect from "effect/Effect"
import { type BenchResult, errorCount } from "./bench.ts"

export interface SweepOptions {
  readonly start: number
  readonly step: number
  readonly max: number
  readonly p99BoundMillis: number
  readonly refinements?: number
  readonly maxFailureRatio?: number
  readonly minRateRatio?: number
}

export interface SweepStep {
  readonly rate: number
  readonly held: boolean
  /** Why it did not hold, empty when it did. */
  readonly reason: string
  readonly result: BenchResult
}

export interface SweepResult {
  /** The highest rate that held; undefined when not even `start` did. */
  readonly best: SweepStep | undefined
  readonly steps: ReadonlyArray<SweepStep>
}

export const judge = (result: BenchResult, options: SweepOptions): string => {
  const failed = errorCount(result) + result.timeouts
  const reasons: Array<string> = []
  if (result.latency.p99 > options.p99BoundMillis) reasons.push(`p99 ${result.latency.p99.toFixed(1)} ms > ${options.p99BoundMillis} ms`)
  if (failed > result.sent * (options.maxFailureRatio ?? 0.01)) reasons.push(`${failed} of ${result.sent} failed`)
  if (result.achievedRate < result.targetRate * (options.minRateRatio ?? 0.95)) {
    reasons.push(`achieved ${Math.round(result.achievedRate)}/s of ${result.targetRate}/s`)
  }
  return reasons.join("; ")
}

export const sweep = <E, R>(
  options: SweepOptions,
  measure: (rate: number) => Effect.Effect<BenchResult, E, R>,
  onStep: (step: SweepStep) => Effect.Effect<void> = () => Effect.void
): Effect.Effect<SweepResult, E, R> =>
  Effect.gen(function*() {
    const steps: Array<SweepStep> = []
    let best: SweepStep | undefined
    const run = (rate: number) =>
      Effect.gen(function*() {
        const result = yield* measure(rate)
        const reason = judge(result, options)
        const step: SweepStep = { rate, held: reason === "", reason, result }
        steps.push(step)
        yield* onStep(step)
        if (step.held && (best === undefined || rate > best.rate)) best = step
        return step
      })

    let rate = options.start
    let failedAt: number | undefined
    while (rate <= options.max) {
      const step = yield* run(rate)
      if (!step.held) {
        failedAt = rate
        break
      }
      rate += options.step
    }
    if (failedAt === undefined) return { best, steps }
    let low = best?.rate ?? 0
    let high = failedAt
    for (let i = 0; i < (options.refinements ?? 1); i++) {
      const probe = Math.round((low + high) / 2)
      if (probe <= low || probe >= high || probe < 1) break
      const step = yield* run(probe)
      if (step.held) low = probe
      else high = probe
    }
    return { best, steps }
  })
