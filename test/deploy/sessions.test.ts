/**
 * The session worker's deployment in compose: its services (two workers and the one-shot sender
 * on PostgreSQL, a worker on the Service Bus emulator under its profile) configured with
 * variables the programs read and accept, what Prometheus scrapes, and a Grafana dashboard whose
 * queries name only series a real worker exports — read from its /metrics after it processed the
 * sender's messages, so a renamed metric or a missing `_total`/`_bucket` fails here rather than
 * as an empty panel.
 */
import { afterAll, describe, expect, test } from "bun:test"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import * as SessionQueueLayer from "../../layers/sessionQueue.ts"
import { load, providerFrom } from "../../src/runtime/config.ts"
import { senderConfig, workerConfig } from "../../src/sessions/config.ts"
import { freshDatabases } from "../support/databases.ts"
import { opsUrl, startProgram } from "../support/program.ts"
import { findSamples, parsePrometheus } from "../support/prometheus.ts"
import { postgresUrl, probePostgres, requireServer } from "../support/servers.ts"

const root = join(import.meta.dir, "..", "..")

interface Panel {
  readonly targets?: ReadonlyArray<{ readonly expr?: string }>
  readonly panels?: ReadonlyArray<Panel>
}
const exprs = (panels: ReadonlyArray<Panel>): Array<string> =>
  panels.flatMap((panel) => [...(panel.targets ?? []).flatMap((t) => t.expr === undefined ? [] : [t.expr]), ...exprs(panel.panels ?? [])])

interface Service {
  readonly command?: ReadonlyArray<string>
  readonly environment?: Record<string, string>
  readonly depends_on?: unknown
  readonly healthcheck?: unknown
  readonly volumes?: ReadonlyArray<string>
  readonly profiles?: ReadonlyArray<string>
}
const services = (Bun.YAML.parse(readFileSync(join(root, "compose.yaml"), "utf8")) as { services: Record<string, Service> }).services

/** What a service's environment configures, as the programs load it (a bad value fails the load). */
const loaded = <A>(service: Service, config: Parameters<typeof load<A>>[0]) =>
  Effect.runPromise(load(config).pipe(Effect.provideService(ConfigProvider.ConfigProvider, providerFrom([], service.environment ?? {}))))

describe("Session services in compose.yaml", () => {
  const workers = ["session-worker-1", "session-worker-2"]

  test("two workers and the one-shot sender on PostgreSQL, the workers with 20 slots and a readiness check", async () => {
    for (const name of workers) {
      const service = services[name]!
      expect(service.command).toEqual(["dist/session-worker.js"])
      expect(service.depends_on).toEqual({ postgres: { condition: "service_healthy" } })
      expect(service.healthcheck).toBeDefined()
      expect(service.profiles).toBeUndefined()
      expect((await loaded(service, SessionQueueLayer.config)).kind).toBe("postgres")
      expect(await loaded(service, workerConfig)).toMatchObject({ queue: "session-queue", workerCount: 20 })
    }
    const sender = services["session-sender"]!
    expect(sender.command).toEqual(["dist/session-sender.js"])
    expect(sender.profiles).toEqual(["tools"])
    expect((await loaded(sender, SessionQueueLayer.config)).kind).toBe("postgres")
    expect(await loaded(sender, senderConfig)).toMatchObject({ sessionCount: 100, messagesPerSession: 10 })
  })

  test("under the servicebus profile a worker talks to the emulator, whose configuration declares the session queue", async () => {
    const service = services["session-worker-servicebus"]!
    expect(service.profiles).toEqual(["servicebus"])
    expect(service.command).toEqual(["dist/session-worker.js"])
    const backend = await loaded(service, SessionQueueLayer.config)
    expect(backend.kind).toBe("servicebus")
    const connection = service.environment!["SERVICEBUS_CONNECTION_STRING"]!
    expect(connection).toContain("Endpoint=sb://servicebus-emulator")
    expect(connection).toContain("UseDevelopmentEmulator=true")
    expect(services["servicebus-emulator"]!.profiles).toEqual(["servicebus"])
    const mount = services["servicebus-emulator"]!.volumes!.find((v) => v.includes("Config.json"))!
    const emulator = JSON.parse(readFileSync(join(root, mount.split(":")[0]!), "utf8")) as {
      UserConfig: { Namespaces: Array<{ Queues: Array<{ Name: string; Properties: { RequiresSession: boolean } }> }> }
    }
    const { queue: name } = await loaded(service, workerConfig)
    const queue = emulator.UserConfig.Namespaces.flatMap((n) => n.Queues).find((q) => q.Name === name)
    expect(queue?.Properties.RequiresSession).toBe(true)
  })

  test("Prometheus scrapes the session workers", () => {
    const prometheus = Bun.YAML.parse(readFileSync(join(root, "deploy", "prometheus", "prometheus.yml"), "utf8")) as {
      scrape_configs: Array<{ static_configs: Array<{ targets: Array<string> }> }>
    }
    const targets = prometheus.scrape_configs.flatMap((job) => job.static_configs.flatMap((c) => c.targets))
    for (const name of [...workers, "session-worker-servicebus"]) expect(targets).toContain(`${name}:9090`)
  })
})

