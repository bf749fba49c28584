/**
 * The balancer with three real workers on real RabbitMQ, driven by a client written like the
 * original Go one (it sends to the request queue with ReplyTo + CorrelationId and waits).
 */
import { afterAll, describe, expect, test } from "bun:test"
import * as amqp from "amqplib"
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as Effect from "effect/Effect"
import * as Sqlite from "../../layers/sqlite/index.ts"
import { answer } from "../../src/sales/answer.ts"
import type { SalesReply } from "../../src/sales/request.ts"
import { categories, regions } from "../../src/sales/seed.ts"
import { deadlineHeader } from "../../src/sales/worker.ts"
import { opsUrl, type RunningProgram, startProgram } from "../support/program.ts"
import { findSamples, parsePrometheus } from "../support/prometheus.ts"
import { deleteRabbitmqTopology } from "../support/rabbitmq.ts"
import { salesTopology } from "../support/salesTopology.ts"
import { until } from "../support/until.ts"
import { freshName, probeRabbitmq, rabbitmqUrl, requireServer } from "../support/servers.ts"

const url = rabbitmqUrl()
const rabbitUp = await requireServer("RabbitMQ", probeRabbitmq(url))
const dir = mkdtempSync(join(tmpdir(), "sales-balancer-"))

const cleanup: Array<{ topic: string; group: string }> = []
const running: Array<RunningProgram> = []
afterAll(async () => {
  for (const program of running) program.kill("SIGKILL")
  await deleteRabbitmqTopology(url, cleanup)
})

const client = async (queue: string) => {
  const connection = await amqp.connect(url)
  const channel = await connection.createChannel()
  await channel.assertQueue(queue, { durable: true })
  const { queue: replyQueue } = await channel.assertQueue("", { exclusive: true })
  const pending = new Map<string, (reply: SalesReply) => void>()
  await channel.consume(replyQueue, (msg) => {
    const resolve = msg === null ? undefined : pending.get(String(msg.properties.correlationId))
    if (resolve === undefined) return
    pending.delete(String(msg!.properties.correlationId))
    resolve(JSON.parse(msg!.content.toString()))
  }, { noAck: true })
  let next = 0
  return {
    /** The reply, or "timeout" after `waitMs`. */
    send: (request: unknown, waitMs = 10_000) => {
      const correlationId = `c-${++next}`
      const reply = new Promise<SalesReply | "timeout">((resolve) => {
        pending.set(correlationId, resolve)
        setTimeout(() => {
          if (pending.delete(correlationId)) resolve("timeout")
        }, waitMs)
      })
      channel.sendToQueue(queue, Buffer.from(JSON.stringify(request)), {
        replyTo: replyQueue, correlationId, headers: { [deadlineHeader]: String(Date.now() + waitMs) }
      })
      return reply
    },
    close: () => connection.close()
  }
}

const request = (i: number) => ({
  region: regions[i % regions.length]!,
  ...(i % 2 === 0 ? {} : { category: categories[i % categories.length]! }),
  from: `2024-0${1 + (i % 5)}-01`,
  to: `2024-${String(6 + (i % 6)).padStart(2, "0")}-15`
})

const metricsOf = async (base: string) => parsePrometheus(await (await fetch(`${base}/metrics`)).text())
const byWorker = (page: ReturnType<typeof parsePrometheus>, name: string) =>
  Object.fromEntries(findSamples(page, name).map((s) => [s.labels.worker!, s.value]))

/**
 * `sales_balancer_routed_total` by worker once `expected` forwards are counted (10 s at most): a
 * forward is counted when its publish is confirmed, which may come after its reply reached the
 * client.
 */
const routedOnceCounted = async (ops: string, expected: number) => {
  const deadline = Date.now() + 10_000
  for (;;) {
    const routed = byWorker(await metricsOf(ops), "sales_balancer_routed_total")
    if (Object.values(routed).reduce((a, b) => a + b, 0) >= expected || Date.now() > deadline) return routed
    await Bun.sleep(20)
  }
}

