/**
 * The outbox relay (SPEC §2): publishes the `outbox_events` rows the orders API writes to
 * KAFKA_TOPIC_EVENTS [txstream.events], WORKER_POOL_SIZE [3] workers, woken by NOTIFY.
 *
 * Database: DATABASE_URL or DB_* → PostgreSQL, else embedded PGlite. Broker: BROKER [kafka];
 * BROKER=memory runs it without Kafka. The orders migrations run at start, as in orders-api.
 * `/readyz` checks `database`, the broker by its kind (`kafka`) and `breaker` (not open).
 *
 *   bun run programs/outbox-relay.ts
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Broker from "../layers/broker.ts"
import * as Database from "../layers/database.ts"
import { baseLayer, loadBaseConfig, withReadiness } from "../layers/platform/program.ts"
import { runMain } from "../layers/platform/runMain.ts"
import { Publisher } from "../src/capabilities/Publisher.ts"
import { relayConfig } from "../src/outbox/config.ts"
import { makeRelay } from "../src/outbox/relay.ts"
import * as Orders from "../src/orders/sql.ts"
import { load } from "../src/runtime/config.ts"
import { registerDatabaseReadiness } from "../src/sql/health.ts"
import { migrate } from "../src/sql/migrations.ts"

const program = Effect.gen(function*() {
  const base = yield* loadBaseConfig("outbox-relay")
  const config = yield* load(relayConfig)
  const database = yield* load(Database.config)
  const broker = yield* load(Broker.configWithDefault("kafka"))
  const relay = yield* makeRelay(config)
  const run = Effect.gen(function*() {
    yield* migrate(Orders.migrations, { direction: "up", table: Orders.migrationsTable })
    yield* registerDatabaseReadiness()
    yield* Effect.log(`outbox relay publishing to ${config.topic} with ${config.poolSize} workers`)
    return yield* relay.run
  })
  yield* withReadiness(run, {
    // By the broker's kind: a `kafka` check is what an operator looks for, not a generic name.
    [broker.kind]: Publisher.use((publisher) => publisher.healthy),
    breaker: Effect.map(relay.breakerState, (state) => state !== "open")
  }).pipe(
    Effect.provide(Layer.mergeAll(Database.layer(database), Broker.publisherLayer(broker)).pipe(Layer.provideMerge(baseLayer(base))))
  )
})

runMain(program, { name: "outbox-relay" })