if (await requireServer("PostgreSQL", probePostgres(postgresUrl()))) {
  const databases = freshDatabases()
  afterAll(() => databases.dropAll())

  describe("Sessions dashboard", () => {
    const dashboard = JSON.parse(readFileSync(join(root, "deploy", "grafana", "dashboards", "sessions.json"), "utf8")) as {
      uid: string
      panels: Array<Panel>
    }
    const used = [...new Set(exprs(dashboard.panels).flatMap((e) => e.match(/\bsession_[a-z0-9_]+/g) ?? []))].sort()

    test("its queries name only series a worker exports after processing messages, and use every session family", async () => {
      const env = { SESSION_BACKEND: "postgres", DATABASE_URL: await databases.create("sessions_dash") }
      const sender = startProgram("session-sender.ts", { ...env, SESSION_COUNT: "5", MESSAGES_PER_SESSION: "4" })
      expect(await sender.exited).toBe(0)
      const worker = startProgram("session-worker.ts", {
        ...env,
        WORKER_COUNT: "2",
        RECEIVE_TIMEOUT: "1s",
        RETRY_DELAY: "200ms",
        RECEIVE_WAIT: "200ms",
        QUEUE_DEPTH_INTERVAL: "200ms"
      })
      try {
        await worker.waitFor(/session worker on/, 60_000)
        const url = `${await opsUrl(worker)}/metrics`
        let page = parsePrometheus(await (await fetch(url)).text())
        const deadline = Date.now() + 60_000
        // The worker is another process: its progress shows only in what it exports.
        while (findSamples(page, "session_messages_total", { outcome: "completed" }).reduce((n, s) => n + s.value, 0) < 20) {
          if (Date.now() > deadline) throw new Error("the worker did not complete the 20 messages")
          await Bun.sleep(100)
          page = parsePrometheus(await (await fetch(url)).text())
        }
        const families = Object.keys(page.types).filter((name) => name.startsWith("session_")).sort()
        expect(families).toEqual([
          "session_active_sessions", "session_lock_lost_total", "session_lock_renewals_total", "session_message_processing_duration_seconds",
          "session_messages_duplicate_total", "session_messages_out_of_order_total", "session_messages_total", "session_queue_depth"
        ])
        const exported = new Set(page.samples.map((s) => s.name))
        expect(used.filter((name) => !exported.has(name))).toEqual([])
        expect(families.filter((family) => !used.some((name) => name === family || name === `${family}_bucket`))).toEqual([])
        expect(findSamples(page, "session_messages_out_of_order_total").map((s) => s.value)).toEqual([0])
        expect(dashboard.uid).toBe("sessions")
      } finally {
        worker.kill("SIGTERM")
      }
      expect(await worker.exited).toBe(0)
    }, 120_000)
  })
}
