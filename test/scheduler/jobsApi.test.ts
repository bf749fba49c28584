/**
 * The scheduler's ops routes through the ops app (`app.request()`, no server), on the memory
 * store under TestClock: the JSON of GET /jobs, the token on trigger/pause/resume (401 without or
 * with a wrong one, 403 when none is configured, 404 for an unknown job), a manual run recorded
 * as such, and the jobs page with its output escaped.
 */
import { describe, expect, test } from "bun:test"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as Metric from "effect/Metric"
import * as Redacted from "effect/Redacted"
import { TestClock } from "effect/testing"
import * as MemoryStore from "../../layers/memory/schedulerStore.ts"
import { SchedulerStore } from "../../src/capabilities/SchedulerStore.ts"
import { MetricsSource } from "../../src/runtime/MetricsSource.ts"
import { makeOpsApp } from "../../src/runtime/opsApp.ts"
import { OpsRoutes } from "../../src/runtime/OpsRoutes.ts"
import { tokensEqual } from "../../src/runtime/opsToken.ts"
import { Readiness } from "../../src/runtime/Readiness.ts"
import { type JobDefinition, register } from "../../src/scheduler/job.ts"
import { jobsRoutes } from "../../src/scheduler/jobsApi.ts"
import { escapeHtml } from "../../src/scheduler/jobsPage.ts"
import { makeScheduler } from "../../src/scheduler/scheduler.ts"

const TOKEN = "s3cret-token-of-some-length"
const T0 = Date.parse("2026-01-01T00:00:00Z")

const definitions: ReadonlyArray<JobDefinition<any, never>> = [
  { name: "tick", schedule: "@every 1m", run: Effect.void },
  { name: "nightly", schedule: "0 2 * * *", timeZone: "Europe/Berlin", run: Effect.void },
  { name: "broken", schedule: "@hourly", run: Effect.fail(new Error(`<script>alert("x")</script> & more`)) }
]

type Request = (path: string, init?: RequestInit) => Effect.Effect<Response>

/** An ops app with the jobs routes of a running scheduler mounted, at T0 on TestClock. */
const withApp = <A>(token: string | undefined, body: (request: Request) => Effect.Effect<A, unknown>) =>
  Effect.runPromise(Effect.scoped(Effect.gen(function*() {
    yield* TestClock.setTime(T0)
    const store = yield* MemoryStore.make()
    const jobs = yield* register(definitions, { timeZone: "UTC", timeout: Duration.seconds(300) })
    const scheduler = yield* makeScheduler(jobs, {
      instance: "replica-1",
      maxConcurrent: 10,
      shutdownTimeout: "30 seconds",
      retention: "7 days",
      sweepInterval: "1 hour"
    }).pipe(Effect.provideService(SchedulerStore, store))
    const fiber = yield* Effect.forkChild(scheduler.run, { startImmediately: true })
    yield* Effect.yieldNow
    const services = yield* Effect.context<never>()
    yield* OpsRoutes.use((r) =>
      r.mount("scheduler", jobsRoutes(scheduler, Effect.runPromiseWith(services), {
        token: token === undefined ? undefined : Redacted.make(token)
      }))
    )
    const app = yield* makeOpsApp
    const result = yield* body((path, init) => Effect.promise(async () => app.request(path, init)))
    yield* Fiber.interrupt(fiber)
    return result
  })).pipe(
    Effect.provide(Layer.mergeAll(
      TestClock.layer(),
      Logger.layer([]),
      Readiness.layer,
      OpsRoutes.layer,
      Layer.succeed(MetricsSource, MetricsSource.of({ render: Effect.succeed("") }))
    )),
    Effect.provideService(Metric.MetricRegistry, new Map())
  ))

const json = (response: Response) => Effect.promise(() => response.json() as Promise<any>)
const post = (request: Request, path: string, token?: string) =>
  request(path, { method: "POST", headers: token === undefined ? {} : { authorization: `Bearer ${token}` } })

