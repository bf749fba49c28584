/**
 * OpsRoutes: routes a program adds to its ops server (`makeOpsApp`), besides liveness,
 * readiness and metrics.
 *
 * The ops server starts before the parts of a program that have something to show (it must
 * answer `/readyz` while they connect), so it cannot be handed their routes when it is built.
 * Like Readiness, this is a registry: a part mounts its Hono routes for as long as its scope
 * lives, and the ops app looks the routes up at each request. A path nothing serves yet is 404.
 *
 * The built-in routes come first: a mounted `/healthz` never shadows the ops server's own.
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import { Hono } from "hono"

interface Mounted {
  readonly name: string
  readonly routes: Hono
}

export class OpsRoutes extends Context.Service<OpsRoutes, {
  /** Serves `routes` on the ops server until the scope closes; `name` says whose they are (logged). */
  readonly mount: (name: string, routes: Hono) => Effect.Effect<void, never, Scope.Scope>
  /** Answers a request with the mounted routes: the first that has a matching route, else 404. */
  readonly fetch: (request: Request) => Response | Promise<Response>
}>()("queueworks/OpsRoutes") {
  static readonly layer = Layer.sync(OpsRoutes, () => {
    let mounted: ReadonlyArray<Mounted> = []
    // Rebuilt on each change, not per request: Hono compiles its router on first use.
    let combined = new Hono()
    const rebuild = () => {
      const app = new Hono()
      for (const { routes } of mounted) app.route("/", routes)
      combined = app
    }
    return OpsRoutes.of({
      mount: (name, routes) => {
        const entry: Mounted = { name, routes }
        return Effect.acquireRelease(
          Effect.sync(() => {
            mounted = [...mounted, entry]
            rebuild()
          }).pipe(Effect.andThen(Effect.logDebug(`ops routes of ${name} mounted`))),
          () =>
            Effect.sync(() => {
              mounted = mounted.filter((m) => m !== entry)
              rebuild()
            })
        )
      },
      fetch: (request) => combined.fetch(request)
    })
  })

  /** `mount` for as long as the layer lives. */
  static layerMount<E, R>(name: string, routes: Effect.Effect<Hono, E, R>): Layer.Layer<never, E, OpsRoutes | Exclude<R, Scope.Scope>> {
    return Layer.effectDiscard(Effect.gen(function*() {
      const registry = yield* OpsRoutes
      yield* registry.mount(name, yield* routes)
    }))
  }
}
