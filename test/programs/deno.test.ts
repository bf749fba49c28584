/**
 * The code stays on web standards and Node-compatible APIs, so the programs also run on Deno
 * (installed by `scripts/deno.sh`, which `.ci/run` calls). This runs the demonstration and the
 * RabbitMQ counter under it.
 */
import { afterAll, describe, expect, test } from "bun:test"
import { existsSync, mkdtempSync, readFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as Effect from "effect/Effect"
import * as RabbitMQ from "../../layers/rabbitmq/index.ts"
import { publishTraffic } from "../../src/counter/publishTraffic.ts"
import { deleteRabbitmqTopology } from "../support/rabbitmq.ts"
import { freshName, probeRabbitmq, rabbitmqUrl, requireServer } from "../support/servers.ts"

const root = join(import.meta.dir, "..", "..")
const deno = join(root, ".services", "deno", "node_modules", ".bin", "deno")
const denoInstalled = await requireServer("Deno (install it with scripts/deno.sh)", async () => {
  if (!existsSync(deno)) throw new Error(`${deno} does not exist`)
})

const runUnderDeno = async (program: string, env: Record<string, string>) => {
  const proc = Bun.spawn([deno, "run", "-A", "--node-modules-dir=manual", join(root, "programs", program)], {
    cwd: root,
    env: { ...process.env, LOG_FORMAT: "json", METRICS_PORT: "0", ...env },
    stdout: "pipe",
    stderr: "pipe"
  })
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited])
  return { stdout, stderr, code }
}

describe.if(denoInstalled)("under Deno", () => {
  test("the demonstration runs and its counts match", async () => {
    const dir = mkdtempSync(join(tmpdir(), "deno-demo-"))
    const run = await runUnderDeno("demo.ts", { OUTPUT_DIR: dir })
    expect(run.code).toBe(0)
    expect(run.stdout).toContain("counts match the generator's expectation")
  })
})

const url = rabbitmqUrl()
const rabbitUp = await requireServer("RabbitMQ", probeRabbitmq(url))

const cleanup: Array<{ topic: string; group: string }> = []
afterAll(() => deleteRabbitmqTopology(url, cleanup))

describe.if(denoInstalled && rabbitUp)("under Deno, with RabbitMQ", () => {
  test("the event counter counts exactly and serves its ops endpoints", async () => {
    const dest = { exchange: freshName("deno_x"), queue: freshName("deno_q") }
    cleanup.push({ topic: dest.exchange, group: dest.queue })
    const traffic = await Effect.runPromise(
      publishTraffic(dest, { count: 300, duplicateRatio: 0.2, malformed: 5, seed: 4 }).pipe(Effect.provide(RabbitMQ.layer({ url })))
    )
    const dir = mkdtempSync(join(tmpdir(), "deno-counter-"))
    const run = await runUnderDeno("event-counter.ts", {
      RABBITMQ_URL: url, RABBITMQ_EXCHANGE: dest.exchange, RABBITMQ_QUEUE: dest.queue, OUTPUT_DIR: dir, IDLE_TIMEOUT: "1s"
    })
    expect(run.code).toBe(0)
    expect(run.stderr).toContain("ops server listening on")
    for (const type of ["created", "updated", "deleted"] as const) {
      expect(JSON.parse(readFileSync(join(dir, `${type}.json`), "utf8"))).toEqual(traffic.expected[type])
    }
  })
})
