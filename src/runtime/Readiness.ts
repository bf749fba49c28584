/**
 * Readiness: whether this process should be sent work.
 *
 * Each dependency registers a check (`broker`, `database`); the process is ready when every
 * check passes and it is not shutting down. `/readyz` reports it with the failing checks named.
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Ref from "effect/Ref"

export interface ReadinessReport {
  readonly ready: boolean
  readonly checks: Readonly<Record<string, boolean>>
  readonly shuttingDown: boolean
}

export class Readiness extends Context.Service<Readiness, {
  /** Registers a live check, run on every report; a failing or defecting check counts as not ready. */
  readonly register: (name: string, check: Effect.Effect<boolean>) => Effect.Effect<void>
  /** Marks a named component ready or not (for components that know their own state). */
  readonly set: (name: string, ready: boolean) => Effect.Effect<void>
  readonly shutdown: Effect.Effect<void>
  readonly report: Effect.Effect<ReadinessReport>
}>()("queueworks/Readiness") {
  static readonly layer = Layer.effect(
    Readiness,
    Effect.gen(function*() {
      const checks = yield* Ref.make(new Map<string, Effect.Effect<boolean>>())
      const stopping = yield* Ref.make(false)
      const put = (name: string, check: Effect.Effect<boolean>) =>
        Ref.update(checks, (m) => new Map(m).set(name, check))
      return Readiness.of({
        register: put,
        set: (name, ready) => put(name, Effect.succeed(ready)),
        shutdown: Ref.set(stopping, true),
        report: Effect.gen(function*() {
          const all = yield* Ref.get(checks)
          const results: Record<string, boolean> = {}
          yield* Effect.forEach(all, ([name, check]) =>
            check.pipe(
              Effect.timeoutOption("2 seconds"),
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
}
