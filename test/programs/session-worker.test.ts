/**
 * programs/session-sender.ts and programs/session-worker.ts as processes on a fresh PostgreSQL
 * database: the sender's messages through two workers, every session in sequence order, none
 * lost, none handled twice; SIGTERM in the middle settling what is in flight and leaving the
 * rest for the next worker; bad configuration exiting 2 naming the variable.
 *
 * What is checked comes from the database (each session's state holds the last seq its handler
 * processed; the messages left) and from the workers' /metrics (completed, abandoned,
 * out-of-order, duplicates), not from the workers' say-so in their logs.
 */
import { afterAll, describe, expect, test } from "bun:test"
import postgres from "postgres"
import { freshDatabases } from "../support/databases.ts"
import { opsUrl, type RunningProgram, startProgram } from "../support/program.ts"
import { findSamples, parsePrometheus } from "../support/prometheus.ts"
import { startServiceBusTestServer } from "../support/serviceBusServer.ts"
import { freshName, postgresUrl, probePostgres, requireServer } from "../support/servers.ts"
import { until } from "../support/until.ts"

const url = postgresUrl()

/** The workers' knobs for a short run: short waits, so sessions move between slots quickly. */
const quick = {
  RECEIVE_TIMEOUT: "1s",
  RETRY_DELAY: "200ms",
  RECEIVE_WAIT: "200ms",
  QUEUE_DEPTH_INTERVAL: "500ms",
  SHUTDOWN_TIMEOUT: "20s"
}

const metricSum = async (program: RunningProgram, name: string, labels: Record<string, string> = {}) => {
  const text = await (await fetch(`${await opsUrl(program)}/metrics`)).text()
  return findSamples(parsePrometheus(text), name, labels).reduce((sum, s) => sum + s.value, 0)
}

const counts = async (program: RunningProgram) => ({
  completed: await metricSum(program, "session_messages_total", { outcome: "completed" }),
  abandoned: await metricSum(program, "session_messages_total", { outcome: "abandoned" }),
  deadLettered: await metricSum(program, "session_messages_total", { outcome: "dead_lettered" }),
  outOfOrder: await metricSum(program, "session_messages_out_of_order_total"),
  duplicates: await metricSum(program, "session_messages_duplicate_total")
})

const sessionStates = async (sql: postgres.Sql) => {
  const rows = await sql<{ session_id: string; last: number | null }[]>`
    select session_id, (convert_from(state, 'UTF8')::jsonb ->> 'lastSeq')::int as last
    from session_queue_sessions where queue = 'session-queue' order by session_id`
  return new Map(rows.map((r) => [r.session_id, r.last ?? 0]))
}

const remaining = async (sql: postgres.Sql) =>
  sql<{ session_id: string; seq: number; attempts: number; handed_out: boolean }[]>`
    select session_id, (convert_from(body, 'UTF8')::jsonb ->> 'seq')::int as seq, attempts, delivery_token is not null as handed_out
    from session_queue_messages where queue = 'session-queue' order by session_id, sequence_number`

const send = async (env: Record<string, string>, sessions: number, perSession: number) => {
  const sender = startProgram("session-sender.ts", { ...env, SESSION_COUNT: String(sessions), MESSAGES_PER_SESSION: String(perSession), SEND_BATCH_SIZE: "50" })
  expect(await sender.exited).toBe(0)
  const summary = JSON.parse(sender.stdout().trim().split("\n").at(-1)!) as Record<string, unknown>
  expect(summary).toMatchObject({ backend: "postgres", queue: "session-queue", sessions, messagesPerSession: perSession, messages: sessions * perSession })
  expect(sender.stderr()).toContain(`"sent ${sessions * perSession}/${sessions * perSession}"`)
}

