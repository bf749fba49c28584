/**
 * programs/scheduler.ts as a process: on the embedded store its example jobs fire (the flaky one
 * failing, then retried) and SIGTERM exits 0; on a real PostgreSQL the run history lands in its
 * tables; a bad setting exits 2 naming the variable.
 */
import { afterAll, describe, expect, test } from "bun:test"
import { PGlite } from "@electric-sql/pglite"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as amqp from "amqplib"
import postgres from "postgres"
import * as Orders from "../../src/orders/sql.ts"
import { freshDatabases } from "../support/databases.ts"
import { opsUrl, startProgram } from "../support/program.ts"
import { postgresUrl, probePostgres, rabbitmqUrl, requireServer } from "../support/servers.ts"

describe("programs/scheduler.ts", () => {
  test("on the embedded store it runs the example jobs, retries the flaky one, is ready, and SIGTERM exits 0", async () => {
    const program = startProgram("scheduler.ts", { DATABASE_URL: "", PGLITE_DATA_DIR: "" })
    try {
      await program.waitFor(/on the memory store, zone UTC/, 60_000)
      await program.waitFor(/job heartbeat attempt 1 succeeded/, 30_000)
      await program.waitFor(/job flaky attempt 1 failed: flaky: the first attempt always fails/, 30_000)
      await program.waitFor(/job flaky attempt 2 succeeded/, 30_000)
      const ready = await fetch(`${await opsUrl(program)}/readyz`)
      expect(ready.status).toBe(200)
      expect(((await ready.json()) as { checks: Record<string, boolean> }).checks).toMatchObject({ scheduler: true })
      const metrics = await (await fetch(`${await opsUrl(program)}/metrics`)).text()
      expect(metrics).toMatch(/scheduler_job_runs_total\{[^}]*job="flaky"[^}]*outcome="failed"[^}]*\} [1-9]/)
      expect(metrics).toMatch(/scheduler_job_lateness_seconds_count\{[^}]*job="heartbeat"/)
    } finally {
      program.kill("SIGTERM")
    }
    expect(await program.exited).toBe(0)
  }, 90_000)

  test("with PGLITE_DATA_DIR its history is kept in embedded PGlite across a restart", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "scheduler-pglite-"))
    try {
      const first = startProgram("scheduler.ts", { DATABASE_URL: "", PGLITE_DATA_DIR: dataDir, SCHEDULER_INSTANCE_ID: "first" })
      try {
        await first.waitFor(/on the pglite store/, 60_000)
        await first.waitFor(/job heartbeat attempt 1 succeeded/, 30_000)
        const ready = await fetch(`${await opsUrl(first)}/readyz`)
        expect(((await ready.json()) as { checks: Record<string, boolean> }).checks).toMatchObject({ database: true, scheduler: true })
      } finally {
        first.kill("SIGTERM")
      }
      expect(await first.exited).toBe(0)
      const second = startProgram("scheduler.ts", { DATABASE_URL: "", PGLITE_DATA_DIR: dataDir, SCHEDULER_INSTANCE_ID: "second" })
      try {
        await second.waitFor(/job heartbeat attempt 1 succeeded/, 60_000)
      } finally {
        second.kill("SIGTERM")
      }
      expect(await second.exited).toBe(0)
      const db = new PGlite({ dataDir })
      try {
        const rows = (await db.query<{ instance: string; n: number }>(
          "select instance, count(*)::int as n from scheduler_runs where job = 'heartbeat' group by instance order by instance"
        )).rows
        expect(rows.map((r) => r.instance)).toEqual(["first", "second"])
      } finally {
        await db.close()
      }
    } finally {
      rmSync(dataDir, { recursive: true, force: true })
    }
  }, 120_000)

  test("its ops server serves GET /jobs, the jobs page, and trigger/pause/resume behind OPS_TOKEN", async () => {
    const token = "program-test-token-0123456789"
    const program = startProgram("scheduler.ts", { DATABASE_URL: "", PGLITE_DATA_DIR: "", OPS_TOKEN: token })
    try {
      await program.waitFor(/scheduler .* started with 2 jobs/, 60_000)
      const ops = await opsUrl(program)
      const jobs = (await (await fetch(`${ops}/jobs`)).json()) as { jobs: Array<{ name: string; nextRun: string; paused: boolean }> }
      expect(jobs.jobs.map((j) => j.name)).toEqual(["heartbeat", "flaky"])
      for (const job of jobs.jobs) expect(job.nextRun).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/)
      const post = (path: string, bearer?: string) =>
        fetch(`${ops}${path}`, { method: "POST", headers: bearer === undefined ? {} : { authorization: `Bearer ${bearer}` } })
      expect((await post("/jobs/heartbeat/trigger")).status).toBe(401)
      expect((await post("/jobs/heartbeat/trigger", "not-the-token-not-the-token")).status).toBe(401)
      expect((await post("/jobs/nothing/trigger", token)).status).toBe(404)
      const triggered = await post("/jobs/heartbeat/trigger", token)
      expect(triggered.status).toBe(202)
      const run = ((await triggered.json()) as { run: { scheduledAt: string; trigger: string } }).run
      expect(run.trigger).toBe("manual")
      const after = (await (await fetch(`${ops}/jobs`)).json()) as { jobs: Array<{ recentRuns: Array<{ scheduledAt: string; trigger: string }> }> }
      expect(after.jobs[0]!.recentRuns.filter((r) => r.trigger === "manual").map((r) => r.scheduledAt)).toEqual([run.scheduledAt])
      expect((await post("/jobs/flaky/pause", token)).status).toBe(200)
      const page = await (await fetch(`${ops}/`)).text()
      expect(page).toContain(`data-job="heartbeat"`)
      expect(page).toMatch(/flaky <span class="paused">paused<\/span>/)
      expect(page).toContain(`data-trigger="manual"`)
    } finally {
      program.kill("SIGTERM")
    }
    expect(await program.exited).toBe(0)
  }, 90_000)

  test("programs/scheduler-demo.ts prints the history of a few seconds of @every jobs, one retried, and exits 0", async () => {
    const program = startProgram("scheduler-demo.ts", {})
    expect(await program.exited).toBe(0)
    const out = program.stdout()
    expect(out).toContain("every tick ran, the flaky job's failed first attempts were retried, overlapping slow runs were skipped")
    expect(out).toMatch(/│ flaky │ [\d:.]+ │ schedule │ 1 +│ failed +│/)
    expect(out).toMatch(/│ flaky │ [\d:.]+ │ schedule │ 2 +│ succeeded +│/)
    expect(out).toMatch(/│ tick +│ [\d:.]+ │ manual +│/)
    expect(out).not.toContain("PROBLEM")
  }, 60_000)

  test("without OPS_TOKEN trigger is off (403) and GET /jobs answers", async () => {
    const program = startProgram("scheduler.ts", { DATABASE_URL: "", PGLITE_DATA_DIR: "", OPS_TOKEN: "" })
    try {
      await program.waitFor(/scheduler .* started with 2 jobs/, 60_000)
      const ops = await opsUrl(program)
      expect((await fetch(`${ops}/jobs`)).status).toBe(200)
      const refused = await fetch(`${ops}/jobs/heartbeat/trigger`, { method: "POST", headers: { authorization: "Bearer anything-anything-anything" } })
      expect(refused.status).toBe(403)
    } finally {
      program.kill("SIGTERM")
    }
    expect(await program.exited).toBe(0)
  }, 90_000)

  for (
    const [variable, value] of [
      ["TZ", "Mars/Olympus_Mons"],
      ["WORKER_MAX_CONCURRENT_JOBS", "0"],
      ["OPS_TOKEN", "short"],
      // Without a database there is nothing to clean.
      ["CLEANUP_TABLES", "sessions"]
    ] as const
  ) {
    test(`${variable}=${value} exits 2 naming ${variable}`, async () => {
      const program = startProgram("scheduler.ts", { DATABASE_URL: "", [variable]: value })
      expect(await program.exited).toBe(2)
      expect(program.stderr()).toContain(variable)
    }, 60_000)
  }
})

