/**
 * The cron scheduler (SPEC §3): runs the registered jobs at their occurrences, each once across
 * every replica sharing its PostgreSQL, with per-job timeouts, retries, at most
 * WORKER_MAX_CONCURRENT_JOBS [10] at once, and run history. Settings: src/scheduler/config.ts.
 *
 * Store: DATABASE_URL or DB_* → PostgreSQL (replicas), PGLITE_DATA_DIR → embedded PGlite, else in
 * memory. SIGTERM stops triggering, lets running jobs finish within SHUTDOWN_TIMEOUT [30s],
 * interrupts and records the rest.
 *
 *   bun run programs/scheduler.ts
 */
import { hostname } from "node:os"
import process from "node:process"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Database from "../layers/database.ts"
import { baseLayer, loadBaseConfig, withReadiness } from "../layers/platform/program.ts"
import { runMain } from "../layers/platform/runMain.ts"
import * as Store from "../layers/schedulerStore.ts"
import { load } from "../src/runtime/config.ts"
import { jobDrainTimeout, schedulerConfig } from "../src/scheduler/config.ts"
import { register } from "../src/scheduler/job.ts"
import { examples } from "../src/scheduler/jobs/examples.ts"
import { makeScheduler } from "../src/scheduler/scheduler.ts"

const program = Effect.gen(function*() {
  const config = yield* load(schedulerConfig)
  const base = yield* loadBaseConfig(config.serviceName)
  const database = yield* load(Database.config)
  const jobs = yield* register(examples, { timeZone: config.timeZone, timeout: config.defaultTimeout })
  const instance = config.instance ?? `${hostname()}-${process.pid}`
  const run = Effect.gen(function*() {
    const scheduler = yield* makeScheduler(jobs, {
      instance,
      maxConcurrent: config.maxConcurrent,
      shutdownTimeout: jobDrainTimeout(config.shutdownTimeout),
      retention: config.retention,
      lease: config.lease,
      sweepInterval: config.sweepInterval
    })
    yield* Effect.log(`scheduler ${instance} on the ${Store.backendOf(database)} store, zone ${config.timeZone}`)
    return yield* scheduler.run
  })
  yield* withReadiness(run, { scheduler: Effect.succeed(true) }).pipe(
    Effect.provide(Store.layer(database).pipe(Layer.provideMerge(baseLayer(base))))
  )
})

runMain(program, { name: "scheduler" })
