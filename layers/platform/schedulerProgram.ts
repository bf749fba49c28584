/**
 * A scheduler process around a set of jobs: its config (src/scheduler/config.ts), the store its
 * database config picks (layers/schedulerStore.ts), the ops server with the jobs API and page
 * (src/scheduler/jobsApi.ts; `OPS_TOKEN` guards trigger, pause and resume) and telemetry,
 * readiness, and the graceful stop. `programs/scheduler.ts` is this with the registered jobs; a test
 * fixture is this with a job of its own.
 *
 * Jobs that need services (a database, a publisher) come from a setup function: it is handed the
 * store's backend and its database layer — the same layer value, so the jobs share the store's
 * pool (or its one embedded PGlite) instead of opening another — and answers the definitions and
 * a layer for what they need. Its config is read before anything connects.
 *
 * The jobs are checked before anything connects: a duplicate name or an invalid expression
 * stops the process at start with the job and the field named (exit 1).
 */
import { hostname } from "node:os"
import process from "node:process"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type { SqlDatabase, SqlError } from "../../src/capabilities/SqlDatabase.ts"
import { type ConfigError, load } from "../../src/runtime/config.ts"
import { OpsRoutes } from "../../src/runtime/OpsRoutes.ts"
import { opsTokenConfig } from "../../src/runtime/opsToken.ts"
import type { Readiness } from "../../src/runtime/Readiness.ts"
import { jobDrainTimeout, type SchedulerConfig, schedulerConfig } from "../../src/scheduler/config.ts"
import { type JobDefinition, register } from "../../src/scheduler/job.ts"
import { makeJobsRoutes } from "../../src/scheduler/jobsApi.ts"
import { JobScheduler, makeScheduler } from "../../src/scheduler/scheduler.ts"
import * as Database from "../database.ts"
import * as Store from "../schedulerStore.ts"
import { baseLayer, loadBaseConfig, withReadiness } from "./program.ts"

export interface SchedulerEnv {
  readonly backend: Store.Backend
  /** The store's database (on the memory store: an in-memory PGlite, built only if used). */
  readonly database: Layer.Layer<SqlDatabase, SqlError>
  readonly config: SchedulerConfig
}

export interface JobsSetup<R> {
  readonly definitions: ReadonlyArray<JobDefinition<any, R>>
  /** What the jobs need; built after the store, torn down before it. */
  readonly services: Layer.Layer<R, unknown, Readiness>
}

export const schedulerProgram = <R = never>(
  jobs: ReadonlyArray<JobDefinition<any, never>> | ((env: SchedulerEnv) => Effect.Effect<JobsSetup<R>, ConfigError>)
) =>
  Effect.gen(function*() {
    const config = yield* load(schedulerConfig)
    const base = yield* loadBaseConfig(config.serviceName)
    const databaseOptions = yield* load(Database.config)
    const token = yield* load(opsTokenConfig)
    const database = Database.layer(databaseOptions)
    const backend = Store.backendOf(databaseOptions)
    const setup: JobsSetup<R> = typeof jobs === "function"
      ? yield* jobs({ backend, database, config })
      : { definitions: jobs as ReadonlyArray<JobDefinition<any, R>>, services: Layer.empty as Layer.Layer<R> }
    const registered = yield* register(setup.definitions, { timeZone: config.timeZone, timeout: config.defaultTimeout })
    const instance = config.instance ?? `${hostname()}-${process.pid}`
    const scheduler = Layer.effect(
      JobScheduler,
      makeScheduler(registered, {
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
      yield* Effect.log(`scheduler ${instance} on the ${backend} store, zone ${config.timeZone}`)
      return yield* JobScheduler.use((s) => s.run)
    })
    return yield* withReadiness(run, { scheduler: Effect.succeed(true) }).pipe(
      Effect.provide(OpsRoutes.layerMount("scheduler", makeJobsRoutes({ token })).pipe(
        Layer.provideMerge(scheduler),
        Layer.provideMerge(setup.services),
        Layer.provideMerge(Store.layer(databaseOptions, database)),
        Layer.provideMerge(baseLayer(base))
      ))
    )
  })
