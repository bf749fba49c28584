/**
 * The jobs `programs/scheduler.ts` registers, and the services they run with:
 *
 * - `heartbeat` and `flaky` (src/scheduler/jobs/examples.ts) always: they need nothing;
 * - `database-cleanup` when `CLEANUP_TABLES` is set, on the store's database (PostgreSQL, or
 *   PGlite in `PGLITE_DATA_DIR`); set without a database it stops the start naming the variable,
 *   since an in-memory database has nothing to clean;
 * - `weekly-report` on PostgreSQL (where the orders tables of the orders API live), publishing
 *   to `WEEKLY_REPORT_TOPIC` [reports] on the broker `BROKER` names [rabbitmq here: a report on
 *   the in-process memory broker would reach no one], with readiness check "broker".
 *
 * Both database jobs use the store's own database layer, so one pool serves all.
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { Publisher } from "../src/capabilities/Publisher.ts"
import { configIssue, load, toConfigError } from "../src/runtime/config.ts"
import { Readiness } from "../src/runtime/Readiness.ts"
import { cleanupConfig, databaseCleanup } from "../src/scheduler/jobs/databaseCleanup.ts"
import { examples } from "../src/scheduler/jobs/examples.ts"
import { weeklyReport, weeklyReportTopic } from "../src/scheduler/jobs/weeklyReport.ts"
import type { JobDefinition } from "../src/scheduler/job.ts"
import * as Broker from "./broker.ts"
import type { JobsSetup, SchedulerEnv } from "./platform/schedulerProgram.ts"

export const schedulerJobs = (env: SchedulerEnv) =>
  Effect.gen(function*() {
    const cleanup = yield* load(cleanupConfig)
    const definitions: Array<JobDefinition<any, any>> = [...examples]
    const layers: Array<Layer.Layer<any, unknown, any>> = []
    if (cleanup !== undefined) {
      if (env.backend === "memory") {
        return yield* Effect.fail(toConfigError(configIssue(
          "CLEANUP_TABLES",
          "a database to clean (DATABASE_URL, DB_* or PGLITE_DATA_DIR)",
          "no database is configured"
        )))
      }
      definitions.push(databaseCleanup(cleanup))
    }
    if (env.backend === "postgres") {
      const topic = yield* load(weeklyReportTopic)
      const broker = yield* load(Broker.configWithDefault("rabbitmq"))
      definitions.push(weeklyReport({ topic, timeZone: env.config.timeZone }))
      layers.push(Layer.provideMerge(
        Readiness.layerCheck("broker", Publisher.use((p) => p.healthy)),
        Broker.publisherLayer(broker)
      ))
    }
    if (definitions.length > examples.length) layers.push(env.database)
    return {
      definitions,
      services: layers.length === 0 ? Layer.empty : Layer.mergeAll(...(layers as [Layer.Layer<any, unknown, any>]))
    } as JobsSetup<any>
  })
