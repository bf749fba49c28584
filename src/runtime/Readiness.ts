/**
 * Readiness: whether this process should be sent work.
 *
 * Any part of a program registers named checks (`database`, `broker`, `breaker`, ...); the
 * process is ready when every check passes and it is not shutting down. `/readyz` reports each
 * check by name. Nothing here knows what a check looks at: a program without a broker registers
 * no broker check.
 *
 * - `Readiness.check(name, effect)` registers for as long as the enclosing scope lives, and
 *   `Readiness.layerCheck` for as long as a layer does: a dependency that goes away takes its
 *   check with it.
 * - A check runs on every report, bounded by `checkTimeout`; failing, dying or hanging counts as
 *   not ready, never as an error of the endpoint.
 */
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Ref from "effect/Ref"
import type * as Scope from "effect/Scope"

export interface ReadinessReport {
  readonly ready: boolean
  readonly checks: Readonly<Record<string, boolean>>
  readonly shuttingDown: boolean
}

/** How long one check may take before it counts as failing. */
export const checkTimeout: Duration.Duration = Duration.seconds(2)

interface Registration {
  readonly check: Effect.Effect<boolean>
}

export class Readiness extends Context.Service<Readiness, {
  /** Registers a live check for the life of the process; a later one of the same name replaces it. */
  readonly register: (name: string, check: Effect.Effect<boolean>) => Effect.Effect<void>
  /** Registers a live check until the scope closes. */
  readonly check: (name: string, check: Effect.Effect<boolean>) => Effect.Effect<void, never, Scope.Scope>
  /** Marks a named component ready or not (for components that know their own state). */
  readonly set: (name: string, ready: boolean) => Effect.Effect<void>
  readonly shutdown: Effect.Effect<void>
  readonly report: Effect.Effect<ReadinessReport>
}>()("queueworks/Readiness") {
  static readonly layer = Layer.effect(
    Readiness,
    Effect.gen(function*() {
      const checks = yield* Ref.make(new Map<string, Registration>())
      const stopping = yield* Ref.make(false)
      const put = (name: string, registration: Registration) =>
        Ref.update(checks, (m) => new Map(m).set(name, registration))
      // Only the registration this scope made: a later one of the same name stays.
      const remove = (name: string, registration: Registration) =>
        Ref.update(checks, (m) => {
          if (m.get(name) !== registration) return m
          const next = new Map(m)
          next.delete(name)
          return next
        })
      return Readiness.of({
        register: (name, check) => put(name, { check }),
        check: (name, check) => {
          const registration: Registration = { check }
          return Effect.acquireRelease(put(name, registration), () => remove(name, registration))
        },
        set: (name, ready) => put(name, { check: Effect.succeed(ready) }),
        shutdown: Ref.set(stopping, true),
        report: Effect.gen(function*() {
          const all = yield* Ref.get(checks)
          const results: Record<string, boolean> = {}
          yield* Effect.forEach(all, ([name, { check }]) =>
            check.pipe(
              Effect.timeoutOption(checkTimeout),
              Effect.map((o) => o._tag === "Some" && o.value),
              Effect.catchCause(() => Effect.succeed(false)),
              Effect.map((ok) => { results[name] = ok })
            ), { concurrency: "unbounded", discard: true })
          const shuttingDown = yield* Ref.get(stopping)
          return { ready: !shuttingDown && Object.values(results).every(Boolean), checks: results, shuttingDown }
        })
      })
    })
  )

  /**
   * Registers `check` as `name` until the enclosing scope closes. Its failures count as not ready;
   * the services it needs are taken from where it is registered.
   */
  static check<E, R>(name: string, check: Effect.Effect<boolean, E, R>): Effect.Effect<void, never, Readiness | Scope.Scope | R> {
    return Effect.gen(function*() {
      const readiness = yield* Readiness
      const context = yield* Effect.context<R>()
      yield* readiness.check(name, check.pipe(Effect.provideContext(context), Effect.orElseSucceed(() => false)))
    })
  }

  /** `Readiness.check` for as long as the layer lives. */
  static layerCheck<E, R>(name: string, check: Effect.Effect<boolean, E, R>): Layer.Layer<never, never, Readiness | Exclude<R, Scope.Scope>> {
    return Layer.effectDiscard(Readiness.check(name, check))
  }
}
