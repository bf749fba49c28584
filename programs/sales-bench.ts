/**
 * The sales benchmark client (SPEC §5): open-loop load at TARGET_RATE [400] requests/s for
 * DURATION [30s] over CONCURRENCY [15] channels, random queries, latency from each request's
 * scheduled time (corrected for coordinated omission) into an HDR histogram, REQUEST_TIMEOUT [5s]
 * per request; replies come back on an exclusive reply queue. Sends to REQUEST_QUEUE
 * [sales_requests] (the balancer), or with --direct round robin to WORKER_QUEUES. --sweep steps
 * the rate up until p99 passes --p99-bound [25ms]. --json prints one JSON document (progress
 * goes to stderr); --report FILE.html writes the latency-by-percentile chart. Broker: BROKER
 * [rabbitmq], RABBITMQ_URL; RABBITMQ_DIRECT_DELIVERY [persistent] or transient for its requests. See
 * src/sales/benchConfig.ts for every setting.
 *
 *   bun run programs/sales-bench.ts [--target-rate 5000] [--duration 10s] [--direct] [--sweep] [--json] [--report out.html]
 */
import { writeFile } from "node:fs/promises"
import process from "node:process"
import * as Effect from "effect/Effect"
import * as Broker from "../layers/broker.ts"
import { hdrHistogram } from "../layers/bench/hdrHistogram.ts"
import { runMain } from "../layers/platform/runMain.ts"
import { load } from "../src/runtime/config.ts"
import { benchConfig } from "../src/sales/benchConfig.ts"
import { progressLine } from "../src/sales/benchReport.ts"
import { benchFromConfig } from "../src/sales/benchRun.ts"

const write = (stream: NodeJS.WriteStream, text: string) => Effect.sync(() => void stream.write(text))

const program = Effect.gen(function*() {
  const config = yield* load(benchConfig)
  const broker = yield* load(Broker.configWithDefault("rabbitmq"))
  // Progress rewrites one line on a terminal; elsewhere (a pipe, a log) it is a line each time.
  const progressTo = config.json ? process.stderr : process.stdout
  const live = progressTo.isTTY === true
  const outcome = yield* benchFromConfig(config, hdrHistogram, {
    progress: (p) => live ? write(progressTo, `\r\x1b[K${progressLine(p)}`) : write(progressTo, `${progressLine(p)}\n`),
    endProgress: live ? write(progressTo, "\r\x1b[K") : Effect.void,
    text: (text) => write(config.json ? process.stderr : process.stdout, `${text}\n`)
  }).pipe(Effect.provide(Broker.layer(broker)))
  if (config.json) yield* write(process.stdout, `${outcome.json}\n`)
  if (config.report._tag === "Some" && outcome.html !== undefined) {
    const path = config.report.value
    yield* Effect.promise(() => writeFile(path, outcome.html!))
    yield* write(config.json ? process.stderr : process.stdout, `report written to ${path}\n`)
  }
})

runMain(program, { name: "sales-bench" })
