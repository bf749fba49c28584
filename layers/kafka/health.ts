/**
 * Whether the Kafka cluster answers now, for readiness.
 *
 * kafkajs's producer does not notice a broker going away until it next sends (its connect and
 * disconnect events follow its own calls), so an idle publisher, or one whose every send a
 * circuit breaker refuses, would look healthy against a cluster that is down. The probe asks the
 * cluster instead: one Metadata request (`describeCluster`) through an admin client of its own,
 * made and connected on first use (a program that never checks opens nothing), without
 * kafkajs's retries, bounded by `within`. It never fails: an error or no answer in time is `false`.
 */
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import type { Admin } from "kafkajs"
import type { Client } from "./client.ts"

export const makeHealthProbe = (client: Client, within: Duration.Input): Effect.Effect<Effect.Effect<boolean>, never, Scope.Scope> =>
  Effect.gen(function*() {
    let admin: Admin | undefined
    yield* Effect.addFinalizer(() => Effect.promise(() => admin?.disconnect().catch(() => {}) ?? Promise.resolve()))
    return Effect.tryPromise(async () => {
      admin ??= client.kafka.admin({ retry: { retries: 0 } })
      // A no-op while connected; after the broker went away, the reconnect is the probe.
      await admin.connect()
      const cluster = await admin.describeCluster()
      return cluster.brokers.length > 0
    }).pipe(
      Effect.timeoutOption(within),
      Effect.map(Option.getOrElse(() => false)),
      Effect.orElseSucceed(() => false)
    )
  })