const fixture = join(import.meta.dir, "..", "fixtures", "scheduler-long-job.ts")
const replicaFixture = join(import.meta.dir, "..", "fixtures", "scheduler-replica.ts")

interface RunRow {
  readonly job: string
  readonly scheduled_at: Date
  readonly attempt: number
  readonly outcome: string
  readonly instance: string
  readonly error: string | null
}

const runsIn = async (database: string): Promise<ReadonlyArray<RunRow>> => {
  const sql = postgres(database, { max: 1, onnotice: () => {} })
  try {
    return await sql<RunRow[]>`select job, scheduled_at, attempt, outcome, instance, error from scheduler_runs order by started_at, attempt`
  } finally {
    await sql.end()
  }
}

const url = postgresUrl()
if (await requireServer("PostgreSQL", probePostgres(url))) {
  const databases = freshDatabases()
  afterAll(() => databases.dropAll())

  test("on PostgreSQL the runs are claimed and recorded in scheduler_runs; SIGTERM exits 0", async () => {
    const database = await databases.create("scheduler")
    const program = startProgram("scheduler.ts", { DATABASE_URL: database, SCHEDULER_INSTANCE_ID: "replica-1" })
    try {
      await program.waitFor(/on the postgres store/, 60_000)
      await program.waitFor(/job flaky attempt 2 succeeded/, 30_000)
      const ready = await fetch(`${await opsUrl(program)}/readyz`)
      expect(((await ready.json()) as { checks: Record<string, boolean> }).checks).toMatchObject({ database: true, scheduler: true })
    } finally {
      program.kill("SIGTERM")
    }
    expect(await program.exited).toBe(0)
    {
      const runs = await runsIn(database)
      expect(runs.length).toBeGreaterThan(0)
      expect(runs.every((r) => r.instance === "replica-1")).toBe(true)
      expect(runs.some((r) => r.job === "heartbeat" && r.outcome === "succeeded")).toBe(true)
      const flaky = runs.filter((r) => r.job === "flaky")
      expect(flaky.find((r) => r.attempt === 1)).toMatchObject({ outcome: "failed", error: "flaky: the first attempt always fails" })
      expect(flaky.find((r) => r.attempt === 2)).toMatchObject({ outcome: "succeeded" })
      expect(runs.some((r) => r.outcome === "running")).toBe(false)
    }
  }, 90_000)

  test("on PostgreSQL with RabbitMQ it registers database-cleanup and weekly-report; triggered through the API they clean a table and publish a report", async () => {
    const database = await databases.create("scheduler_jobs")
    const sql = postgres(database, { max: 1, onnotice: () => {} })
    const exchange = `reports_${crypto.randomUUID().slice(0, 8)}`
    const connection = await amqp.connect(rabbitmqUrl())
    const token = "program-jobs-token-0123456789"
    try {
      await sql`create table sessions (id int primary key, deleted_at timestamptz)`
      await sql`insert into sessions select g, now() - interval '100 days' from generate_series(1, 1500) g`
      await sql`insert into sessions values (9001, now() - interval '10 days'), (9002, null)`
      const channel = await connection.createChannel()
      await channel.assertExchange(exchange, "topic", { durable: true })
      const { queue } = await channel.assertQueue("", { exclusive: true })
      await channel.bindQueue(queue, exchange, "#")
      const received = new Promise<string>((resolve) => {
        void channel.consume(queue, (message) => message !== null && resolve(message.content.toString("utf8")), { noAck: true })
      })
      const program = startProgram("scheduler.ts", {
        DATABASE_URL: database,
        OPS_TOKEN: token,
        CLEANUP_TABLES: "sessions",
        CLEANUP_BATCH_SIZE: "400",
        WEEKLY_REPORT_TOPIC: exchange,
        RABBITMQ_URL: rabbitmqUrl()
      })
      try {
        await program.waitFor(/scheduler .* started with 4 jobs/, 60_000)
        const ops = await opsUrl(program)
        const jobs = (await (await fetch(`${ops}/jobs`)).json()) as { jobs: Array<{ name: string; schedule: string }> }
        expect(jobs.jobs.map((j) => [j.name, j.schedule])).toEqual([
          ["heartbeat", "@every 2s"], ["flaky", "@every 5s"], ["database-cleanup", "0 2 * * *"], ["weekly-report", "0 8 * * 1"]
        ])
        const ready = (await (await fetch(`${ops}/readyz`)).json()) as { checks: Record<string, boolean> }
        expect(ready.checks).toMatchObject({ database: true, broker: true, scheduler: true })
        const trigger = (name: string) => fetch(`${ops}/jobs/${name}/trigger`, { method: "POST", headers: { authorization: `Bearer ${token}` } })
        expect((await trigger("database-cleanup")).status).toBe(202)
        await program.waitFor(/deleted 1500 rows of sessions soft-deleted before .* \(4 batches\)/, 30_000)
        expect((await trigger("weekly-report")).status).toBe(202)
        // The orders tables are the orders API's: this database has none yet, so the report fails and says why.
        await program.waitFor(/job weekly-report attempt 1 failed: .*relation \\?"orders\\?" does not exist/, 30_000)
        await sql.unsafe(Orders.migrations.map((m) => m.up).join(";\n"))
        expect((await trigger("weekly-report")).status).toBe(202)
        const report = JSON.parse(await received) as Record<string, unknown>
        expect(report).toMatchObject({ report: "weekly-orders", timeZone: "UTC", orders: 0, revenueCents: 0 })
      } finally {
        program.kill("SIGTERM")
      }
      expect(await program.exited).toBe(0)
      expect((await sql<{ id: number }[]>`select id from sessions order by id`).map((r) => r.id)).toEqual([9001, 9002])
    } finally {
      await connection.close()
      await sql.end()
    }
  }, 120_000)

  /** Starts the fixture, waits for its job to start, sends SIGTERM; the started occurrence and how long the stop took. */
  const stopDuringJob = async (env: Record<string, string>) => {
    const database = await databases.create("scheduler_stop")
    const program = startProgram(fixture, { DATABASE_URL: database, ...env })
    let started: string
    try {
      const line = await program.waitFor(/long job started: /, 60_000)
      started = /long job started: ([0-9T:.Z-]+)/.exec(line)![1]!
    } finally {
      program.kill("SIGTERM")
    }
    const signalled = Date.now()
    const code = await program.exited
    return { code, seconds: (Date.now() - signalled) / 1000, started, runs: await runsIn(database), stderr: program.stderr() }
  }

  test("SIGTERM with a job running that ends within the deadline: it finishes, is recorded succeeded, exit 0", async () => {
    const stop = await stopDuringJob({ JOB_SECONDS: "2", SHUTDOWN_TIMEOUT: "20s" })
    expect(stop.code).toBe(0)
    const run = stop.runs.find((r) => r.scheduled_at.toISOString() === stop.started)
    expect(run).toMatchObject({ job: "long", attempt: 1, outcome: "succeeded", error: null })
    expect(stop.stderr).toContain("long job done")
    expect(stop.runs.some((r) => r.outcome === "running")).toBe(false)
    expect(stop.seconds).toBeLessThan(15)
  }, 90_000)

  test("SIGTERM with a job running past the deadline: it is interrupted before the process deadline and recorded interrupted, exit 0", async () => {
    const stop = await stopDuringJob({ JOB_SECONDS: "600", SHUTDOWN_TIMEOUT: "3s" })
    expect(stop.code).toBe(0)
    const run = stop.runs.find((r) => r.scheduled_at.toISOString() === stop.started)
    expect(run).toMatchObject({ job: "long", attempt: 1, outcome: "interrupted" })
    expect(run!.error).toContain("interrupted")
    expect(stop.stderr).not.toContain("long job done")
    expect(stop.stderr).toContain("still running after 2s; interrupting them")
    expect(stop.seconds).toBeGreaterThanOrEqual(1.9)
    expect(stop.seconds).toBeLessThan(3)
  }, 90_000)

  test("three replicas on one PostgreSQL: every occurrence runs once; a replica killed mid-run has its run retried by another", async () => {
    const database = await databases.create("scheduler_replicas")
    const env = { DATABASE_URL: database, SCHEDULER_LEASE: "2s", SCHEDULER_SWEEP_INTERVAL: "500ms", SHUTDOWN_TIMEOUT: "10s" }
    const replicas = ["r1", "r2", "r3"].map((id) => ({ id, program: startProgram(replicaFixture, { ...env, SCHEDULER_INSTANCE_ID: id }) }))
    let killed: { id: string; occurrence: string } | undefined
    try {
      await Promise.all(replicas.map((r) => r.program.waitFor(/on the postgres store/, 60_000)))
      // The first replica to start a `slow` run is killed in the middle of it.
      const started = await Promise.any(replicas.map(async (r) => ({ r, line: await r.program.waitFor(/slow started .* attempt 1/, 60_000) })))
      started.r.program.kill("SIGKILL")
      killed = { id: started.r.id, occurrence: /slow started (\S+)/.exec(started.line)![1]! }
      const survivors = replicas.filter((r) => r !== started.r)
      await Promise.any(survivors.map((r) => r.program.waitFor(new RegExp(`slow started ${killed!.occurrence.replaceAll(".", "\\.")} attempt 2`), 30_000)))
      // a few more seconds of ticks on the survivors
      await Promise.any(survivors.map((r) => r.program.waitFor(/job slow attempt 2 succeeded/, 30_000)))
    } finally {
      for (const r of replicas) r.program.kill("SIGTERM")
    }
    for (const r of replicas) {
      const code = await r.program.exited
      if (r.id !== killed?.id) expect(code).toBe(0)
    }
    const runs = await runsIn(database)

    // Every `tick` occurrence from the first to the last is in the history exactly once...
    const ticks = runs.filter((r) => r.job === "tick").map((r) => r.scheduled_at.getTime()).sort((a, b) => a - b)
    expect(new Set(ticks).size).toBe(ticks.length)
    expect(ticks.length).toBeGreaterThan(5)
    expect((ticks.at(-1)! - ticks[0]!) / 1000 + 1).toBe(ticks.length)
    // ...and was executed exactly once, across all three processes.
    const executed = replicas.flatMap((r) => [...r.program.stderr().matchAll(/tick ran (\S+?)"/g)].map((m) => m[1]!))
    expect(new Set(executed).size).toBe(executed.length)
    const succeeded = runs.filter((r) => r.job === "tick" && r.outcome === "succeeded").length
    expect(executed.length).toBeGreaterThanOrEqual(succeeded)
    expect(executed.length).toBeLessThanOrEqual(ticks.length)

    // The killed replica's run: interrupted when its lease lapsed, then retried elsewhere.
    const slow = runs.filter((r) => r.job === "slow" && r.scheduled_at.toISOString() === killed!.occurrence)
    expect(slow.map((r) => [r.attempt, r.outcome])).toEqual([[1, "interrupted"], [2, "succeeded"]])
    expect(slow[0]!.instance).toBe(killed!.id)
    expect(slow[0]!.error).toContain("lease expired")
    expect(slow[1]!.instance).not.toBe(killed!.id)
    expect(runs.some((r) => r.outcome === "running" && r.instance !== killed!.id)).toBe(false)
  }, 180_000)
}
