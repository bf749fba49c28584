/**
 * A scheduler process around a set of jobs: its config (src/scheduler/config.ts), the store its
 * database config picks (layers/schedulerStore.ts), the ops server and telemetry, readiness, and
 * the graceful stop. `programs/scheduler.ts` is this with the registered jobs; a test fixture is
 * this with a job of its own.
 *
 * The jobs are checked before anything connects: a duplicate name or an invalid expression
 * stops the process at start with the job and the field named (exit 1).
 */
import { hostname } from "node:os"
import process from "node:process"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { load } from "../../src/runtime/config.ts"
import { OpsRoutes } from "../../src/runtime/OpsRoutes.ts"
import { opsTokenConfig } from "../../src/runtime/opsToken.ts"
import { jobDrainTimeout, schedulerConfig } from "../../src/scheduler/config.ts"
import { type JobDefinition, register } from "../../src/scheduler/job.ts"
import { makeJobsRoutes } from "../../src/scheduler/jobsApi.ts"
import { JobScheduler, makeScheduler } from "../../src/scheduler/scheduler.ts"
import * as Database from "../database.ts"
import * as Store from "../schedulerStore.ts"
import { baseLayer, loadBaseConfig, withReadiness } from "./program.ts"

export const schedulerProgram = (definitions: ReadonlyArray<JobDefinition<any, never>>) =>
  Effect.gen(function*() {
    const config = yield* load(schedulerConfig)
    const base = yield* loadBaseConfig(config.serviceName)
    const database = yield* load(Database.config)
    const token = yield* load(opsTokenConfig)
    const jobs = yield* register(definitions, { timeZone: config.timeZone, timeout: config.defaultTimeout })
    const instance = config.instance ?? `${hostname()}-${process.pid}`
    const scheduler = Layer.effect(
      JobScheduler,
      makeScheduler(jobs, {
        instance,
        maxConcurrent: config.maxConcurrent,
        // Less than the process deadline (the same variable), so the jobs still running can be
        // interrupted and recorded as such before the process is ended.
        shutdownTimeout: jobDrainTimeout(config.shutdownTimeout),
        retention: config.retention,
        lease: config.lease,
        sweepInterval: config.sweepInterval
      })
    )
    const run = Effect.gen(function*() {
      yield* Effect.log(`scheduler ${instance} on the ${Store.backendOf(database)} store, zone ${config.timeZone}`)
      return yield* JobScheduler.use((s) => s.run)
    })
    return yield* withReadiness(run, { scheduler: Effect.succeed(true) }).pipe(
      Effect.provide(OpsRoutes.layerMount("scheduler", makeJobsRoutes({ token })).pipe(
        Layer.provideMerge(scheduler),
        Layer.provideMerge(Store.layer(database)),
        Layer.provideMerge(baseLayer(base))
      ))
    )
  })
