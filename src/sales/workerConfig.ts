/**
 * The sales worker's configuration, with the original's names: `QUEUE_NAME` [mom-worker-1],
 * `WORKER_ID` [the queue name], `PREFETCH` [10], `DB_PATH` [./database.db], and
 * `HEARTBEAT_INTERVAL` [2s] between heartbeats on `HEARTBEAT_TOPIC` [sales.heartbeats].
 */
import * as Config from "effect/Config"
import * as Duration from "effect/Duration"
import { intInRange, positiveDuration } from "../runtime/config.ts"
import { dbPath } from "./config.ts"
import { heartbeatTopic } from "./heartbeat.ts"

export const workerConfig = Config.all({
  queue: Config.String("QUEUE_NAME").pipe(Config.withDefault("mom-worker-1")),
  workerId: Config.option(Config.String("WORKER_ID")),
  prefetch: intInRange("PREFETCH", 1, 10_000).pipe(Config.withDefault(10)),
  heartbeatTopic: Config.String("HEARTBEAT_TOPIC").pipe(Config.withDefault(heartbeatTopic)),
  heartbeatInterval: positiveDuration("HEARTBEAT_INTERVAL").pipe(Config.withDefault(Duration.seconds(2))),
  dbPath
}).pipe(Config.map(({ workerId, ...rest }) => ({ ...rest, workerId: workerId._tag === "Some" && workerId.value !== "" ? workerId.value : rest.queue })))
