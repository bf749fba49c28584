/**
 * The sales programs as a user runs them: the seeder on a real file, the worker on real RabbitMQ
 * answering a client written like the original Go one (amqplib directly: the worker's queue
 * through the default exchange, an exclusive server-named reply queue, ReplyTo + CorrelationId).
 */
import { afterAll, describe, expect, test } from "bun:test"
import * as amqp from "amqplib"
import { existsSync, mkdtempSync, statSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as Effect from "effect/Effect"
import * as Sqlite from "../../layers/sqlite/index.ts"
import { deadLetterTopic } from "../../src/capabilities/Subscriber.ts"
import { answer } from "../../src/sales/answer.ts"
import type { SalesReply } from "../../src/sales/request.ts"
import { categories, regions } from "../../src/sales/seed.ts"
import { deadlineHeader } from "../../src/sales/worker.ts"
import { type Heartbeat, parseHeartbeat } from "../../src/sales/heartbeat.ts"
import { opsUrl, startProgram } from "../support/program.ts"
import { parsePrometheus, sample } from "../support/prometheus.ts"
import { deleteRabbitmqTopology } from "../support/rabbitmq.ts"
import { freshName, probeRabbitmq, rabbitmqUrl, requireServer } from "../support/servers.ts"
import { until } from "../support/until.ts"

const url = rabbitmqUrl()
const rabbitUp = await requireServer("RabbitMQ", probeRabbitmq(url))
const dir = mkdtempSync(join(tmpdir(), "sales-programs-"))

const seed = async (path: string, args: ReadonlyArray<string> = []) => {
  const run = startProgram("sales-seed.ts", { DB_PATH: path }, args)
  return { code: await run.exited, stdout: run.stdout(), stderr: run.stderr() }
}

const root = join(import.meta.dir, "..", "..")
const deno = join(root, ".services", "deno", "node_modules", ".bin", "deno")
const denoInstalled = await requireServer("Deno (install it with scripts/deno.sh)", async () => {
  if (!existsSync(deno)) throw new Error(`${deno} does not exist`)
})

/** Every row of the three tables, in order. */
const dump = (path: string) =>
  Effect.runPromise(Effect.scoped(Effect.gen(function*() {
    const db = yield* (yield* Sqlite.loadDriver).open({ path, readOnly: true })
    return yield* Effect.all(["regions", "products", "sales"].map((table) => db.query(`SELECT * FROM ${table} ORDER BY id`)))
  })))

describe.if(denoInstalled)("sales-seed under Deno", () => {
  test("node:sqlite writes the same database as bun:sqlite for the same seed", async () => {
    const underBun = join(dir, "bun.db")
    const underDeno = join(dir, "deno.db")
    expect((await seed(underBun, ["--seed", "9", "--sales", "3000"])).code).toBe(0)
    const proc = Bun.spawn([deno, "run", "-A", "--node-modules-dir=manual", join(root, "programs", "sales-seed.ts"), "--seed", "9", "--sales", "3000"], {
      cwd: root, env: { ...process.env, DB_PATH: underDeno, LOG_FORMAT: "json" }, stdout: "pipe", stderr: "pipe"
    })
    const [stdout, code] = await Promise.all([new Response(proc.stdout).text(), proc.exited])
    expect(code).toBe(0)
    expect(stdout).toContain("(WAL, node:sqlite)")
    expect(await dump(underDeno)).toEqual(await dump(underBun))
  }, 60_000)
})

describe.if(denoInstalled && rabbitUp)("sales-worker under Deno", () => {
  test("answers a Go-style client from the file through node:sqlite, and exits 0 on SIGTERM", async () => {
    const path = join(dir, "deno-worker.db")
    expect((await seed(path, ["--seed", "4", "--sales", "2000"])).code).toBe(0)
    const queue = freshName("mom_worker_deno")
    const heartbeatTopic = freshName("sales_heartbeats")
    cleanup.push({ topic: "", group: queue })
    exchanges.push(heartbeatTopic)
    const client = await goLikeClient(queue)
    const proc = Bun.spawn([deno, "run", "-A", "--node-modules-dir=manual", join(root, "programs", "sales-worker.ts")], {
      cwd: root,
      env: { ...process.env, QUEUE_NAME: queue, DB_PATH: path, RABBITMQ_URL: url, METRICS_PORT: "0", LOG_FORMAT: "json", HEARTBEAT_TOPIC: heartbeatTopic },
      stdout: "pipe",
      stderr: "pipe"
    })
    try {
      const requests = Array.from({ length: 20 }, (_, i) => randomRequest(i))
      const replies = await Promise.all(requests.map((r) => client.send(JSON.stringify(r))))
      const expected = await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
        const db = yield* (yield* Sqlite.loadDriver).open({ path, readOnly: true })
        return yield* Effect.forEach(requests, (r) => answer(db, new TextEncoder().encode(JSON.stringify(r))))
      })))
      expect(replies).toEqual(expected)
      proc.kill("SIGTERM")
      expect(await proc.exited).toBe(0)
    } finally {
      proc.kill("SIGKILL")
      await client.close()
    }
  }, 60_000)
})

