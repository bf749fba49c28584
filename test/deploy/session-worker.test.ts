/**
 * deploy/kubernetes/session-worker.yaml: the Deployment configures the worker with variables it
 * really reads (and accepts), shuts down within its grace period, probes the real endpoints; the
 * KEDA ScaledObject scales that Deployment on a series the worker really exports, read from a
 * running worker's /metrics.
 */
import { expect, test } from "bun:test"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { join } from "node:path"
import * as SessionQueueLayer from "../../layers/sessionQueue.ts"
import { load, parseDuration, providerFrom } from "../../src/runtime/config.ts"
import { workerConfig } from "../../src/sessions/config.ts"
import { opsUrl, startProgram } from "../support/program.ts"
import { findSamples, parsePrometheus } from "../support/prometheus.ts"

const file = join(import.meta.dir, "..", "..", "deploy", "kubernetes", "session-worker.yaml")

interface EnvVar {
  readonly name: string
  readonly value?: string
  readonly valueFrom?: unknown
}
interface Container {
  readonly env: ReadonlyArray<EnvVar>
  readonly ports: ReadonlyArray<{ readonly containerPort: number }>
  readonly readinessProbe: { readonly httpGet: { readonly path: string } }
  readonly livenessProbe: { readonly httpGet: { readonly path: string } }
}
interface DeploymentSpec {
  readonly template: { readonly spec: { readonly terminationGracePeriodSeconds: number; readonly containers: ReadonlyArray<Container> } }
}
interface ScaledObjectSpec {
  readonly scaleTargetRef: { readonly name: string }
  readonly triggers: ReadonlyArray<{ readonly type: string; readonly metadata: { readonly query: string } }>
}
/** A manifest as parsed; the fields read below are checked by the reading (a missing one fails). */
interface Manifest {
  readonly kind: string
  readonly metadata: { readonly name: string }
  readonly spec: unknown
}

const manifests = async () => Bun.YAML.parse(await Bun.file(file).text()) as ReadonlyArray<Manifest>

const deployment = async () => {
  const found = (await manifests()).find((m) => m.kind === "Deployment")!
  const spec = found.spec as DeploymentSpec
  const container = spec.template.spec.containers[0]!
  const env: Record<string, string> = {}
  // A Secret's value is a placeholder of the right form.
  for (const v of container.env) env[v.name] = v.value ?? "postgres://user:secret@db.internal:5432/sessions"
  return { spec, container, env }
}

test("the Deployment's variables are ones the worker reads, with values it accepts: PostgreSQL backend, 20 slots", async () => {
  const { env } = await deployment()
  const provide = Effect.provideService(ConfigProvider.ConfigProvider, providerFrom([], env))
  const config = await Effect.runPromise(load(workerConfig).pipe(provide))
  expect(config).toMatchObject({ queue: "session-queue", workerCount: 20, idleThreshold: 3, maxDelivery: 10 })
  expect(Duration.toMillis(config.receiveTimeout)).toBe(20_000)
  const backend = await Effect.runPromise(load(SessionQueueLayer.config).pipe(provide))
  expect(backend.kind).toBe("postgres")
  const known = new Set([
    "SESSION_BACKEND", "DATABASE_URL", "SERVICEBUS_QUEUE_NAME", "WORKER_COUNT", "RECEIVE_TIMEOUT", "RETRY_DELAY", "IDLE_THRESHOLD",
    "MAX_DELIVERY", "SESSION_LOCK_DURATION", "QUEUE_DEPTH_INTERVAL", "SHUTDOWN_TIMEOUT", "METRICS_PORT", "LOG_FORMAT"
  ])
  expect(Object.keys(env).filter((name) => !known.has(name))).toEqual([])
})

test("a stopped replica has time to settle and release: SHUTDOWN_TIMEOUT is below the grace period; probes hit /readyz and /healthz on the metrics port", async () => {
  const { container, env, spec } = await deployment()
  const shutdown = Duration.toSeconds(parseDuration(env.SHUTDOWN_TIMEOUT!)!)
  expect(shutdown).toBeLessThan(spec.template.spec.terminationGracePeriodSeconds)
  expect(container.readinessProbe.httpGet.path).toBe("/readyz")
  expect(container.livenessProbe.httpGet.path).toBe("/healthz")
  expect(container.ports[0]!.containerPort).toBe(Number(env.METRICS_PORT))
})

test("the ScaledObject scales the Deployment on session_queue_depth, a series a running worker exports with those labels", async () => {
  const all = await manifests()
  const scaled = all.find((m) => m.kind === "ScaledObject")!.spec as ScaledObjectSpec
  expect(scaled.scaleTargetRef.name).toBe(all.find((m) => m.kind === "Deployment")!.metadata.name)
  const trigger = scaled.triggers[0]!
  expect(trigger.type).toBe("prometheus")
  const query = trigger.metadata.query
  const selector = /session_queue_depth\{([^}]*)\}/.exec(query)
  expect(selector).not.toBeNull()
  const labels = Object.fromEntries(selector![1]!.split(",").map((pair) => {
    const [key, value] = pair.split("=")
    return [key!.trim(), JSON.parse(value!.trim()) as string]
  }))

  const worker = startProgram("session-worker.ts", { SESSION_BACKEND: "memory", WORKER_COUNT: "1", SERVICEBUS_QUEUE_NAME: labels.queue! })
  try {
    await worker.waitFor(/session worker on/, 60_000)
    const text = await (await fetch(`${await opsUrl(worker)}/metrics`)).text()
    const exposition = parsePrometheus(text)
    expect(findSamples(exposition, "session_queue_depth", labels).map((s) => s.value)).toEqual([0])
    expect(exposition.types.session_queue_depth).toBe("gauge")
  } finally {
    worker.kill("SIGTERM")
  }
  expect(await worker.exited).toBe(0)
}, 90_000)
