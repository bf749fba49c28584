/**
 * A LISTEN held only while it is needed: started by whoever is about to wait for a NOTIFY,
 * stopped by its owner once nobody has waited for a while.
 *
 * Why: every NOTIFY costs whoever listens, heeded or not: the listening server session wakes,
 * reads the notification queue and sends a message, and this process reads it. Workers that are
 * all busy need none (they look again after each piece of work), and at a high insert rate that
 * is most of the time. Measured with the outbox relay at 2 000 inserts a second, each its own
 * transaction and NOTIFY: the LISTEN's server session alone used 13 % of a core.
 *
 * The rule for a waiter. A NOTIFY only speaks of commits made after the LISTEN took effect.
 * `epoch()` names the LISTEN that is on (undefined when none). A waiter that read the table
 * while epoch E was on, and still finds E on afterwards, missed nothing: every commit since
 * was announced to `onNotify` meanwhile. Otherwise it calls `start` (which succeeds once
 * the session listens) and reads again before it waits.
 */
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type { SqlDatabaseShape, SqlError } from "../capabilities/SqlDatabase.ts"

export interface ListenOnDemand {
  /** The LISTEN that is on, or undefined. */
  readonly epoch: () => number | undefined
  /** Starts LISTEN unless it is on; succeeds with its epoch once the session listens. */
  readonly start: Effect.Effect<number, SqlError>
  /** Stops listening; returns at once (the UNLISTEN follows), so `onNotify` may call it. */
  readonly stop: Effect.Effect<void>
}

type State =
  | { readonly _tag: "Off" }
  | { readonly _tag: "Starting"; readonly ready: Deferred.Deferred<number, SqlError> }
  | { readonly _tag: "On"; readonly epoch: number; readonly scope: Scope.Closeable }

const off: State = { _tag: "Off" }

/** Listens on `channel` on demand; `onNotify` runs for each payload, one at a time. Off when the scope closes. */
export const make = (
  db: Pick<SqlDatabaseShape, "subscribe">,
  channel: string,
  onNotify: (payload: string) => Effect.Effect<void>
): Effect.Effect<ListenOnDemand, never, Scope.Scope> =>
  Effect.gen(function*() {
    const parent = yield* Effect.scope
    let state: State = off
    let epochs = 0

    const open = (ready: Deferred.Deferred<number, SqlError>) =>
      Effect.gen(function*() {
        const scope = yield* Scope.fork(parent)
        const subscribed = yield* Effect.exit(db.subscribe(channel).pipe(Scope.provide(scope)))
        if (Exit.isFailure(subscribed)) {
          state = off
          yield* Scope.close(scope, subscribed)
          const failed = Exit.failCause(subscribed.cause)
          Deferred.doneUnsafe(ready, failed)
          return yield* failed
        }
        const epoch = ++epochs
        state = { _tag: "On", epoch, scope }
        yield* Stream.runForEach(subscribed.value, onNotify).pipe(
          // A subscription that ends by itself is off too (stop already said so otherwise).
          Effect.ensuring(Effect.sync(() => {
            if (state._tag === "On" && state.epoch === epoch) state = off
          })),
          Effect.forkIn(scope)
        )
        Deferred.doneUnsafe(ready, Exit.succeed(epoch))
        return epoch
      }).pipe(Effect.uninterruptible)

    const start: Effect.Effect<number, SqlError> = Effect.suspend(() => {
      switch (state._tag) {
        case "On":
          return Effect.succeed(state.epoch)
        case "Starting":
          return Deferred.await(state.ready)
        case "Off": {
          const ready = Deferred.makeUnsafe<number, SqlError>()
          state = { _tag: "Starting", ready }
          return open(ready)
        }
      }
    })

    const stop = Effect.suspend(() => {
      if (state._tag !== "On") return Effect.void
      const { scope } = state
      state = off
      // Closing interrupts the fiber that runs `onNotify`, which may be the caller: not awaited.
      return Effect.asVoid(Effect.forkIn(Scope.close(scope, Exit.void), parent))
    })

    return { epoch: () => (state._tag === "On" ? state.epoch : undefined), start, stop }
  })