describe("sales-seed", () => {
  test("writes the database, refuses to overwrite it, replaces it with --force", async () => {
    const path = join(dir, "seeded.db")
    const first = await seed(path, ["--seed", "5", "--sales", "2000"])
    expect(first.code).toBe(0)
    expect(first.stdout).toContain(`wrote ${path} (WAL`)
    expect(first.stdout).toContain("5 regions, 100 products, 2000 sales from 2024-01-01 to 2024-12-31")
    const size = statSync(path).size
    const again = await seed(path, ["--sales", "50"])
    expect(again.code).toBe(2)
    expect(again.stderr).toContain("DB_PATH")
    expect(again.stderr).toContain("--force")
    expect(statSync(path).size).toBe(size)
    const forced = await seed(path, ["--sales", "50", "--force"])
    expect(forced.code).toBe(0)
    expect(forced.stdout).toContain("50 sales")
  }, 60_000)

  test("a bad flag stops it naming the variable, writing nothing", async () => {
    const path = join(dir, "never.db")
    const run = await seed(path, ["--from", "2024-13-01"])
    expect(run.code).toBe(2)
    expect(run.stderr).toContain("FROM")
    expect(existsSync(path)).toBe(false)
  }, 30_000)
})

/** The original Go client's shape: one reply queue, replies routed to their request by correlation id. */
const goLikeClient = async (queue: string) => {
  const connection = await amqp.connect(url)
  const channel = await connection.createChannel()
  // Declared as our worker declares it, so the client may start first and nothing is dropped.
  await channel.assertQueue(queue, { durable: true })
  const { queue: replyQueue } = await channel.assertQueue("", { exclusive: true })
  const pending = new Map<string, (reply: SalesReply) => void>()
  const stray: Array<string> = []
  await channel.consume(replyQueue, (msg) => {
    if (msg === null) return
    const resolve = pending.get(String(msg.properties.correlationId))
    if (resolve === undefined) stray.push(String(msg.properties.correlationId))
    else {
      pending.delete(String(msg.properties.correlationId))
      resolve(JSON.parse(msg.content.toString()))
    }
  }, { noAck: true })
  let next = 0
  return {
    stray,
    send: (body: string | Buffer, options: amqp.Options.Publish = {}) => {
      const correlationId = `req-${++next}`
      const reply = new Promise<SalesReply>((resolve) => pending.set(correlationId, resolve))
      channel.sendToQueue(queue, typeof body === "string" ? Buffer.from(body) : body, { replyTo: replyQueue, correlationId, ...options })
      return reply
    },
    /** Publishes without waiting for anything back. */
    sendRaw: (body: string, options: amqp.Options.Publish) => channel.sendToQueue(queue, Buffer.from(body), options),
    depth: async (name: string) => (await channel.checkQueue(name)).messageCount,
    close: () => connection.close()
  }
}

const randomRequest = (i: number) => {
  const day = (n: number) => `2024-${String(1 + (n % 12)).padStart(2, "0")}-${String(1 + (n % 28)).padStart(2, "0")}`
  const [a, b] = [day(i * 7), day(i * 13 + 5)].sort()
  return {
    region: regions[i % regions.length]!,
    ...(i % 3 === 0 ? {} : { category: categories[i % categories.length]! }),
    from: a!,
    to: b!
  }
}

/** The heartbeats of one worker, from a queue bound to the heartbeat topic with its id. */
const watchHeartbeats = async (heartbeatTopic: string, workerId: string) => {
  const connection = await amqp.connect(url)
  const channel = await connection.createChannel()
  await channel.assertExchange(heartbeatTopic, "topic", { durable: true })
  const { queue } = await channel.assertQueue("", { exclusive: true })
  await channel.bindQueue(queue, heartbeatTopic, workerId)
  const seen: Array<Heartbeat> = []
  let onLeaving = () => {}
  const leaving = new Promise<void>((resolve) => (onLeaving = resolve))
  await channel.consume(queue, (msg) => {
    if (msg === null) return
    const beat = parseHeartbeat({ body: msg.content })
    if (beat === undefined) return
    seen.push(beat)
    if (beat.leaving) onLeaving()
  }, { noAck: true })
  return {
    untilLeaving: () => leaving.then(() => seen),
    close: () => connection.close()
  }
}

const cleanup: Array<{ topic: string; group: string }> = []
const exchanges: Array<string> = []
afterAll(async () => {
  await deleteRabbitmqTopology(url, cleanup)
  const connection = await amqp.connect(url)
  const channel = await connection.createChannel()
  for (const exchange of exchanges) await channel.deleteExchange(exchange)
  await connection.close()
})

