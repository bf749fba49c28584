/**
 * The event counter as a user runs it: real processes, real RabbitMQ (and PostgreSQL for the
 * durable store), real signals.
 */
import { afterAll, describe, expect, test } from "bun:test"
import * as amqp from "amqplib"
import * as Effect from "effect/Effect"
import { mkdtempSync, readFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import postgres from "postgres"
import * as RabbitMQ from "../../layers/rabbitmq/index.ts"
import { type Counts, eventTypes, totals } from "../../src/counter/events.ts"
import type { GeneratorOptions } from "../../src/counter/generator.ts"
import { publishTraffic } from "../../src/counter/publishTraffic.ts"
import { opsUrl, startProgram } from "../support/program.ts"
import { deleteRabbitmqTopology } from "../support/rabbitmq.ts"
import { parsePrometheus, sample } from "../support/prometheus.ts"
import { freshName, postgresUrl, probePostgres, probeRabbitmq, rabbitmqUrl, requireServer } from "../support/servers.ts"

const url = rabbitmqUrl()
const rabbitUp = await requireServer("RabbitMQ", probeRabbitmq(url))
const postgresUp = await requireServer("PostgreSQL", probePostgres(postgresUrl()))

const destination = () => ({ exchange: freshName("counter_x"), queue: freshName("counter_q") })

const publish = (dest: { exchange: string; queue: string }, traffic: Partial<GeneratorOptions>) =>
  Effect.runPromise(publishTraffic(dest, traffic).pipe(Effect.provide(RabbitMQ.layer({ url }))))

const readCounts = (dir: string): Counts =>
  Object.fromEntries(eventTypes.map((t) => [t, JSON.parse(readFileSync(join(dir, `${t}.json`), "utf8"))])) as Counts

const total = (counts: Counts) => Object.values(totals(counts)).reduce((a, b) => a + b, 0)

const queueDepth = async (queue: string) => {
  const connection = await amqp.connect(url)
  try {
    const channel = await connection.createChannel()
    return (await channel.checkQueue(queue)).messageCount
  } finally {
    await connection.close()
  }
}

/** The message ids of everything in a queue, taken off it. */
const drainIds = async (queue: string) => {
  const connection = await amqp.connect(url)
  try {
    const channel = await connection.createChannel()
    const ids: Array<string> = []
    for (let msg = await channel.get(queue, { noAck: true }); msg !== false; msg = await channel.get(queue, { noAck: true })) {
      ids.push(String(msg.properties.messageId))
    }
    return ids
  } finally {
    await connection.close()
  }
}

const cleanup: Array<() => Promise<unknown>> = []
afterAll(async () => {
  for (const step of cleanup.reverse()) await step().catch(() => {})
})

const deleteQueues = (dest: { exchange: string; queue: string }) => () =>
  deleteRabbitmqTopology(url, [{ topic: dest.exchange, group: dest.queue }])

/** Scrapes /metrics until `counted` events were recorded: the counter is mid-run. */
const countedSoFar = async (base: string) => {
  const page = parsePrometheus(await (await fetch(`${base}/metrics`)).text())
  return sample(page, "eventcounter_events_total", { result: "counted" }).value
}
const whenCounted = async (base: string, atLeast: number) => {
  for (let i = 0; i < 600; i++) {
    const page = await fetch(`${base}/metrics`).then((r) => r.text())
    if (page.includes("eventcounter_events_total") && (await countedSoFar(base)) >= atLeast) return
    await Bun.sleep(25)
  }
  throw new Error(`the counter did not count ${atLeast} events in time`)
}

describe.if(rabbitUp)("event-counter program", () => {
  test("counts exactly, with duplicates and malformed messages, serves metrics, exits 0 after the idle timeout", async () => {
    const dest = destination()
    cleanup.push(deleteQueues(dest))
    const run = await publish(dest, { count: 3000, users: 6, duplicateRatio: 0.2, malformed: 20, seed: 11 })
    const dir = mkdtempSync(join(tmpdir(), "counter-"))
    const counter = startProgram("event-counter.ts", {
      RABBITMQ_URL: url, RABBITMQ_EXCHANGE: dest.exchange, RABBITMQ_QUEUE: dest.queue, OUTPUT_DIR: dir, IDLE_TIMEOUT: "1s"
    })
    const base = await opsUrl(counter)
    expect((await fetch(`${base}/healthz`)).status).toBe(200)
    await whenCounted(base, 1)
    const ready = await fetch(`${base}/readyz`)
    expect(ready.status).toBe(200)
    expect(await counter.exited).toBe(0)
    expect(readCounts(dir)).toEqual(run.expected)
    expect(await queueDepth(`${dest.queue}.dlq`)).toBe(20)
    expect(await queueDepth(dest.queue)).toBe(0)
  })

  test("metrics count counted, duplicate and malformed messages", async () => {
    const dest = destination()
    cleanup.push(deleteQueues(dest))
    const run = await publish(dest, { count: 500, duplicateRatio: 0.2, malformed: 10, seed: 5 })
    const counter = startProgram("event-counter.ts", {
      RABBITMQ_URL: url, RABBITMQ_EXCHANGE: dest.exchange, RABBITMQ_QUEUE: dest.queue,
      OUTPUT_DIR: mkdtempSync(join(tmpdir(), "counter-")), IDLE_TIMEOUT: "30s"
    })
    const base = await opsUrl(counter)
    await whenCounted(base, run.unique)
    let page = parsePrometheus(await (await fetch(`${base}/metrics`)).text())
    for (let i = 0; i < 200 && sample(page, "eventcounter_events_total", { result: "duplicate" }).value < run.duplicates; i++) {
      await Bun.sleep(25)
      page = parsePrometheus(await (await fetch(`${base}/metrics`)).text())
    }
    counter.kill("SIGTERM")
    expect(await counter.exited).toBe(0)
    expect(page.types["eventcounter_events_total"]).toBe("counter")
    expect(sample(page, "eventcounter_events_total", { result: "counted" }).value).toBe(run.unique)
    expect(sample(page, "eventcounter_events_total", { result: "duplicate" }).value).toBe(run.duplicates)
    const malformed = page.samples.filter((s) => s.name === "eventcounter_malformed_messages_total")
    expect(malformed.reduce((n, s) => n + s.value, 0)).toBe(10)
    expect(new Set(malformed.map((s) => s.labels.reason))).toEqual(
      new Set(["routing_key", "invalid_json", "missing_id", "unknown_type", "oversized"])
    )
  })

  test("SIGTERM mid-run: in-flight messages finish and are acked, files are written, exit 0, nothing lost", async () => {
    const dest = destination()
    cleanup.push(deleteQueues(dest))
    const sent = 30_000
    await publish(dest, { count: sent, duplicateRatio: 0, seed: 21 })
    const dir = mkdtempSync(join(tmpdir(), "counter-"))
    const counter = startProgram("event-counter.ts", {
      RABBITMQ_URL: url, RABBITMQ_EXCHANGE: dest.exchange, RABBITMQ_QUEUE: dest.queue, OUTPUT_DIR: dir,
      IDLE_TIMEOUT: "60s", PREFETCH: "200"
    })
    await whenCounted(await opsUrl(counter), 1000)
    counter.kill("SIGTERM")
    expect(await counter.exited).toBe(0)
    expect(counter.stderr()).toContain("counts written")
    const counted = total(readCounts(dir))
    expect(counted).toBeGreaterThanOrEqual(1000)
    // The broker puts the closed channel's unacked deliveries back in the queue on its own time,
    // after the connection is gone: read the depth until it is whole (or 5 s have passed).
    let left = await queueDepth(dest.queue)
    for (let i = 0; i < 50 && counted + left < sent; i++) {
      await Bun.sleep(100)
      left = await queueDepth(dest.queue)
    }
    expect(left).toBeGreaterThan(0)
    // Counted but unacked would be redelivered and show up twice; acked but uncounted would vanish.
    expect(counted + left).toBe(sent)
  })

  test("a bad setting stops it at start with exit 2, naming the variable, before touching the broker", async () => {
    const counter = startProgram("event-counter.ts", { RABBITMQ_URL: "amqp://guest:guest@127.0.0.1:1", IDLE_TIMEOUT: "soon" })
    expect(await counter.exited).toBe(2)
    expect(counter.stderr()).toContain(`IDLE_TIMEOUT: expected a duration`)
    expect(counter.stderr()).not.toContain("ECONNREFUSED")

    const wrongScheme = startProgram("event-counter.ts", { RABBITMQ_URL: "http://guest:secret@127.0.0.1:5672" })
    expect(await wrongScheme.exited).toBe(2)
    expect(wrongScheme.stderr()).toContain("RABBITMQ_URL: expected a URL starting with amqp:// or amqps://")
    expect(wrongScheme.stderr()).not.toContain("secret")
  })
})

describe.if(rabbitUp && postgresUp)("event-counter program, durable store", () => {
  test("killed with SIGKILL mid-run and restarted, it ends with exactly the right counts", async () => {
    const database = freshName("counter_db")
    const admin = postgres(postgresUrl(), { max: 1, onnotice: () => {} })
    await admin.unsafe(`create database ${database}`)
    cleanup.push(async () => {
      await admin.unsafe(`drop database if exists ${database} with (force)`)
      await admin.end()
    })
    const databaseUrl = new URL(postgresUrl())
    databaseUrl.pathname = `/${database}`

    const dest = destination()
    cleanup.push(deleteQueues(dest))
    const run = await publish(dest, { count: 20_000, users: 9, duplicateRatio: 0.25, malformed: 15, seed: 99 })
    const env = {
      RABBITMQ_URL: url, RABBITMQ_EXCHANGE: dest.exchange, RABBITMQ_QUEUE: dest.queue,
      COUNTER_STORE: "postgres", DATABASE_URL: databaseUrl.toString(), PREFETCH: "300", COUNTER_BATCH_SIZE: "100"
    }
    const first = startProgram("event-counter.ts", { ...env, OUTPUT_DIR: mkdtempSync(join(tmpdir(), "counter-")), IDLE_TIMEOUT: "60s" })
    const firstOps = await opsUrl(first)
    await whenCounted(firstOps, 2000)
    // Readiness names the database beside the broker.
    const ready = await (await fetch(`${firstOps}/readyz`)).json() as { checks: Record<string, boolean> }
    expect(ready.checks).toMatchObject({ broker: true, database: true, worker: true })
    first.kill("SIGKILL")
    expect(await first.exited).not.toBe(0)
    expect(await queueDepth(dest.queue)).toBeGreaterThan(0)

    const dir = mkdtempSync(join(tmpdir(), "counter-"))
    const second = startProgram("event-counter.ts", { ...env, OUTPUT_DIR: dir, IDLE_TIMEOUT: "1s" })
    expect(await second.exited).toBe(0)
    expect(readCounts(dir)).toEqual(run.expected)
    expect(await queueDepth(dest.queue)).toBe(0)
    // Dead-lettering is at-least-once too: a malformed message dead-lettered just before the kill,
    // but not yet acked, is dead-lettered again after the restart. None may be missing.
    expect(new Set(await drainIds(`${dest.queue}.dlq`)).size).toBe(15)
  })
})

/**
 * Poison messages among 10 000 good ones, as a user runs the counter: each poison message in
 * `<queue>.dlq` with its reason, the good ones counted exactly, and the run ends by itself.
 */
describe.if(rabbitUp)("event-counter program, poison messages", () => {
  // Random, so it does not compress below an index entry's limit as a repeated character would.
  const incompressible = (length: number) => {
    let text = ""
    while (text.length < length) text += crypto.randomUUID().replaceAll("-", "")
    return text.slice(0, length)
  }
  const withByte = (byte: number) => Buffer.concat([Buffer.from(`{"id":"bad`), Buffer.from([byte]), Buffer.from(`"}`)])
  // Each made the durable counter retry forever, or was counted wrongly by the memory store.
  const poison: ReadonlyArray<{ readonly id: string; readonly key: string; readonly body: Buffer; readonly reason: string }> = [
    { id: "nul-id", key: "u1.event.created", body: Buffer.from(`{"id":"nul\\u0000id"}`), reason: "the id contains a NUL character" },
    {
      id: "lone-surrogate",
      key: "u1.event.updated",
      body: Buffer.from(`{"id":"\\ud800x"}`),
      reason: "the id contains a lone surrogate (not well-formed Unicode)"
    },
    {
      id: "long-id",
      key: "u2.event.deleted",
      body: Buffer.from(JSON.stringify({ id: incompressible(40_000) })),
      reason: "the id is 40000 characters, over the limit of 256"
    },
    { id: "bad-ff", key: "u1.event.created", body: withByte(0xff), reason: "body is not valid UTF-8" },
    { id: "bad-fe", key: "u1.event.created", body: withByte(0xfe), reason: "body is not valid UTF-8" },
    {
      id: "nul-user",
      key: "nul\u0000user.event.created",
      body: Buffer.from(`{"id":"fine-id"}`),
      reason: "the userId of the routing key contains a NUL character"
    }
  ]

  const publishPoison = async (exchange: string) => {
    const connection = await amqp.connect(url)
    try {
      const channel = await connection.createConfirmChannel()
      for (const p of poison) channel.publish(exchange, p.key, p.body, { messageId: p.id, persistent: true })
      await channel.waitForConfirms()
    } finally {
      await connection.close()
    }
  }

  /** message id → dead-letter reason of everything in a queue, taken off it. */
  const drainReasons = async (queue: string) => {
    const connection = await amqp.connect(url)
    try {
      const channel = await connection.createChannel()
      const reasons: Record<string, string> = {}
      for (let msg = await channel.get(queue, { noAck: true }); msg !== false; msg = await channel.get(queue, { noAck: true })) {
        reasons[String(msg.properties.messageId)] = String(msg.properties.headers?.["x-dead-letter-reason"])
      }
      return reasons
    } finally {
      await connection.close()
    }
  }

  /** The exit code, or "stalled" when the counter did not end by itself within the deadline (then it is killed). */
  const exitWithin = async (counter: ReturnType<typeof startProgram>, ms: number) => {
    let timer: ReturnType<typeof setTimeout> | undefined
    const deadline = new Promise<"stalled">((resolve) => {
      timer = setTimeout(() => resolve("stalled"), ms)
    })
    const result = await Promise.race([counter.exited, deadline])
    clearTimeout(timer)
    if (result === "stalled") {
      counter.kill("SIGKILL")
      await counter.exited
    }
    return result
  }

  const stores: ReadonlyArray<readonly [string, boolean]> = [["memory", true], ["postgres", postgresUp]]
  for (const [store, available] of stores) {
    test.if(available)(`${store} store: exact counts, each poison message dead-lettered with its reason, exit 0 by idle timeout`, async () => {
      const env: Record<string, string> = { COUNTER_STORE: store }
      if (store === "postgres") {
        const database = freshName("counter_db")
        const admin = postgres(postgresUrl(), { max: 1, onnotice: () => {} })
        await admin.unsafe(`create database ${database}`)
        cleanup.push(async () => {
          await admin.unsafe(`drop database if exists ${database} with (force)`)
          await admin.end()
        })
        const databaseUrl = new URL(postgresUrl())
        databaseUrl.pathname = `/${database}`
        env.DATABASE_URL = databaseUrl.toString()
      }
      const dest = destination()
      cleanup.push(deleteQueues(dest))
      const run = await publish(dest, { count: 10_000, users: 8, duplicateRatio: 0.1, seed: 31 })
      await publishPoison(dest.exchange)
      const dir = mkdtempSync(join(tmpdir(), "counter-"))
      const counter = startProgram("event-counter.ts", {
        ...env, RABBITMQ_URL: url, RABBITMQ_EXCHANGE: dest.exchange, RABBITMQ_QUEUE: dest.queue, OUTPUT_DIR: dir, IDLE_TIMEOUT: "1s"
      })
      expect(await exitWithin(counter, 60_000)).toBe(0)
      expect(readCounts(dir)).toEqual(run.expected)
      expect(await queueDepth(dest.queue)).toBe(0)
      expect(await drainReasons(`${dest.queue}.dlq`)).toEqual(Object.fromEntries(poison.map((p) => [p.id, p.reason])))
    }, 120_000)
  }
})
