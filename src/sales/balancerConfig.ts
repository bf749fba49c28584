/**
 * The balancer's configuration: `WORKER_QUEUES` [mom-worker-1,mom-worker-2,mom-worker-3] as in
 * the original, `REQUEST_QUEUE` [sales_requests], `REPLY_QUEUE` [sales_balancer_replies],
 * `BALANCER_ID` [sales-balancer] (names its queue on `HEARTBEAT_TOPIC` [sales.heartbeats]), `PREFETCH` [200],
 * `MISSED_HEARTBEATS` [3], `HEALTH_CHECK_INTERVAL` [500ms] between checks for silent workers,
 * `CONSUMER_CHECK_INTERVAL` [5s] between counts of each worker queue's consumers (the original's
 * 5 s queue inspection), `STATS_INTERVAL` [10s] between statistics tables in the log.
 */
import * as Config from "effect/Config"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { configIssue, intInRange, positiveDuration } from "../runtime/config.ts"
import { heartbeatTopic } from "./heartbeat.ts"

/** `WORKER_QUEUES`: distinct queue names, comma-separated. */
export const queueList = Config.String("WORKER_QUEUES").pipe(
  Config.withDefault("mom-worker-1,mom-worker-2,mom-worker-3"),
  Config.mapEffect((text) => {
    const queues = text.split(",").map((q) => q.trim()).filter((q) => q !== "")
    return new Set(queues).size === queues.length
      ? Effect.succeed(queues)
      : Effect.fail(configIssue("WORKER_QUEUES", "a comma-separated list of distinct queue names", `got "${text}"`))
  })
)

export const balancerConfig = Config.all({
  workerQueues: queueList,
  requestQueue: Config.String("REQUEST_QUEUE").pipe(Config.withDefault("sales_requests")),
  replyQueue: Config.String("REPLY_QUEUE").pipe(Config.withDefault("sales_balancer_replies")),
  balancerId: Config.String("BALANCER_ID").pipe(Config.withDefault("sales-balancer")),
  heartbeatTopic: Config.String("HEARTBEAT_TOPIC").pipe(Config.withDefault(heartbeatTopic)),
  prefetch: intInRange("PREFETCH", 1, 10_000).pipe(Config.withDefault(200)),
  missedBeats: intInRange("MISSED_HEARTBEATS", 1, 100).pipe(Config.withDefault(3)),
  tick: positiveDuration("HEALTH_CHECK_INTERVAL").pipe(Config.withDefault(Duration.millis(500))),
  statsEvery: positiveDuration("STATS_INTERVAL").pipe(Config.withDefault(Duration.seconds(10))),
  consumerCheck: positiveDuration("CONSUMER_CHECK_INTERVAL").pipe(Config.withDefault(Duration.seconds(5)))
})