describe.if(rabbitUp)("sales-balancer on RabbitMQ", () => {
  test("three workers: every reply matches its request; load is spread; a worker killed under load has its requests answered by the others", async () => {
    const db = join(dir, "sales.db")
    const seeded = startProgram("sales-seed.ts", { DB_PATH: db }, ["--seed", "21"])
    expect(await seeded.exited).toBe(0)
    const queues = [1, 2, 3].map((i) => freshName(`mom_worker_${i}`))
    const { requestQueue, heartbeatTopic, balancerEnv } = salesTopology(queues, cleanup)
    const workers = queues.map((queue) =>
      startProgram("sales-worker.ts", {
        QUEUE_NAME: queue, DB_PATH: db, RABBITMQ_URL: url, HEARTBEAT_INTERVAL: "500ms", HEARTBEAT_TOPIC: heartbeatTopic
      })
    )
    running.push(...workers)
    const balancer = startProgram("sales-balancer.ts", {
      RABBITMQ_URL: url, ...balancerEnv, HEALTH_CHECK_INTERVAL: "100ms", MISSED_HEARTBEATS: "4", STATS_INTERVAL: "1s"
    })
    running.push(balancer)
    const ops = await opsUrl(balancer)
    await Promise.all(workers.map((w) => w.waitFor(/sales worker .* answering/)))
    const c = await client(requestQueue)
    try {
      const expectedFor = (requests: ReadonlyArray<unknown>) =>
        Effect.runPromise(Effect.scoped(Effect.gen(function*() {
          const open = yield* (yield* Sqlite.loadDriver).open({ path: db, readOnly: true })
          return yield* Effect.forEach(requests, (r) => answer(open, new TextEncoder().encode(JSON.stringify(r))))
        })))

      // 1. Correlation under concurrency, through the balancer.
      const burst = Array.from({ length: 300 }, (_, i) => request(i))
      const replies = await Promise.all(burst.map((r) => c.send(r, 20_000)))
      expect(replies).toEqual(await expectedFor(burst))
      const spread = await routedOnceCounted(ops, 300)
      expect(Object.keys(spread).sort()).toEqual([...queues].sort())
      expect(Object.values(spread).reduce((a, b) => a + b, 0)).toBe(300)
      for (const q of queues) expect(spread[q]).toBeGreaterThan(30)
      const replied = byWorker(await metricsOf(ops), "sales_balancer_replies_total")
      // At least one per request; more when a request re-routed meanwhile was answered twice.
      expect(Object.values(replied).reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(300)
      expect(Object.values(byWorker(await metricsOf(ops), "sales_balancer_outstanding"))).toEqual([0, 0, 0])

      // 2. SIGKILL one worker while requests keep coming (one every ~6 ms for 3 s).
      const sent: Array<Promise<SalesReply | "timeout">> = []
      const start = Date.now()
      let killed = false
      for (let i = 0; Date.now() - start < 3_000; i++) {
        sent.push(c.send(request(i), 15_000))
        if (!killed && Date.now() - start > 1_000) {
          workers[1]!.kill("SIGKILL")
          killed = true
        }
        await Bun.sleep(6)
      }
      const outcomes = await Promise.all(sent)
      const failed = outcomes.filter((o) => o === "timeout" || !o.ok)
      expect(outcomes.length).toBeGreaterThan(100)
      expect(failed.length / outcomes.length).toBeLessThan(0.01)
      // Taken out once its beats stop: the gauge says so (polled, the balancer decides on its own tick).
      let after = await metricsOf(ops)
      for (let i = 0; i < 100 && byWorker(after, "sales_balancer_worker_healthy")[queues[1]!] !== 0; i++) {
        await Bun.sleep(100)
        after = await metricsOf(ops)
      }
      expect(byWorker(after, "sales_balancer_worker_healthy")).toEqual({ [queues[0]!]: 1, [queues[1]!]: 0, [queues[2]!]: 1 })
      expect(byWorker(after, "sales_balancer_rerouted_total")[queues[1]!]).toBeUndefined()
      const reroutes = Object.values(byWorker(after, "sales_balancer_rerouted_total")).reduce((a, b) => a + b, 0)
      expect(reroutes).toBeGreaterThan(0)
      expect(balancer.stdout() + balancer.stderr()).toContain("worker statistics")

      balancer.kill("SIGTERM")
      for (const w of [workers[0]!, workers[2]!]) w.kill("SIGTERM")
      expect(await balancer.exited).toBe(0)
      expect(await workers[0]!.exited).toBe(0)
      expect(await workers[2]!.exited).toBe(0)
    } finally {
      await c.close()
    }
  }, 120_000)

  test("the balancer killed under load and started again: no request is lost, replies in flight are relayed by the new one", async () => {
    const db = join(dir, "restart.db")
    expect(await startProgram("sales-seed.ts", { DB_PATH: db }, ["--seed", "22"]).exited).toBe(0)
    const queues = [1, 2].map((i) => freshName(`mom_worker_${i}`))
    const { requestQueue, heartbeatTopic, balancerEnv } = salesTopology(queues, cleanup)
    const workers = queues.map((queue) =>
      startProgram("sales-worker.ts", { QUEUE_NAME: queue, DB_PATH: db, RABBITMQ_URL: url, HEARTBEAT_TOPIC: heartbeatTopic })
    )
    running.push(...workers)
    const env = { RABBITMQ_URL: url, ...balancerEnv }
    const first = startProgram("sales-balancer.ts", env)
    running.push(first)
    await opsUrl(first)
    await Promise.all(workers.map((w) => w.waitFor(/sales worker .* answering/)))
    const c = await client(requestQueue)
    try {
      const sent: Array<Promise<SalesReply | "timeout">> = []
      const start = Date.now()
      let second: RunningProgram | undefined
      for (let i = 0; Date.now() - start < 3_000; i++) {
        sent.push(c.send(request(i), 30_000))
        if (second === undefined && Date.now() - start > 1_000) {
          first.kill("SIGKILL")
          await first.exited
          second = startProgram("sales-balancer.ts", env)
          running.push(second)
        }
        await Bun.sleep(6)
      }
      const outcomes = await Promise.all(sent)
      expect(outcomes.filter((o) => o === "timeout")).toEqual([])
      expect(outcomes.every((o) => o !== "timeout" && o.ok)).toBe(true)
      expect(second!.stderr()).toContain("sales balancer:")
      second!.kill("SIGTERM")
      expect(await second!.exited).toBe(0)
    } finally {
      await c.close()
    }
  }, 120_000)

  test("workers that send no heartbeats (like the original's) are judged by their queue's consumers", async () => {
    const db = join(dir, "consumers.db")
    expect(await startProgram("sales-seed.ts", { DB_PATH: db }, ["--seed", "23", "--sales", "2000"]).exited).toBe(0)
    const queues = [1, 2].map((i) => freshName(`mom_worker_${i}`))
    // The workers beat where this balancer does not listen: to it they are silent.
    const elsewhere = freshName("sales_heartbeats_elsewhere")
    const { requestQueue, balancerEnv } = salesTopology(queues, cleanup)
    const workerEnv = (queue: string) => ({ QUEUE_NAME: queue, DB_PATH: db, RABBITMQ_URL: url, HEARTBEAT_TOPIC: elsewhere })
    const workers = queues.map((queue) => startProgram("sales-worker.ts", workerEnv(queue)))
    running.push(...workers)
    const balancer = startProgram("sales-balancer.ts", {
      RABBITMQ_URL: url, ...balancerEnv, CONSUMER_CHECK_INTERVAL: "200ms"
    })
    running.push(balancer)
    const ops = await opsUrl(balancer)
    await Promise.all(workers.map((w) => w.waitFor(/sales worker .* answering/)))
    // A check made before a worker subscribed took it out; the next one brings it back. Waiting
    // for the log line alone could match such an early line while the other worker is still out.
    const healthy = async () => byWorker(await metricsOf(ops), "sales_balancer_worker_healthy")
    await until("both workers counted healthy", async () => JSON.stringify(await healthy()) === JSON.stringify({ [queues[0]!]: 1, [queues[1]!]: 1 }), 30_000)
    const c = await client(requestQueue)
    try {
      workers[0]!.kill("SIGKILL")
      await workers[0]!.exited
      await until(`worker queue ${queues[0]} taken out`, async () => (await healthy())[queues[0]!] === 0, 30_000)
      await balancer.waitFor(new RegExp(`worker queue ${queues[0]} has no consumer: taken out`))
      const replies = await Promise.all(Array.from({ length: 20 }, (_, i) => c.send(request(i), 20_000)))
      expect(replies.every((r) => r !== "timeout" && r.ok)).toBe(true)
      const routed = await routedOnceCounted(ops, 20)
      const page = await metricsOf(ops)
      expect(routed[queues[0]!] ?? 0).toBe(0)
      expect(routed[queues[1]!]).toBe(20)
      expect(byWorker(page, "sales_balancer_worker_healthy")).toEqual({ [queues[0]!]: 0, [queues[1]!]: 1 })

      const restarted = startProgram("sales-worker.ts", workerEnv(queues[0]!))
      running.push(restarted)
      // The log may already hold a "consumer again" line from the start (see above): the gauge,
      // not the line, says the restarted worker is back.
      await until(`worker queue ${queues[0]} back`, async () => (await healthy())[queues[0]!] === 1, 30_000)
      await balancer.waitFor(new RegExp(`worker queue ${queues[0]} has a consumer again`))
      const more = await Promise.all(Array.from({ length: 20 }, (_, i) => c.send(request(i), 20_000)))
      expect(more.every((r) => r !== "timeout" && r.ok)).toBe(true)
      expect(byWorker(await metricsOf(ops), "sales_balancer_routed_total")[queues[0]!]).toBeGreaterThan(0)
    } finally {
      await c.close()
    }
  }, 120_000)

  test("least outstanding: a slow worker receives proportionally fewer requests", async () => {
    const db = join(dir, "slow.db")
    expect(await startProgram("sales-seed.ts", { DB_PATH: db }, ["--seed", "24", "--sales", "2000"]).exited).toBe(0)
    const fast = [1, 2].map((i) => freshName(`mom_worker_fast_${i}`))
    const slow = freshName("mom_worker_slow")
    const { requestQueue, heartbeatTopic, balancerEnv } = salesTopology([...fast, slow], cleanup)
    const workers = fast.map((queue) =>
      startProgram("sales-worker.ts", { QUEUE_NAME: queue, DB_PATH: db, RABBITMQ_URL: url, HEARTBEAT_TOPIC: heartbeatTopic })
    )
    running.push(...workers)
    // The slow one, written like the original Go worker: one request at a time, 500 ms each, replies
    // to ReplyTo with the CorrelationId.
    const connection = await amqp.connect(url)
    const channel = await connection.createChannel()
    await channel.assertQueue(slow, { durable: true })
    await channel.prefetch(10)
    let line = Promise.resolve()
    await channel.consume(slow, (msg) => {
      if (msg === null) return
      line = line.then(() => Bun.sleep(500)).then(() => {
        channel.sendToQueue(String(msg.properties.replyTo), Buffer.from(JSON.stringify({ ok: false, error: { code: "internal", message: "slow" } })), {
          correlationId: msg.properties.correlationId
        })
        channel.ack(msg)
      })
    })
    const balancer = startProgram("sales-balancer.ts", {
      RABBITMQ_URL: url, ...balancerEnv
    })
    running.push(balancer)
    const ops = await opsUrl(balancer)
    await Promise.all(workers.map((w) => w.waitFor(/sales worker .* answering/)))
    const c = await client(requestQueue)
    try {
      // Eight clients, each waiting for its reply before the next request: the fast workers keep
      // up whatever the machine's load, so what the slow one gets is what least-outstanding gives it.
      const outcomes = (await Promise.all(Array.from({ length: 8 }, async (_, k) => {
        const got: Array<SalesReply | "timeout"> = []
        for (let i = 0; i < 50; i++) got.push(await c.send(request(k * 50 + i), 30_000))
        return got
      }))).flat()
      expect(outcomes.filter((o) => o === "timeout")).toEqual([])
      const routed = await routedOnceCounted(ops, 400)
      expect(Object.values(routed).reduce((a, b) => a + b, 0)).toBe(400)
      // Round-robin would give each a third (133); least outstanding gives the slow one about its
      // two a second plus the few it holds.
      expect(routed[slow]!).toBeLessThan(Math.min(routed[fast[0]!]!, routed[fast[1]!]!) / 2)
    } finally {
      await c.close()
      await connection.close()
    }
  }, 120_000)
})
