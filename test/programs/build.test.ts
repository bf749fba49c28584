/**
 * The bundles the container image runs (`scripts/build.ts`), each copied alone into a directory
 * with no node_modules anywhere above it: they must carry everything they load, tracing and the
 * OTLP metrics exporter included (both are imported only when configured).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import * as amqp from "amqplib"
import * as Effect from "effect/Effect"
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { dirname, join } from "node:path"
import * as RabbitMQ from "../../layers/rabbitmq/index.ts"
import { eventTypes } from "../../src/counter/events.ts"
import { publishTraffic } from "../../src/counter/publishTraffic.ts"
import { parseTraceparent } from "../../src/messaging/traceContext.ts"
import * as OtlpReceiver from "../support/otlpReceiver.ts"
import { startProgram } from "../support/program.ts"
import { deleteRabbitmqTopology } from "../support/rabbitmq.ts"
import { freshName, probeRabbitmq, rabbitmqUrl, requireServer } from "../support/servers.ts"

const root = join(import.meta.dir, "..", "..")
const work = mkdtempSync(join(tmpdir(), "bundles-"))
const alone = join(work, "alone")
const bundle = (name: string) => join(alone, name)

const hasNodeModulesAbove = (dir: string): boolean => {
  for (let at = dir; ; at = dirname(at)) {
    if (existsSync(join(at, "node_modules"))) return true
    if (dirname(at) === at) return false
  }
}

let buildLog = ""
beforeAll(async () => {
  const proc = Bun.spawn([process.execPath, "run", join(root, "scripts", "build.ts"), "--outdir", join(work, "dist")], {
    stdout: "pipe",
    stderr: "pipe"
  })
  buildLog = (await new Response(proc.stdout).text()) + (await new Response(proc.stderr).text())
  if ((await proc.exited) !== 0) throw new Error(`scripts/build.ts failed:\n${buildLog}`)
  mkdirSync(alone)
  for (const file of readdirSync(join(work, "dist"))) copyFileSync(join(work, "dist", file), join(alone, file))
}, 60_000)

describe("program bundles", () => {
  test("every program is bundled into one file, beside PGlite's run-time files, and the bundles sit where no node_modules can help them", () => {
    const programs = readdirSync(join(root, "programs")).filter((f) => f.endsWith(".ts")).map((f) => f.replace(/\.ts$/, ".js"))
    expect(readdirSync(alone).sort()).toEqual([...programs, "initdb.wasm", "pglite.data", "pglite.wasm"].sort())
    expect(buildLog).toContain(`${programs.length} programs bundled`)
    expect(hasNodeModulesAbove(alone)).toBe(false)
  })

  test("the demonstration bundle runs on embedded defaults (PGlite included): the counts and the orders read model match", async () => {
    const demo = startProgram(bundle("demo.js"), { OUTPUT_DIR: join(work, "demo-out"), DATABASE_URL: "" }, ["--orders", "30"], { cwd: alone })
    expect(await demo.exited).toBe(0)
    expect(demo.stdout()).toContain("counts match the generator's expectation")
    expect(demo.stdout()).toContain("orders created: 30;")
    expect(demo.stdout()).toContain("read model matches the orders the API created")
  }, 180_000)

  test("a bad variable stops the counter bundle before it connects, with exit 2 naming it", async () => {
    const cases = [
      ["MEMORY_LIMIT", "a lot", "MEMORY_LIMIT: expected a size"],
      ["OTEL_METRICS_EXPORTER", "otlp,console", "OTEL_METRICS_EXPORTER: expected a comma-separated list"],
      ["OTEL_METRIC_EXPORT_INTERVAL", "often", "OTEL_METRIC_EXPORT_INTERVAL: expected a duration"]
    ] as const
    for (const [variable, value, message] of cases) {
      const counter = startProgram(bundle("event-counter.js"), { [variable]: value, RABBITMQ_URL: "amqp://nobody:none@127.0.0.1:1" }, [], {
        cwd: alone
      })
      expect(await counter.exited).toBe(2)
      expect(counter.stderr()).toContain(message)
    }
  })
})

const url = rabbitmqUrl()
const rabbitUp = await requireServer("RabbitMQ", probeRabbitmq(url))

describe.if(rabbitUp)("program bundles with RabbitMQ", () => {
  const dest = { exchange: freshName("bundle_x"), queue: freshName("bundle_q") }
  afterAll(() => deleteRabbitmqTopology(url, [{ topic: dest.exchange, group: dest.queue }]))

  test("the counter bundle counts exactly under a memory limit, exports message spans parented by their headers, and pushes its metrics", () =>
    Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const receiver = yield* OtlpReceiver.make
      const run = yield* publishTraffic(dest, { count: 2000, users: 5, duplicateRatio: 0.1, malformed: 5, seed: 3 }).pipe(
        Effect.provide(RabbitMQ.layer({ url }))
      )
      const first = yield* Effect.promise(() => peekTraceparent(dest.queue))

      const out = join(work, "counter-out")
      const counter = startProgram(bundle("event-counter.js"), {
        RABBITMQ_URL: url,
        RABBITMQ_EXCHANGE: dest.exchange,
        RABBITMQ_QUEUE: dest.queue,
        OUTPUT_DIR: out,
        IDLE_TIMEOUT: "1s",
        MEMORY_LIMIT: "200MiB",
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
        OTEL_SERVICE_NAME: "bundled-counter",
        OTEL_METRICS_EXPORTER: "otlp,prometheus"
      }, [], { cwd: alone })
      expect(yield* Effect.promise(() => counter.exited)).toBe(0)

      for (const type of eventTypes) {
        expect(JSON.parse(readFileSync(join(out, `${type}.json`), "utf8"))).toEqual(run.expected[type])
      }
      // The first message's span: a child of the publish span named in its traceparent header.
      const span = yield* receiver.awaitSpan((s) => s.parentSpanId === first.spanId, { timeout: "5 seconds" })
      expect(span.traceId).toBe(first.traceId)
      expect(span.name).toBe(`consume ${dest.exchange}`)
      expect(span.serviceName).toBe("bundled-counter")

      // The last push, made as the counter stopped, holds the final counts.
      const events = yield* receiver.awaitMetric(
        (m) => m.name === "eventcounter_events" && m.points.some((p) => p.attributes["result"] === "counted" && p.value === run.unique),
        { timeout: "5 seconds" }
      )
      expect(events.serviceName).toBe("bundled-counter")
      expect(events.isMonotonic).toBe(true)
    }))), 60_000)
})

/** The trace context in the header of the message at the head of `queue`, which stays there. */
const peekTraceparent = async (queue: string) => {
  const connection = await amqp.connect(url)
  try {
    const channel = await connection.createChannel()
    const msg = await channel.get(queue, { noAck: false })
    if (msg === false) throw new Error(`${queue} is empty`)
    channel.nack(msg, false, true)
    const parent = parseTraceparent(String(msg.properties.headers?.["traceparent"] ?? ""))
    if (parent === undefined) throw new Error("the message has no traceparent header")
    return parent
  } finally {
    await connection.close()
  }
}
