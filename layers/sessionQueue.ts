/**
 * The session queue a program runs on, chosen by configuration (SPEC §1), so programs carry no
 * choice of their own.
 *
 * `SESSION_BACKEND` = `servicebus` | `postgres` | `memory` (any case). Unset: `servicebus` when
 * `SERVICEBUS_CONNECTION_STRING` is set, else `postgres` when `DATABASE_URL` is set, else
 * `memory` (an empty value counts as unset). Then the chosen backend reads its own variables,
 * and only those:
 * - servicebus: `SERVICEBUS_CONNECTION_STRING` (required; `Endpoint=sb://...`). The queue's own
 *   lock duration and max delivery count apply.
 * - postgres: the database variables of `layers/postgres/sql.ts` (`DATABASE_URL` or `DB_*`), and
 *   `SESSION_LOCK_DURATION` [60s], the lease a holder keeps without renewing.
 * - memory: `SESSION_LOCK_DURATION` [60s]. One process only: a sender elsewhere cannot reach it.
 *
 * The max delivery count of the postgres and memory backends is the program's (`MAX_DELIVERY`
 * for the worker), given to `layer`. Importing this module loads no Service Bus SDK: that
 * backend is loaded when its layer is built.
 */
import * as Config from "effect/Config"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import { defaultMaxDeliveryCount, SessionQueue, SessionQueueError } from "../src/capabilities/SessionQueue.ts"
import type { SqlError } from "../src/capabilities/SqlDatabase.ts"
import * as SqlSessionQueue from "../src/sessions/sqlQueue.ts"
import { configIssue, oneOf, positiveDuration } from "../src/runtime/config.ts"
import * as Memory from "./memory/sessionQueue.ts"
import * as Postgres from "./postgres/sql.ts"

export type Kind = "servicebus" | "postgres" | "memory"

export const kinds: ReadonlyArray<Kind> = ["servicebus", "postgres", "memory"]

export type Options =
  | { readonly kind: "servicebus"; readonly connectionString: Redacted.Redacted<string> }
  | { readonly kind: "postgres"; readonly database: Postgres.Options; readonly lockDuration: Duration.Duration }
  | { readonly kind: "memory"; readonly lockDuration: Duration.Duration }

const set = (name: string) =>
  Config.option(Config.String(name)).pipe(Config.map((value) => Option.isSome(value) && value.value.trim() !== ""))

/** The SPEC's rule for an unset `SESSION_BACKEND`. */
export const defaultKind: Config.Config<Kind> = Config.all([set("SERVICEBUS_CONNECTION_STRING"), set("DATABASE_URL")]).pipe(
  Config.map(([serviceBus, database]): Kind => serviceBus ? "servicebus" : database ? "postgres" : "memory")
)

/** `SERVICEBUS_CONNECTION_STRING`: required, and shaped like one, so a typo stops the program at start. */
export const connectionString: Config.Config<Redacted.Redacted<string>> = Config.String("SERVICEBUS_CONNECTION_STRING").pipe(
  Config.mapEffect((text) =>
    /(^|;)\s*Endpoint\s*=\s*sb:\/\/[^;]+/i.test(text)
      ? Effect.succeed(Redacted.make(text.trim()))
      : Effect.fail(configIssue(
        "SERVICEBUS_CONNECTION_STRING",
        "a Service Bus connection string (Endpoint=sb://<namespace>/;SharedAccessKeyName=...;SharedAccessKey=...)",
        "it has no Endpoint=sb://"
      ))
  )
)

const lockDuration = positiveDuration("SESSION_LOCK_DURATION").pipe(Config.withDefault(Duration.seconds(60)))

export const config: Config.Config<Options> = oneOf("SESSION_BACKEND", kinds, { caseInsensitive: true }).pipe(
  Config.option,
  Config.flatMap((chosen) => Option.match(chosen, { onNone: () => defaultKind, onSome: (kind) => Config.succeed(kind) })),
  Config.flatMap((kind): Config.Config<Options> => {
    switch (kind) {
      case "servicebus":
        return Config.map(connectionString, (connectionString) => ({ kind, connectionString }))
      case "postgres":
        return Config.map(Config.all({ database: Postgres.config, lockDuration }), ({ database, lockDuration }) => ({
          kind,
          database,
          lockDuration
        }))
      case "memory":
        return Config.map(lockDuration, (lockDuration) => ({ kind, lockDuration }))
    }
  })
)

export interface LayerOptions {
  /** For the postgres and memory backends (Service Bus uses the queue's own). */
  readonly maxDeliveryCount?: number
}

/** SessionQueue on the chosen backend. */
export const layer = (options: Options, extra: LayerOptions = {}): Layer.Layer<SessionQueue, SessionQueueError | SqlError> => {
  const maxDeliveryCount = extra.maxDeliveryCount ?? defaultMaxDeliveryCount
  switch (options.kind) {
    case "servicebus":
      return Layer.unwrap(
        Effect.tryPromise({
          try: () => import("./servicebus/sessionQueue.ts"),
          catch: (cause) => new SessionQueueError({ operation: "load the Service Bus backend", queue: "", cause })
        }).pipe(Effect.map((ServiceBus) => ServiceBus.layer({ connectionString: Redacted.value(options.connectionString) })))
      )
    case "postgres":
      return SqlSessionQueue.layer({ lockDuration: options.lockDuration, maxDeliveryCount }).pipe(
        Layer.provide(Postgres.layer(options.database))
      )
    case "memory":
      return Memory.layer({ lockDuration: options.lockDuration, maxDeliveryCount })
  }
}

/** `layer` from `config`: a bad variable fails it with a ConfigError naming the variable. */
export const layerConfig = (extra: LayerOptions = {}): Layer.Layer<SessionQueue, SessionQueueError | SqlError | Config.ConfigError> =>
  Layer.unwrap(Effect.map(config, (options) => layer(options, extra)))
