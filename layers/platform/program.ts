/**
 * What every long-running worker program runs with, besides its broker and database: readiness,
 * telemetry (traces over OTLP when configured; metrics on `/metrics`, and over OTLP when asked),
 * the ops HTTP server (with `OpsRoutes`, where the program's parts mount routes of their own),
 * the file system, and the soft memory limit when `MEMORY_LIMIT` is set.
 * Config is read up front by `loadBaseConfig`, so a bad value stops the program before anything
 * connects.
 */
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as NodePath from "@effect/platform-node/NodePath"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Scope from "effect/Scope"
import { load } from "../../src/runtime/config.ts"
import { Subscriber } from "../../src/capabilities/Subscriber.ts"
import { OpsRoutes } from "../../src/runtime/OpsRoutes.ts"
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
      OpsRoutes.layer,
      Telemetry.layer({ ...config.telemetry, serviceName: config.serviceName })
    )),
    Layer.merge(Layer.mergeAll(NodeFileSystem.layer, NodePath.layer, MemoryLimit.layer(config.memoryLimit)))
  )

/**
 * Runs a long-lived program under readiness: each of `checks` is registered by name for as long
 * as the program runs (`/readyz` reports it), and from the moment shutdown begins the process is
 * not ready (a sibling fiber notices the interruption while the program is still draining), so a
 * load balancer stops sending work before the last of it is settled.
 */
export const withReadiness = <A, E, R, R2 = never>(
  program: Effect.Effect<A, E, R>,
  checks: Readonly<Record<string, Effect.Effect<boolean, unknown, R2>>> = {}
): Effect.Effect<A, E, R | R2 | Readiness> =>
  Effect.scopedWith((scope) =>
    Effect.gen(function*() {
      const readiness = yield* Readiness
      // The checks get a scope of their own: the program's resources stay in the caller's.
      for (const [name, check] of Object.entries(checks)) yield* Readiness.check(name, check).pipe(Scope.provide(scope))
      return yield* Effect.raceFirst(program, Effect.never.pipe(Effect.onInterrupt(() => readiness.shutdown)))
    })
  )

/** A subscriber worker under readiness: `broker` while its broker is reachable, `worker` once it started. */
export const asWorker = <A, E, R>(worker: Effect.Effect<A, E, R>): Effect.Effect<A, E, R | Readiness | Subscriber> =>
  withReadiness(worker, { broker: Subscriber.use((subscriber) => subscriber.healthy), worker: Effect.succeed(true) })
