/**
 * The event counter (SPEC §4): counts unique events per user and type from RabbitMQ and writes
 * created.json, updated.json, deleted.json into OUTPUT_DIR once IDLE_TIMEOUT passes without a
 * message. COUNTER_STORE=postgres keeps the seen ids and counts in PostgreSQL across restarts.
 * BROKER picks another broker; unset, it is RabbitMQ, the original's wire contract.
 *
 *   bun run programs/event-counter.ts [--output-dir out] [--idle-timeout 5s] [--rabbitmq-url amqp://...]
 */
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as NodePath from "@effect/platform-node/NodePath"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Broker from "../layers/broker.ts"
import { asWorker, baseLayer, loadBaseConfig } from "../layers/platform/program.ts"
import * as Postgres from "../layers/postgres/sql.ts"
import { counterConfig, storeKind } from "../src/counter/config.ts"
import { runCounter } from "../src/counter/counter.ts"
import { CounterStore } from "../src/counter/CounterStore.ts"
import * as Output from "../src/counter/output.ts"
import { load } from "../src/runtime/config.ts"
import { registerDatabaseReadiness } from "../src/sql/health.ts"
import { runMain } from "../layers/platform/runMain.ts"

const program = Effect.gen(function*() {
  const base = yield* loadBaseConfig("event-counter")
  const kind = yield* load(storeKind)
  // A run that stopped early left partial files: the memory store adds to them, PostgreSQL kept its counts.
  const config = { ...(yield* load(counterConfig())), carryOver: kind === "postgres" ? "store" as const : "files" as const }
  const broker = yield* load(Broker.configWithDefault("rabbitmq"))
  // Before anything connects: an OUTPUT_DIR that cannot take the counts stops the program (exit 2).
  const output = yield* Output.prepare(config).pipe(Effect.provide(Layer.merge(NodeFileSystem.layer, NodePath.layer)))
  // The durable store is a dependency like the broker: /readyz names it ("database").
  const store = kind === "postgres"
    ? Layer.merge(CounterStore.sql, Layer.effectDiscard(registerDatabaseReadiness())).pipe(
      Layer.provide(Postgres.layer(yield* load(Postgres.config)))
    )
    : CounterStore.memory
  yield* asWorker(runCounter(config, output)).pipe(
    Effect.provide(Layer.merge(Broker.layer(broker), store).pipe(Layer.provideMerge(baseLayer(base))))
  )
})

runMain(program, { name: "event-counter" })