describe("jobs API", () => {
  test("GET /jobs lists every job with its schedule, zone, next run in ISO 8601, pause flag and runs", () =>
    withApp(TOKEN, (request) =>
      Effect.gen(function*() {
        yield* TestClock.adjust("1 hour")
        const response = yield* request("/jobs")
        expect(response.status).toBe(200)
        const body = yield* json(response)
        expect(body.jobs.map((j: any) => [j.name, j.schedule, j.timeZone, j.nextRun, j.paused])).toEqual([
          ["tick", "@every 1m", "UTC", "2026-01-01T01:01:00.000Z", false],
          // 02:00 in Berlin is 01:00 UTC in winter.
          ["nightly", "0 2 * * *", "Europe/Berlin", "2026-01-02T01:00:00.000Z", false],
          ["broken", "@hourly", "UTC", "2026-01-01T02:00:00.000Z", false]
        ])
        const tick = body.jobs[0].recentRuns
        expect(tick).toHaveLength(10)
        expect(tick[0]).toEqual({
          scheduledAt: "2026-01-01T01:00:00.000Z",
          startedAt: "2026-01-01T01:00:00.000Z",
          endedAt: "2026-01-01T01:00:00.000Z",
          outcome: "succeeded",
          trigger: "schedule",
          attempt: 1,
          instance: "replica-1",
          error: null
        })
        expect(body.jobs[2].recentRuns[0]).toMatchObject({ outcome: "failed", error: `<script>alert("x")</script> & more` })
      })))

  test("trigger refuses a missing or wrong token (401), runs the job with the right one, recorded as manual", () =>
    withApp(TOKEN, (request) =>
      Effect.gen(function*() {
        yield* TestClock.adjust("30 seconds")
        const missing = yield* post(request, "/jobs/nightly/trigger")
        expect(missing.status).toBe(401)
        expect(missing.headers.get("www-authenticate")).toContain("Bearer")
        expect((yield* json(missing)).error).toContain("missing bearer token")
        const wrong = yield* post(request, "/jobs/nightly/trigger", `${TOKEN}x`)
        expect(wrong.status).toBe(401)
        expect((yield* json(wrong)).error).toBe("wrong token")
        const short = yield* post(request, "/jobs/nightly/trigger", TOKEN.slice(0, -1))
        expect(short.status).toBe(401)
        // Nothing ran for the refused requests.
        expect((yield* json(yield* request("/jobs"))).jobs[1].recentRuns).toEqual([])

        const ok = yield* post(request, "/jobs/nightly/trigger", TOKEN)
        expect(ok.status).toBe(202)
        expect(yield* json(ok)).toMatchObject({ triggered: true, run: { trigger: "manual", attempt: 1, scheduledAt: "2026-01-01T00:00:30.000Z" } })
        const runs = (yield* json(yield* request("/jobs"))).jobs[1].recentRuns
        expect(runs).toHaveLength(1)
        expect(runs[0]).toMatchObject({ trigger: "manual", outcome: "succeeded", instance: "replica-1" })
      })))

  test("an unknown job is 404 with the right token, 401 without", () =>
    withApp(TOKEN, (request) =>
      Effect.gen(function*() {
        for (const action of ["trigger", "pause", "resume"]) {
          const unknown = yield* post(request, `/jobs/nope/${action}`, TOKEN)
          expect(unknown.status).toBe(404)
          expect((yield* json(unknown)).error).toBe(`no job named "nope" is registered`)
          expect((yield* post(request, `/jobs/nope/${action}`)).status).toBe(401)
        }
      })))

  test("pause stops the scheduled runs and shows in /jobs; resume restarts them; both need the token", () =>
    withApp(TOKEN, (request) =>
      Effect.gen(function*() {
        expect((yield* post(request, "/jobs/tick/pause")).status).toBe(401)
        expect((yield* post(request, "/jobs/tick/pause", "wrong-token-wrong-token")).status).toBe(401)
        const paused = yield* post(request, "/jobs/tick/pause", TOKEN)
        expect(paused.status).toBe(200)
        expect(yield* json(paused)).toEqual({ name: "tick", paused: true })
        yield* TestClock.adjust("5 minutes")
        let tick = (yield* json(yield* request("/jobs"))).jobs[0]
        expect(tick.paused).toBe(true)
        expect(tick.recentRuns).toEqual([])
        expect((yield* post(request, "/jobs/tick/resume")).status).toBe(401)
        expect((yield* post(request, "/jobs/tick/resume", TOKEN)).status).toBe(200)
        yield* TestClock.adjust("2 minutes")
        tick = (yield* json(yield* request("/jobs"))).jobs[0]
        expect(tick.paused).toBe(false)
        expect(tick.recentRuns.map((r: any) => r.scheduledAt)).toEqual(["2026-01-01T00:07:00.000Z", "2026-01-01T00:06:00.000Z"])
      })))

  test("without OPS_TOKEN trigger, pause and resume are off (403, saying so) and GET /jobs still answers", () =>
    withApp(undefined, (request) =>
      Effect.gen(function*() {
        for (const action of ["trigger", "pause", "resume"]) {
          for (const token of [undefined, TOKEN, ""]) {
            const response = yield* post(request, `/jobs/tick/${action}`, token)
            expect(response.status).toBe(403)
            expect((yield* json(response)).error).toContain("set OPS_TOKEN")
          }
        }
        const jobs = (yield* json(yield* request("/jobs"))).jobs
        expect(jobs[0]).toMatchObject({ name: "tick", paused: false, recentRuns: [] })
      })))

  test("GET / renders the jobs page: jobs, next runs, history with outcomes, escaped, refreshing itself", () =>
    withApp(TOKEN, (request) =>
      Effect.gen(function*() {
        yield* TestClock.adjust("1 hour")
        const response = yield* request("/")
        expect(response.status).toBe(200)
        expect(response.headers.get("content-type")).toContain("text/html")
        const html = yield* Effect.promise(() => response.text())
        expect(html).toContain(`<meta http-equiv="refresh" content="5">`)
        expect(html).toContain(`data-job="nightly"`)
        expect(html).toContain(`<time datetime="2026-01-02T01:00:00.000Z">`)
        expect(html).toMatch(/<td class="outcome">failed<\/td>/)
        expect(html).toContain("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; more")
        expect(html).not.toContain("<script>")
      })))
})

describe("ops token", () => {
  test("tokensEqual is true only for the same token", () => {
    expect(tokensEqual(TOKEN, TOKEN)).toBe(true)
    expect(tokensEqual("", TOKEN)).toBe(false)
    expect(tokensEqual(TOKEN.slice(0, -1), TOKEN)).toBe(false)
    expect(tokensEqual(`${TOKEN}${TOKEN}`, TOKEN)).toBe(false)
    expect(tokensEqual(TOKEN.toUpperCase(), TOKEN)).toBe(false)
    expect(tokensEqual("ä", "a")).toBe(false)
  })

  test("escapeHtml escapes the five characters HTML gives meaning", () => {
    expect(escapeHtml(`<a href="x">'&'</a>`)).toBe("&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;")
  })
})
