/**
 * A sales query worker (SPEC §5): consumes its own queue QUEUE_NAME [mom-worker-1] with
 * PREFETCH [10], answers each request from the SQLite file DB_PATH [./database.db] (opened
 * read-only) to its reply-to with its correlation id, and acks once the reply is confirmed.
 * Several run side by side, each with its WORKER_ID and queue; the balancer or a client sends to
 * the queue through the default exchange. Every HEARTBEAT_INTERVAL [2s] it publishes a heartbeat
 * with its load to HEARTBEAT_TOPIC [sales.heartbeats], and a last one when it leaves. Broker: BROKER [rabbitmq], RABBITMQ_URL;
 * RABBITMQ_DIRECT_DELIVERY [persistent], or transient to keep its replies off the disk.
 *
 *   bun run programs/sales-worker.ts
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Broker from "../layers/broker.ts"
import { asWorker, baseLayer, loadBaseConfig } from "../layers/platform/program.ts"
import { runMain } from "../layers/platform/runMain.ts"
import * as Sqlite from "../layers/sqlite/index.ts"
import { SqliteDatabase } from "../src/capabilities/SqliteDatabase.ts"
import { directTopic } from "../src/capabilities/Subscriber.ts"
import { consumeBatches } from "../src/messaging/consume.ts"
import { load } from "../src/runtime/config.ts"
import { publishHeartbeats } from "../src/sales/heartbeat.ts"
import { makeSalesWorker } from "../src/sales/worker.ts"
import { workerConfig } from "../src/sales/workerConfig.ts"

const program = Effect.gen(function*() {
  const base = yield* loadBaseConfig("sales-worker")
  const config = yield* load(workerConfig)
  const broker = yield* load(Broker.configWithDefault("rabbitmq"))
  const run = Effect.scoped(Effect.gen(function*() {
    const db = yield* SqliteDatabase
    const worker = makeSalesWorker(db, config.workerId, config.queue)
    yield* Effect.forkScoped(publishHeartbeats(
      { topic: config.heartbeatTopic, worker: config.workerId, queue: config.queue, prefetch: config.prefetch, load: worker.load },
      config.heartbeatInterval
    ))
    yield* Effect.log(`sales worker ${config.workerId} answering from ${config.dbPath} on queue ${config.queue} (prefetch ${config.prefetch})`)
    // The requests at hand are answered together and their replies published at once.
    return yield* consumeBatches({ topic: directTopic, group: config.queue, prefetch: config.prefetch }, worker.batchHandler, {
      maxBatch: config.prefetch
    })
  }))
  yield* asWorker(run).pipe(
    Effect.provide(Layer.mergeAll(
      Sqlite.layer({ path: config.dbPath, readOnly: true }),
      Broker.layer(broker)
    ).pipe(Layer.provideMerge(baseLayer(base))))
  )
})

runMain(program, { name: "sales-worker" })
