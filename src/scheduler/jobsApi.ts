/**
 * The scheduler's ops routes (SPEC §3), mounted on the ops server through `OpsRoutes`:
 *
 * - `GET /jobs`: every job with its schedule, zone, next run (ISO 8601), pause flag and latest
 *   runs, as JSON;
 * - `POST /jobs/:name/trigger`: runs the job now, recorded as `manual` (202 with the run; 409
 *   when it was skipped: concurrency limit, overlap, another replica);
 * - `POST /jobs/:name/pause`, `/resume`: on every replica (the flag lives in the store);
 * - `GET /`: the jobs page (jobsPage.ts).
 *
 * The three POSTs change state: they need `Authorization: Bearer <OPS_TOKEN>` (401 without it or
 * with a wrong one) and are off when no token is configured (403). An unknown job is 404; a
 * store that cannot answer is 503.
 */
import * as Effect from "effect/Effect"
import type * as Redacted from "effect/Redacted"
import { type Context as HonoContext, Hono } from "hono"
import type { Run } from "../capabilities/SchedulerStore.ts"
import { requireOpsToken } from "../runtime/opsToken.ts"
import { renderJobsPage } from "./jobsPage.ts"
import { type JobStatus, JobScheduler, type Scheduler, type TriggerResult } from "./scheduler.ts"

export interface JobsApiOptions {
  /** `OPS_TOKEN`; undefined turns trigger, pause and resume off. */
  readonly token: Redacted.Redacted<string> | undefined
  /** Runs listed per job [10]. */
  readonly recent?: number
  /** How often the page reloads itself, in seconds [5]. */
  readonly refreshSeconds?: number
}

const runJson = (run: Run) => ({
  scheduledAt: run.scheduledAt.toISOString(),
  startedAt: run.startedAt.toISOString(),
  endedAt: run.endedAt?.toISOString() ?? null,
  outcome: run.outcome,
  trigger: run.trigger,
  attempt: run.attempt,
  instance: run.instance,
  error: run.error
})

export const jobJson = (job: JobStatus) => ({
  name: job.name,
  schedule: job.schedule,
  timeZone: job.timeZone,
  nextRun: job.nextRun?.toISOString() ?? null,
  paused: job.paused,
  recentRuns: job.recentRuns.map(runJson)
})

const triggerJson = (result: TriggerResult) =>
  result._tag === "Started"
    ? { triggered: true, run: runJson(result.run) }
    : { triggered: false, reason: result.reason }

/** The routes over `scheduler`; `run` runs an effect with the caller's services (its Clock, logger). */
export const jobsRoutes = (
  scheduler: Scheduler,
  run: <A>(effect: Effect.Effect<A>) => Promise<A>,
  options: JobsApiOptions
): Hono => {
  const recent = options.recent ?? 10
  // Every failure becomes an answer: 404 for an unknown job, 503 for a store that did not answer.
  const answer = async <A>(
    c: HonoContext,
    effect: Effect.Effect<A, { readonly _tag: string; readonly message: string }>,
    ok: (value: A) => Response
  ) => {
    const result = await run(Effect.result(effect))
    if (result._tag === "Success") return ok(result.success)
    const error = result.failure
    return error._tag === "UnknownJobError"
      ? c.json({ error: error.message }, 404)
      : c.json({ error: error.message }, 503)
  }
  const guard = requireOpsToken(options.token)
  return new Hono()
    .get("/jobs", (c) => answer(c, scheduler.status(recent), (jobs) => c.json({ jobs: jobs.map(jobJson) })))
    .post("/jobs/:name/trigger", guard, (c) =>
      answer(c, scheduler.trigger(c.req.param("name")), (result) => c.json(triggerJson(result), result._tag === "Started" ? 202 : 409)))
    .post("/jobs/:name/pause", guard, (c) =>
      answer(c, scheduler.pause(c.req.param("name")), () => c.json({ name: c.req.param("name"), paused: true })))
    .post("/jobs/:name/resume", guard, (c) =>
      answer(c, scheduler.resume(c.req.param("name")), () => c.json({ name: c.req.param("name"), paused: false })))
    .get("/", (c) =>
      answer(c, scheduler.status(recent), (jobs) => c.html(renderJobsPage(jobs, { refreshSeconds: options.refreshSeconds ?? 5 }))))
}

/** The routes over the `JobScheduler` service, running effects with the services of where it is built. */
export const makeJobsRoutes = (options: JobsApiOptions) =>
  Effect.gen(function*() {
    const scheduler = yield* JobScheduler
    const services = yield* Effect.context<never>()
    return jobsRoutes(scheduler, (effect) => Effect.runPromiseWith(services)(effect), options)
  })
