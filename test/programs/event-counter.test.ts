/**
 * The event counter as a user runs it: real processes, real RabbitMQ (and PostgreSQL for the
 * durable store), real signals.
 */
import { afterAll, describe, expect, test } from "bun:test"
import * as amqp from "amqplib"
import * as Effect from "effect/Effect"
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as RabbitMQ from "../../layers/rabbitmq/index.ts"
import { type Counts, eventTypes, totals } from "../../src/counter/events.ts"
import type { GeneratorOptions } from "../../src/counter/generator.ts"
import { publishTraffic } from "../../src/counter/publishTraffic.ts"
import { opsUrl, startProgram } from "../support/program.ts"
import { deleteRabbitmqTopology } from "../support/rabbitmq.ts"
import { parsePrometheus, sample } from "../support/prometheus.ts"
import { freshName, postgresUrl, probePostgres, probeRabbitmq, rabbitmqUrl, requireServer } from "../support/servers.ts"
import { startTcpProxy, viaProxy } from "../support/tcpProxy.ts"
import { freshDatabases } from "../support/databases.ts"

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
const databases = freshDatabases()
cleanup.push(() => databases.dropAll())
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
    const databaseUrl = await databases.create("counter_db")

    const dest = destination()
    cleanup.push(deleteQueues(dest))
    const run = await publish(dest, { count: 20_000, users: 9, duplicateRatio: 0.25, malformed: 15, seed: 99 })
    const env = {
      RABBITMQ_URL: url, RABBITMQ_EXCHANGE: dest.exchange, RABBITMQ_QUEUE: dest.queue,
      COUNTER_STORE: "postgres", DATABASE_URL: databaseUrl, PREFETCH: "300", COUNTER_BATCH_SIZE: "100"
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

describe.if(rabbitUp)("event-counter program, broker outage", () => {
  test("the broker unreachable for 2× IDLE_TIMEOUT mid-run is not idleness: it waits, reconnects, ends exact", async () => {
    const dest = destination()
    cleanup.push(deleteQueues(dest))
    // The counter reaches RabbitMQ only through the proxy, so the outage is its alone: other
    // suites on the same broker carry on.
    const target = new URL(url)
    const proxy = await startTcpProxy({ host: target.hostname, port: Number(target.port || 5672) })
    cleanup.push(() => proxy.close())
    const first = await publish(dest, { count: 20_000, users: 7, duplicateRatio: 0.1, seed: 31 })
    const dir = mkdtempSync(join(tmpdir(), "counter-"))
    const idleMs = 2000
    const counter = startProgram("event-counter.ts", {
      RABBITMQ_URL: viaProxy(url, proxy), RABBITMQ_EXCHANGE: dest.exchange, RABBITMQ_QUEUE: dest.queue, OUTPUT_DIR: dir,
      IDLE_TIMEOUT: `${idleMs}ms`, PREFETCH: "200"
    })
    let exited = false
    void counter.exited.then(() => (exited = true))
    const base = await opsUrl(counter)
    await whenCounted(base, 1000)

    proxy.refuse(true)
    proxy.cut()
    const cutAt = Date.now()
    // The subscriber's `healthy`, which the idle detector reads, is what /readyz shows as "broker".
    const readiness = async () => {
      const response = await fetch(`${base}/readyz`)
      return { status: response.status, checks: ((await response.json()) as { checks: Record<string, boolean> }).checks }
    }
    let down = await readiness()
    for (let i = 0; i < 100 && down.checks.broker !== false; i++) {
      await Bun.sleep(20)
      down = await readiness()
    }
    expect(down).toMatchObject({ status: 503, checks: { broker: false } })
    // Published while the counter cannot reach the broker: work it must still find afterwards.
    const second = await publish(dest, { count: 2000, users: 7, duplicateRatio: 0, seed: 32 })
    // The outage itself: twice the idle timeout, counted from the cut.
    await Bun.sleep(Math.max(0, cutAt + 2 * idleMs - Date.now()))
    expect(exited).toBe(false)
    expect(counter.stderr()).not.toContain("no message for")
    expect((await readiness()).checks.broker).toBe(false)

    proxy.refuse(false)
    await counter.waitFor(/reconnected to/, 20_000)
    expect(await counter.exited).toBe(0)
    const expected = Object.fromEntries(eventTypes.map((type) => {
      const users = new Set([...Object.keys(first.expected[type]), ...Object.keys(second.expected[type])])
      return [type, Object.fromEntries([...users].map((u) => [u, (first.expected[type][u] ?? 0) + (second.expected[type][u] ?? 0)]))]
    }))
    expect(readCounts(dir)).toEqual(expected as Counts)
    expect(await queueDepth(dest.queue)).toBe(0)
  }, 60_000)
})

describe.if(rabbitUp)("event-counter program, user ids that name Object.prototype members", () => {
  /** Two created events for `__proto__` and one for `constructor`, counted by a run with `env`. */
  const countHostileUsers = async (env: Record<string, string>) => {
    const dest = destination()
    cleanup.push(deleteQueues(dest))
    const connection = await amqp.connect(url)
    try {
      const channel = await connection.createConfirmChannel()
      await channel.assertExchange(dest.exchange, "topic", { durable: true })
      await channel.assertQueue(dest.queue, { durable: true })
      await channel.bindQueue(dest.queue, dest.exchange, "*.event.*")
      for (const [user, id] of [["__proto__", "p1"], ["__proto__", "p2"], ["constructor", "c1"]] as const) {
        channel.publish(dest.exchange, `${user}.event.created`, Buffer.from(JSON.stringify({ id })), { messageId: id, persistent: true })
      }
      await channel.waitForConfirms()
    } finally {
      await connection.close()
    }
    const dir = mkdtempSync(join(tmpdir(), "counter-"))
    const counter = startProgram("event-counter.ts", {
      RABBITMQ_URL: url, RABBITMQ_EXCHANGE: dest.exchange, RABBITMQ_QUEUE: dest.queue, OUTPUT_DIR: dir, IDLE_TIMEOUT: "1s", ...env
    })
    expect(await counter.exited).toBe(0)
    return readFileSync(join(dir, "created.json"), "utf8")
  }

  test("a user named __proto__ is in created.json with its count (memory store)", async () => {
    const created = await countHostileUsers({})
    expect(JSON.parse(created)).toEqual(JSON.parse(`{"__proto__": 2, "constructor": 1}`))
    expect(Object.hasOwn(JSON.parse(created), "__proto__")).toBe(true)
  })

  test.if(postgresUp)("a user named __proto__ is in created.json with its count (PostgreSQL store)", async () => {
    const databaseUrl = await databases.create("counter_db")
    const created = await countHostileUsers({ COUNTER_STORE: "postgres", DATABASE_URL: databaseUrl })
    expect(JSON.parse(created)).toEqual(JSON.parse(`{"__proto__": 2, "constructor": 1}`))
    expect(Object.hasOwn(JSON.parse(created), "__proto__")).toBe(true)
  })
})

describe.if(rabbitUp)("event-counter program: output directory, stops and reruns", () => {
  const readStatus = (dir: string) => JSON.parse(readFileSync(join(dir, "counter-status.json"), "utf8"))
  /** The last "counts written" line: the run's final word on whether its counts are complete. */
  const finalLine = (stderr: string) => stderr.split("\n").findLast((line) => line.includes("counts written")) ?? ""

  /** Waits until the queue holds everything a stopped run did not count: the broker requeues on its own time. */
  const requeued = async (queue: string, expected: number) => {
    let left = await queueDepth(queue)
    for (let i = 0; i < 50 && left < expected; i++) {
      await Bun.sleep(100)
      left = await queueDepth(queue)
    }
    return left
  }

  test("an OUTPUT_DIR it cannot write stops it with exit 2, naming OUTPUT_DIR, before it takes a message", async () => {
    const dest = destination()
    cleanup.push(deleteQueues(dest))
    await publish(dest, { count: 100, duplicateRatio: 0, seed: 31 })
    const file = join(mkdtempSync(join(tmpdir(), "counter-")), "a-file")
    writeFileSync(file, "")
    const counter = startProgram("event-counter.ts", {
      RABBITMQ_URL: url, RABBITMQ_EXCHANGE: dest.exchange, RABBITMQ_QUEUE: dest.queue, OUTPUT_DIR: join(file, "out"), IDLE_TIMEOUT: "1s"
    })
    expect(await counter.exited).toBe(2)
    expect(counter.stderr()).toContain(`OUTPUT_DIR: expected a directory the counter can write to (${join(file, "out")}: `)
    expect(await queueDepth(dest.queue)).toBe(100)
  })

  test("a timeout of zero is refused with exit 2, naming the variable", async () => {
    const idle = startProgram("event-counter.ts", { RABBITMQ_URL: "amqp://guest:guest@127.0.0.1:1", IDLE_TIMEOUT: "0s" })
    expect(await idle.exited).toBe(2)
    expect(idle.stderr()).toContain(`IDLE_TIMEOUT: expected a duration such as 5s, 250ms, 1m30s or "5 seconds", greater than 0 (got "0s")`)
    const shutdown = startProgram("event-counter.ts", { RABBITMQ_URL: "amqp://guest:guest@127.0.0.1:1", SHUTDOWN_TIMEOUT: "0" })
    expect(await shutdown.exited).toBe(2)
    expect(shutdown.stderr()).toContain(`SHUTDOWN_TIMEOUT: expected a duration`)
  })

  test("counts it cannot write at the end are saved where the log says, and it exits 1", async () => {
    const dest = destination()
    cleanup.push(deleteQueues(dest))
    const run = await publish(dest, { count: 2000, users: 5, duplicateRatio: 0.1, seed: 32 })
    const dir = join(mkdtempSync(join(tmpdir(), "counter-")), "out")
    const counter = startProgram("event-counter.ts", {
      RABBITMQ_URL: url, RABBITMQ_EXCHANGE: dest.exchange, RABBITMQ_QUEUE: dest.queue, OUTPUT_DIR: dir, IDLE_TIMEOUT: "2s"
    })
    await whenCounted(await opsUrl(counter), run.unique)
    // The directory goes away under the running counter (a volume unmounted, a cleanup script).
    rmSync(dir, { recursive: true })
    writeFileSync(dir, "")
    expect(await counter.exited).toBe(1)
    const savedIn = /they are saved in ([^\s"\\]+)/.exec(counter.stderr())?.[1]
    expect(savedIn).toBeDefined()
    expect(readCounts(savedIn!)).toEqual(run.expected)
    expect(readStatus(savedIn!)).toMatchObject({ complete: true, stoppedBy: "idle" })
    expect(await queueDepth(dest.queue)).toBe(0)
  })

  test("SIGTERM mid-run, then a rerun in the same OUTPUT_DIR: exact counts; the files say partial, then complete", async () => {
    const dest = destination()
    cleanup.push(deleteQueues(dest))
    const sent = 30_000
    const run = await publish(dest, { count: sent, users: 8, duplicateRatio: 0, seed: 33 })
    const dir = mkdtempSync(join(tmpdir(), "counter-"))
    const env = { RABBITMQ_URL: url, RABBITMQ_EXCHANGE: dest.exchange, RABBITMQ_QUEUE: dest.queue, OUTPUT_DIR: dir, PREFETCH: "200" }

    const first = startProgram("event-counter.ts", { ...env, IDLE_TIMEOUT: "60s" })
    await whenCounted(await opsUrl(first), 1000)
    first.kill("SIGTERM")
    // A clean stop, as the shutdown contract says; the files and the last line say it is partial.
    expect(await first.exited).toBe(0)
    expect(finalLine(first.stderr())).toContain("counts written (partial: stopped by a signal before the queue was idle; rerun to finish)")
    const partial = readCounts(dir)
    expect(readStatus(dir)).toMatchObject({ complete: false, stoppedBy: "signal", runs: 1, totals: totals(partial) })
    const counted = total(partial)
    expect(counted).toBeGreaterThanOrEqual(1000)
    expect(await requeued(dest.queue, sent - counted)).toBe(sent - counted)

    const second = startProgram("event-counter.ts", { ...env, IDLE_TIMEOUT: "1s" })
    expect(await second.exited).toBe(0)
    expect(second.stderr()).toContain("resuming from the partial counts of an earlier run")
    expect(readCounts(dir)).toEqual(run.expected)
    expect(readStatus(dir)).toMatchObject({ complete: true, stoppedBy: "idle", runs: 2, totals: totals(run.expected) })
    expect(JSON.parse(finalLine(second.stderr()))).toMatchObject({ message: "counts written", annotations: { complete: true, runs: 2 } })
    expect(await queueDepth(dest.queue)).toBe(0)
  })
})

describe.if(rabbitUp && postgresUp)("event-counter program, durable store: stops and reruns", () => {
  test("SIGTERM mid-run, then a rerun: the store kept the counts, the files say partial, then complete", async () => {
    const databaseUrl = await databases.create("counter_db")
    const dest = destination()
    cleanup.push(deleteQueues(dest))
    const run = await publish(dest, { count: 10_000, users: 7, duplicateRatio: 0.2, seed: 34 })
    const dir = mkdtempSync(join(tmpdir(), "counter-"))
    const env = {
      RABBITMQ_URL: url, RABBITMQ_EXCHANGE: dest.exchange, RABBITMQ_QUEUE: dest.queue, OUTPUT_DIR: dir,
      COUNTER_STORE: "postgres", DATABASE_URL: databaseUrl, PREFETCH: "200", COUNTER_BATCH_SIZE: "100"
    }
    const status = () => JSON.parse(readFileSync(join(dir, "counter-status.json"), "utf8"))

    const first = startProgram("event-counter.ts", { ...env, IDLE_TIMEOUT: "60s" })
    await whenCounted(await opsUrl(first), 1000)
    first.kill("SIGTERM")
    expect(await first.exited).toBe(0)
    expect(status()).toMatchObject({ complete: false, stoppedBy: "signal", runs: 1 })
    expect(total(readCounts(dir))).toBeLessThan(run.unique)

    const second = startProgram("event-counter.ts", { ...env, IDLE_TIMEOUT: "1s" })
    expect(await second.exited).toBe(0)
    // The files are the store's counts, which hold the first run's: nothing is added twice.
    expect(readCounts(dir)).toEqual(run.expected)
    expect(status()).toMatchObject({ complete: true, stoppedBy: "idle", runs: 2 })
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
        const databaseUrl = await databases.create("counter_db")
        env.DATABASE_URL = databaseUrl
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