if (await requireServer("PostgreSQL", probePostgres(url))) {
  const databases = freshDatabases()
  afterAll(() => databases.dropAll())

  describe("session sender and worker on PostgreSQL", () => {
    test("two workers take the sender's sessions: every session handled in sequence order, none lost, none handled twice; SIGTERM exits 0", async () => {
      const DATABASE_URL = await databases.create("sessions")
      const sessions = 30
      const perSession = 20
      const env = { DATABASE_URL, WORKER_COUNT: "5", ...quick }
      const workers = [startProgram("session-worker.ts", env), startProgram("session-worker.ts", env)]
      const sql = postgres(DATABASE_URL, { max: 1, onnotice: () => {} })
      try {
        // Both wait before anything is sent, so neither gets a head start from starting sooner.
        await Promise.all(workers.map((w) => w.waitFor(/session worker on \\"session-queue\\" with 5 slots/, 60_000)))
        await send({ DATABASE_URL }, sessions, perSession)
        await until("every message settled", async () => (await remaining(sql)).length === 0)
        const states = await sessionStates(sql)
        expect(states.size).toBe(sessions)
        for (const [, last] of states) expect(last).toBe(perSession)
        expect((await sql`select count(*)::int as n from session_queue_dead_letters`)[0]!.n).toBe(0)
        const [a, b] = await Promise.all(workers.map(counts))
        // Both took part; together they completed each message once, never out of order, never again.
        expect(a!.completed).toBeGreaterThan(0)
        expect(b!.completed).toBeGreaterThan(0)
        expect(a!.completed + b!.completed).toBe(sessions * perSession)
        for (const c of [a!, b!]) expect({ abandoned: c.abandoned, deadLettered: c.deadLettered, outOfOrder: c.outOfOrder, duplicates: c.duplicates })
          .toEqual({ abandoned: 0, deadLettered: 0, outOfOrder: 0, duplicates: 0 })
        const ready = await (await fetch(`${await opsUrl(workers[0]!)}/readyz`)).json() as { checks: Record<string, boolean> }
        expect(ready.checks).toEqual({ "session-queue": true, breaker: true })
      } finally {
        for (const w of workers) w.kill("SIGTERM")
        await sql.end()
      }
      expect(await Promise.all(workers.map((w) => w.exited))).toEqual([0, 0])
    }, 240_000)

    test("SIGTERM mid-run: the messages in flight are completed, the sessions released, and the next worker resumes each session at its first unsettled message", async () => {
      const DATABASE_URL = await databases.create("sessions")
      const sessions = 5
      // A batch (10) is completed at once, so the first completions show after about a second:
      // 40 per session leaves about three more for the SIGTERM to land in mid-run.
      const perSession = 40
      await send({ DATABASE_URL }, sessions, perSession)
      const env = { DATABASE_URL, WORKER_COUNT: "5", HANDLER_DELAY: "100ms", ...quick }
      const sql = postgres(DATABASE_URL, { max: 1, onnotice: () => {} })
      try {
        const first = startProgram("session-worker.ts", env)
        await until("some messages completed", async () => (await metricSum(first, "session_messages_total", { outcome: "completed" })) >= 10, 60_000)
        first.kill("SIGTERM")
        expect(await first.exited).toBe(0)
        expect(first.stderr()).toContain("SIGTERM received, shutting down")
        // Released: no lease left, nothing handed out; each session's rest starts right after its last processed seq.
        expect((await sql`select count(*)::int as n from session_queue_sessions where lock_token is not null`)[0]!.n).toBe(0)
        const left = await remaining(sql)
        expect(left.filter((m) => m.handed_out)).toEqual([])
        const states = await sessionStates(sql)
        let done = 0
        for (let s = 1; s <= sessions; s++) {
          const id = `session-${s}`
          const last = states.get(id) ?? 0
          done += last
          expect(left.filter((m) => m.session_id === id).map((m) => m.seq)).toEqual(
            Array.from({ length: perSession - last }, (_, i) => last + 1 + i)
          )
        }
        expect(done).toBeGreaterThanOrEqual(10)
        expect(done).toBeLessThan(sessions * perSession)

        const second = startProgram("session-worker.ts", { ...env, HANDLER_DELAY: "0s" })
        try {
          await until("every message settled", async () => (await remaining(sql)).length === 0)
          // Only what was not settled came again: the second worker completed exactly the rest, in order, nothing twice.
          const c = await counts(second)
          expect(c).toEqual({ completed: sessions * perSession - done, abandoned: 0, deadLettered: 0, outOfOrder: 0, duplicates: 0 })
          for (const [, last] of await sessionStates(sql)) expect(last).toBe(perSession)
        } finally {
          second.kill("SIGTERM")
        }
        expect(await second.exited).toBe(0)
      } finally {
        await sql.end()
      }
    }, 240_000)
  })

  describe("session worker at size on PostgreSQL", () => {
    test("100 sessions × 100 messages through two workers of 20 slots each: every session in sequence order, none lost, none handled twice", async () => {
      const DATABASE_URL = await databases.create("sessions")
      const sessions = 100
      const perSession = 100
      await send({ DATABASE_URL }, sessions, perSession)
      const env = { DATABASE_URL, WORKER_COUNT: "20", ...quick }
      const started = Date.now()
      const workers = [startProgram("session-worker.ts", env), startProgram("session-worker.ts", env)]
      const sql = postgres(DATABASE_URL, { max: 1, onnotice: () => {} })
      try {
        await until("every message settled", async () => (await remaining(sql)).length === 0, 600_000)
        const seconds = (Date.now() - started) / 1000
        console.log(`session order run: ${sessions * perSession} messages in ${seconds.toFixed(1)} s (${Math.round(sessions * perSession / seconds)} msg/s, worker start included)`)
        const states = await sessionStates(sql)
        expect(states.size).toBe(sessions)
        for (const [, last] of states) expect(last).toBe(perSession)
        expect((await sql`select count(*)::int as n from session_queue_dead_letters`)[0]!.n).toBe(0)
        const [a, b] = await Promise.all(workers.map(counts))
        expect(a!.completed + b!.completed).toBe(sessions * perSession)
        expect([a!.outOfOrder, b!.outOfOrder, a!.duplicates, b!.duplicates, a!.abandoned, b!.abandoned]).toEqual([0, 0, 0, 0, 0, 0])
      } finally {
        for (const w of workers) w.kill("SIGTERM")
        await sql.end()
      }
      expect(await Promise.all(workers.map((w) => w.exited))).toEqual([0, 0])
    }, 900_000)

    test("one of two workers killed with SIGKILL mid-session: its leases end, the other resumes each of its sessions at the first unsettled message, order intact", async () => {
      const DATABASE_URL = await databases.create("sessions")
      const sessions = 20
      const perSession = 50
      await send({ DATABASE_URL }, sessions, perSession)
      const env = { DATABASE_URL, WORKER_COUNT: "10", HANDLER_DELAY: "20ms", SESSION_LOCK_DURATION: "3s", ...quick }
      const sql = postgres(DATABASE_URL, { max: 1, onnotice: () => {} })
      const victim = startProgram("session-worker.ts", env)
      const survivor = startProgram("session-worker.ts", env)
      try {
        await until("the victim holding sessions mid-way", async () =>
          (await metricSum(victim, "session_active_sessions")) > 0 &&
          (await metricSum(victim, "session_messages_total", { outcome: "completed" })) >= 50, 120_000)
        victim.kill("SIGKILL")
        expect(await victim.exited).not.toBe(0)
        // What the victim held stays leased (its handed-out messages with it) until the leases run out.
        const held = (await sql`select count(*)::int as n from session_queue_sessions where lock_token is not null`)[0]!.n
        expect(held).toBeGreaterThan(0)
        await until("every message settled", async () => (await remaining(sql)).length === 0, 300_000)
        const states = await sessionStates(sql)
        expect(states.size).toBe(sessions)
        for (const [, last] of states) expect(last).toBe(perSession)
        expect((await sql`select count(*)::int as n from session_queue_dead_letters`)[0]!.n).toBe(0)
        const c = await counts(survivor)
        expect(c.outOfOrder).toBe(0)
        // A message the victim processed but did not get to complete comes once more and is
        // recognised by the session state (at most one per session it held); nothing else repeats.
        expect(c.duplicates).toBeLessThanOrEqual(10)
        expect(await metricSum(survivor, "session_lock_lost_total")).toBe(0)
      } finally {
        survivor.kill("SIGTERM")
        await sql.end()
      }
      expect(await survivor.exited).toBe(0)
    }, 600_000)
  })
}

