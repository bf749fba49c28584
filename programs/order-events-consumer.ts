/**
 * The order-events consumer (SPEC §2): an example downstream of KAFKA_TOPIC_EVENTS
 * [txstream.events] in group KAFKA_GROUP_ID [txstream-consumer-group], applying each
 * `OrderCreated` once to the `customer_orders` read model through an inbox table.
 *
 * Database: DATABASE_URL or DB_* → PostgreSQL, else embedded PGlite. Broker: BROKER [kafka].
 * Its migrations (system `order-events`) run at start.
 *
 *   bun run programs/order-events-consumer.ts
 */
import * as Config from "effect/Config"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Broker from "../layers/broker.ts"
import * as Database from "../layers/database.ts"
import { asWorker, baseLayer, loadBaseConfig } from "../layers/platform/program.ts"
import { runMain } from "../layers/platform/runMain.ts"
import { consume } from "../src/messaging/consume.ts"
import { applyOrderEvents } from "../src/orders/readModel.ts"
import * as ReadModel from "../src/orders/readModelSql.ts"
import { load } from "../src/runtime/config.ts"
import { registerDatabaseReadiness } from "../src/sql/health.ts"
import { migrate } from "../src/sql/migrations.ts"

const subscription = Config.all({
  topic: Config.String("KAFKA_TOPIC_EVENTS").pipe(Config.withDefault("txstream.events")),
  group: Config.String("KAFKA_GROUP_ID").pipe(Config.withDefault("txstream-consumer-group"))
})

const program = Effect.gen(function*() {
  const base = yield* loadBaseConfig("order-events-consumer")
  const source = yield* load(subscription)
  const database = yield* load(Database.config)
  const broker = yield* load(Broker.configWithDefault("kafka"))
  const run = Effect.gen(function*() {
    yield* migrate(ReadModel.migrations, { direction: "up", table: ReadModel.migrationsTable })
    yield* registerDatabaseReadiness()
    yield* Effect.log(`order-events consumer reading ${source.topic} as ${source.group}`)
    return yield* consume(source, applyOrderEvents())
  })
  yield* asWorker(run).pipe(
    Effect.provide(Layer.mergeAll(Database.layer(database), Broker.subscriberLayer(broker)).pipe(Layer.provideMerge(baseLayer(base))))
  )
})

runMain(program, { name: "order-events-consumer" })
