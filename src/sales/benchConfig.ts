/**
 * The benchmark client's configuration, with the original's names and defaults where it had
 * them: `TARGET_RATE` [400] requests/s, `DURATION` [30s], `CONCURRENCY` [15] sending channels.
 * Also `REQUEST_TIMEOUT` [5s] per request; `REQUEST_QUEUE` [sales_requests] (the balancer);
 * `DIRECT` [false] to send to `WORKER_QUEUES` [mom-worker-1,mom-worker-2,mom-worker-3] round
 * robin instead; `CLOSED_LOOP` [false] to measure as a closed-loop client would (comparison
 * only); `SWEEP` [false] with `P99_BOUND` [25ms], `SWEEP_START` [500], `SWEEP_STEP` [500],
 * `SWEEP_MAX` [20000], `SWEEP_REFINEMENTS` [1], each step lasting `DURATION`; `JSON` [false];
 * `REPORT` [none] an HTML file to write; `SEED` [1] for the random queries; `PROGRESS_INTERVAL` [1s];
 * `WARMUP` [3s] at the first rate before anything is measured (connections, caches, the JIT), 0 for none.
 * Every one is also a flag: `--target-rate 5000`, `--direct`, `--sweep`, `--report out.html`.
 */
import * as Config from "effect/Config"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { configIssue, duration, intInRange, positiveDuration } from "../runtime/config.ts"
import { queueList } from "./balancerConfig.ts"

const flag = (name: string) => Config.Boolean(name).pipe(Config.withDefault(false))

export const benchConfig = Config.all({
  rate: intInRange("TARGET_RATE", 1, 1_000_000).pipe(Config.withDefault(400)),
  duration: positiveDuration("DURATION").pipe(Config.withDefault(Duration.seconds(30))),
  concurrency: intInRange("CONCURRENCY", 1, 10_000).pipe(Config.withDefault(15)),
  timeout: positiveDuration("REQUEST_TIMEOUT").pipe(Config.withDefault(Duration.seconds(5))),
  requestQueue: Config.String("REQUEST_QUEUE").pipe(Config.withDefault("sales_requests")),
  workerQueues: queueList,
  direct: flag("DIRECT"),
  closedLoop: flag("CLOSED_LOOP"),
  sweep: flag("SWEEP"),
  p99Bound: positiveDuration("P99_BOUND", { bareUnit: "millis" }).pipe(Config.withDefault(Duration.millis(25))),
  sweepStart: intInRange("SWEEP_START", 1, 1_000_000).pipe(Config.withDefault(500)),
  sweepStep: intInRange("SWEEP_STEP", 1, 1_000_000).pipe(Config.withDefault(500)),
  sweepMax: intInRange("SWEEP_MAX", 1, 1_000_000).pipe(Config.withDefault(20_000)),
  sweepRefinements: intInRange("SWEEP_REFINEMENTS", 0, 10).pipe(Config.withDefault(1)),
  json: flag("JSON"),
  report: Config.option(Config.String("REPORT")),
  seed: intInRange("SEED", 0, 2 ** 31 - 1).pipe(Config.withDefault(1)),
  progressEvery: positiveDuration("PROGRESS_INTERVAL").pipe(Config.withDefault(Duration.seconds(1))),
  warmup: duration("WARMUP").pipe(Config.withDefault(Duration.seconds(3)))
}).pipe(Config.mapEffect((config) =>
  config.sweep && config.sweepMax < config.sweepStart
    ? Effect.fail(configIssue("SWEEP_MAX", `a rate at or above SWEEP_START (${config.sweepStart})`, `got ${config.sweepMax}`))
    : Effect.succeed(config)
))

export type BenchConfig = typeof benchConfig extends Config.Config<infer A> ? A : never