describe("session programs: configuration", () => {
  test("a bad value stops the worker at start with exit 2, naming the variable", async () => {
    for (const [name, value] of [["WORKER_COUNT", "0"], ["SESSION_BACKEND", "kafka"], ["RECEIVE_TIMEOUT", "soon"], ["MAX_DELIVERY", "-1"]] as const) {
      const worker = startProgram("session-worker.ts", { [name]: value })
      expect(await worker.exited).toBe(2)
      expect(worker.stderr()).toContain(name)
    }
    const sender = startProgram("session-sender.ts", { SESSION_BACKEND: "servicebus", SERVICEBUS_CONNECTION_STRING: "not a connection string" })
    expect(await sender.exited).toBe(2)
    expect(sender.stderr()).toContain("SERVICEBUS_CONNECTION_STRING")
    expect(sender.stderr()).not.toContain("not a connection string")
  }, 60_000)
})

describe("session sender and worker on the Service Bus test server (built from the SDK's protocol, not Azure)", () => {
  test("the sender's sessions through a worker over AMQP: every session in sequence order, none lost, none handled twice; a lock the server takes away mid-session is handled without settling twice", async () => {
    const server = await startServiceBusTestServer({ lockDurationMs: 30_000 })
    const queue = freshName("sq")
    const env = { SESSION_BACKEND: "servicebus", SERVICEBUS_CONNECTION_STRING: server.connectionString, SERVICEBUS_QUEUE_NAME: queue }
    try {
      const sender = startProgram("session-sender.ts", { ...env, SESSION_COUNT: "10", MESSAGES_PER_SESSION: "10", SEND_BATCH_SIZE: "25" })
      expect(await sender.exited).toBe(0)
      expect(JSON.parse(sender.stdout().trim().split("\n").at(-1)!)).toMatchObject({ backend: "servicebus", queue, messages: 100 })
      expect(server.depth(queue)).toEqual({ active: 100, deadLettered: 0 })
      const worker = startProgram("session-worker.ts", { ...env, WORKER_COUNT: "4", HANDLER_DELAY: "50ms", ...quick })
      try {
        // Mid-session, the server ends a held lock (as an expiry would): that holder's calls fail, the session goes round again.
        // One held with messages still unsettled: its holder is mid-batch, so it meets the loss
        // (a session already drained could be released before it noticed anything).
        let taken: string | undefined
        await until("a session held mid-batch", async () => {
          taken = server.lockedSessions(queue).find((id) => server.sessionMessages(queue, id) >= 5)
          return taken !== undefined
        }, 60_000)
        expect(server.expireSessionLock(queue, taken!)).toBe(true)
        await until("every message settled", async () => server.depth(queue).active === 0, 120_000)
        const c = await counts(worker)
        // Each message completed once; the one in hand when the lock went may come again and is then recognised.
        expect(c.completed).toBe(100)
        expect(c.outOfOrder).toBe(0)
        expect(c.duplicates).toBeLessThanOrEqual(1)
        expect(server.depth(queue)).toEqual({ active: 0, deadLettered: 0 })
        expect(await metricSum(worker, "session_lock_lost_total")).toBe(1)
        const ready = await (await fetch(`${await opsUrl(worker)}/readyz`)).json() as { checks: Record<string, boolean> }
        expect(ready.checks).toEqual({ "session-queue": true, breaker: true })
      } finally {
        worker.kill("SIGTERM")
      }
      expect(await worker.exited).toBe(0)
    } finally {
      await server.close()
    }
  }, 240_000)
})
