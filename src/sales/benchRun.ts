/**
 * The benchmark as the program runs it, from its configuration: one run or a sweep, through the
 * balancer or direct; text for people, a JSON document for scripts, an HTML report. What to do
 * with a progress line (rewrite one terminal line, or print it) is the caller's.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type { Publisher } from "../capabilities/Publisher.ts"
import { directTopic, Subscriber, type SubscriberError } from "../capabilities/Subscriber.ts"
import { type BenchOptions, type BenchProgress, type BenchResult, type LatencyHistogram, runBench } from "./bench.ts"
import type { BenchConfig } from "./benchConfig.ts"
import { describeRun, htmlReport, resultTable, sweepTable } from "./benchReport.ts"
import { sweep, type SweepResult } from "./benchSweep.ts"

export interface BenchOutput {
  readonly progress: (progress: BenchProgress) => Effect.Effect<void>
  /** After a run's last progress line. */
  readonly endProgress: Effect.Effect<void>
  readonly text: (text: string) => Effect.Effect<void>
}

export interface BenchOutcome {
  readonly run?: BenchResult
  readonly sweep?: SweepResult
  readonly json: string
  /** Present when a report was asked for. */
  readonly html: string | undefined
}

export const benchFromConfig = (
  config: BenchConfig,
  histogram: () => LatencyHistogram,
  output: BenchOutput
): Effect.Effect<BenchOutcome, SubscriberError, Publisher | Subscriber> =>
  Effect.gen(function*() {
    const targets = config.direct ? config.workerQueues : [config.requestQueue]
    // The default exchange drops what it cannot route: queues a worker or balancer will read exist first.
    for (const group of targets) yield* Subscriber.use((s) => s.declare({ topic: directTopic, group }))
    const via = config.direct ? `direct to ${targets.join(", ")}` : `through ${config.requestQueue}`
    const options = (rate: number): BenchOptions => ({
      rate,
      duration: config.duration,
      concurrency: config.concurrency,
      timeout: config.timeout,
      targets,
      mode: config.closedLoop ? "closed" : "open",
      seed: config.seed,
      progressEvery: config.progressEvery,
      onProgress: output.progress
    })
    const measure = (rate: number) => runBench(options(rate), histogram()).pipe(Effect.tap(() => output.endProgress))
    const boundMillis = Duration.toMillis(config.p99Bound)
    // A cold start (first connections, page cache, the JIT) is not what the figures are about.
    if (Duration.toMillis(config.warmup) > 0) {
      const rate = config.sweep ? config.sweepStart : config.rate
      yield* output.text(`warming up: ${rate} req/s for ${Duration.format(config.warmup)}, not counted`)
      const { onProgress: _, ...quiet } = options(rate)
      yield* runBench({ ...quiet, duration: config.warmup }, histogram())
    }
    const report = (title: string, series: ReadonlyArray<{ readonly label: string; readonly result: BenchResult }>) =>
      config.report._tag === "Some" ? htmlReport(title, series, { boundMillis }) : undefined

    if (!config.sweep) {
      const result = yield* measure(config.rate)
      yield* output.text(resultTable(result))
      return {
        run: result,
        json: JSON.stringify(result),
        html: report(`sales-bench ${via}`, [{ label: describeRun(result), result }])
      }
    }
    yield* output.text(`sweep ${via}: from ${config.sweepStart}/s by ${config.sweepStep}/s, ${Duration.format(config.duration)} a step, until p99 > ${boundMillis} ms`)
    const swept = yield* sweep({
      start: config.sweepStart,
      step: config.sweepStep,
      max: config.sweepMax,
      p99BoundMillis: boundMillis,
      refinements: config.sweepRefinements
    }, measure, (step) => output.text(sweepTable({ best: undefined, steps: [step] }, boundMillis).split("\n")[0]!))
    yield* output.text(`summary:\n${sweepTable(swept, boundMillis)}`)
    return {
      sweep: swept,
      json: JSON.stringify({ via, boundMillis, best: swept.best?.rate ?? null, steps: swept.steps }),
      html: report(
        `sales-bench --sweep ${via}`,
        swept.steps.map((s) => ({ label: `${s.rate}/s ${s.held ? "held" : "failed"}: p99 ${s.result.latency.p99.toFixed(2)} ms`, result: s.result }))
      )
    }
  })