describe.if(rabbitUp)("sales-worker on RabbitMQ", () => {
  test("answers a Go-style client correctly under concurrency, gives bad requests their codes, drops expired ones, exits 0 on SIGTERM", async () => {
    const path = join(dir, "worker.db")
    expect((await seed(path, ["--seed", "11"])).code).toBe(0)
    const queue = freshName("mom_worker")
    cleanup.push({ topic: "", group: queue })
    const client = await goLikeClient(queue)
    const workerId = freshName("w")
    const heartbeatTopic = freshName("sales_heartbeats")
    exchanges.push(heartbeatTopic)
    const beats = await watchHeartbeats(heartbeatTopic, workerId)
    const worker = startProgram("sales-worker.ts", {
      QUEUE_NAME: queue, WORKER_ID: workerId, DB_PATH: path, RABBITMQ_URL: url, HEARTBEAT_INTERVAL: "200ms", HEARTBEAT_TOPIC: heartbeatTopic
    })
    try {
      const ops = await opsUrl(worker)
      // 300 requests at once: every reply must be the one of its own request.
      const requests = Array.from({ length: 300 }, (_, i) => randomRequest(i))
      const replies = await Promise.all(requests.map((r) => client.send(JSON.stringify(r))))
      const expected = await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
        const db = yield* (yield* Sqlite.loadDriver).open({ path, readOnly: true })
        return yield* Effect.forEach(requests, (r) => answer(db, new TextEncoder().encode(JSON.stringify(r))))
      })))
      expect(replies).toEqual(expected)
      expect(replies.every((r) => r.ok)).toBe(true)
      expect(replies.some((r) => r.ok && r.result.sales > 0)).toBe(true)

      const bad: ReadonlyArray<[string | Buffer, string]> = [
        ["{not json", "bad_request"],
        [JSON.stringify({ region: "South" }), "bad_request"],
        [JSON.stringify({ region: "Atlantis", from: "2024-01-01", to: "2024-02-01" }), "unknown_region"],
        [JSON.stringify({ region: "South", from: "2024-05-01", to: "2024-02-01" }), "invalid_range"],
        [JSON.stringify({ region: "South", from: "2024-02-30", to: "2024-03-01" }), "bad_request"],
        [JSON.stringify({ region: "South", from: "2024-01-01", to: "2024-02-01", pad: "x".repeat(64 * 1024) }), "bad_request"],
        [Buffer.from([0x7b, 0xff]), "bad_request"]
      ]
      const badReplies = await Promise.all(bad.map(([body]) => client.send(body)))
      expect(badReplies.map((r): string => r.ok ? "ok" : r.error.code)).toEqual(bad.map(([, code]) => code))

      // Past its deadline: never answered. A request without reply-to: kept in the dead letters.
      const valid = JSON.stringify(randomRequest(1))
      const expired = client.send(valid, { headers: { [deadlineHeader]: String(Date.now() - 1_000) } })
      let expiredAnswered = false
      void expired.then(() => (expiredAnswered = true))
      client.sendRaw(valid, { correlationId: "nowhere" })
      const later = await client.send(valid, { headers: { [deadlineHeader]: String(Date.now() + 60_000) } })
      expect(later.ok).toBe(true)
      const metrics = parsePrometheus(await (await fetch(`${ops}/metrics`)).text())
      expect(sample(metrics, "sales_requests_total", { worker: workerId, outcome: "expired" }).value).toBe(1)
      expect(sample(metrics, "sales_requests_total", { worker: workerId, outcome: "ok" }).value).toBe(301)
      expect(sample(metrics, "sales_requests_total", { worker: workerId, outcome: "bad_request" }).value).toBe(5)
      expect(sample(metrics, "sales_requests_total", { worker: workerId, outcome: "no_reply_to" }).value).toBe(1)
      // Dead-lettered when the worker settles its batch, which may be after it replied to `later`.
      await until("the request without reply-to dead-lettered", async () => (await client.depth(deadLetterTopic(queue))) > 0, 10_000)
      expect(await client.depth(deadLetterTopic(queue))).toBe(1)
      expect(expiredAnswered).toBe(false)
      expect(client.stray).toEqual([])
      expect(await client.depth(queue)).toBe(0)

      worker.kill("SIGTERM")
      expect(await worker.exited).toBe(0)
      const seen = await beats.untilLeaving()
      expect(seen.length).toBeGreaterThanOrEqual(2)
      expect(seen[0]).toMatchObject({ worker: workerId, queue, prefetch: 10, intervalMillis: 200, leaving: false })
      expect(seen.at(-1)).toMatchObject({ worker: workerId, inFlight: 0, leaving: true })
      expect(seen.at(-1)!.answered).toBe(301 + bad.length)
    } finally {
      worker.kill("SIGKILL")
      await client.close()
      await beats.close()
    }
  }, 90_000)

  test("a missing database stops the worker at start, naming the file", async () => {
    const path = join(dir, "missing.db")
    const queue = freshName("mom_worker")
    cleanup.push({ topic: "", group: queue })
    const worker = startProgram("sales-worker.ts", { QUEUE_NAME: queue, DB_PATH: path, RABBITMQ_URL: url })
    expect(await worker.exited).toBe(1)
    expect(worker.stderr() + worker.stdout()).toContain(path)
  }, 30_000)
})
