/**
 * What every long-running worker program runs with, besides its broker and database: readiness,
 * telemetry (traces over OTLP when configured; metrics on `/metrics`, and over OTLP when asked),
 * the ops HTTP server, the file system, and the soft memory limit when `MEMORY_LIMIT` is set.
 * Config is read up front by `loadBaseConfig`, so a bad value stops the program before anything
 * connects.
 */
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as NodePath from "@effect/platform-node/NodePath"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { load } from "../../src/runtime/config.ts"
import { Subscriber } from "../../src/capabilities/Subscriber.ts"
import { Readiness } from "../../src/runtime/Readiness.ts"
import * as Telemetry from "../telemetry/otel.ts"
import * as MemoryLimit from "./memoryLimit.ts"
import * as OpsServer from "./opsServer.ts"

export const loadBaseConfig = (serviceName: string) =>
  Effect.all({
    ops: load(OpsServer.OpsServerConfig),
    memoryLimit: load(MemoryLimit.MemoryLimitConfig),
    telemetry: Telemetry.TelemetryConfig
  }).pipe(Effect.map((config) => ({ serviceName: config.telemetry.serviceName ?? serviceName, ...config })))

export type BaseConfig = Effect.Success<ReturnType<typeof loadBaseConfig>>

export const baseLayer = (config: BaseConfig) =>
  OpsServer.layerOptions(config.ops).pipe(
    Layer.provideMerge(Layer.mergeAll(
      Readiness.layer,
      Telemetry.layer({ ...config.telemetry, serviceName: config.serviceName })
    )),
    Layer.merge(Layer.mergeAll(NodeFileSystem.layer, NodePath.layer, MemoryLimit.layer(config.memoryLimit)))
  )

/**
 * Runs a worker with readiness: ready once started while its broker is reachable, and not ready
 * from the moment shutdown begins (a sibling fiber notices the interruption while the worker is
 * still draining), so a load balancer stops sending work before the last messages are settled.
 */
export const asWorker = <A, E, R>(worker: Effect.Effect<A, E, R>): Effect.Effect<A, E, R | Readiness | Subscriber> =>
  Effect.gen(function*() {
    const readiness = yield* Readiness
    yield* readiness.register("broker", (yield* Subscriber).healthy)
    yield* readiness.set("worker", true)
    return yield* Effect.raceFirst(worker, Effect.never.pipe(Effect.onInterrupt(() => readiness.shutdown)))
  })
