/**
 * The session sender's and worker's settings (SPEC §1), under the original's variable names and
 * defaults where it had them (`SERVICEBUS_QUEUE_NAME`, `WORKER_COUNT`, the 20 s receive timeout,
 * the 5 s retry, 3 empty receives). A bad value stops the program at start naming the variable.
 */
import * as Config from "effect/Config"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { configIssue, intInRange, positiveDuration, positiveInt } from "../runtime/config.ts"

/** `SERVICEBUS_QUEUE_NAME` [session-queue]: the queue on every backend. */
export const queueName: Config.Config<string> = Config.String("SERVICEBUS_QUEUE_NAME").pipe(
  Config.mapEffect((name) =>
    name.trim() === "" || name.length > 260
      ? Effect.fail(configIssue("SERVICEBUS_QUEUE_NAME", "a queue name of 1 to 260 characters", `got "${name}"`))
      : Effect.succeed(name)
  ),
  Config.withDefault("session-queue")
)

export interface SenderConfig {
  readonly queue: string
  readonly sessionCount: number
  readonly messagesPerSession: number
  /** Messages per send call. */
  readonly batchSize: number
}

export const senderConfig: Config.Config<SenderConfig> = Config.all({
  queue: queueName,
  sessionCount: positiveInt("SESSION_COUNT").pipe(Config.withDefault(100)),
  messagesPerSession: positiveInt("MESSAGES_PER_SESSION").pipe(Config.withDefault(10)),
  batchSize: intInRange("SEND_BATCH_SIZE", 1, 10_000).pipe(Config.withDefault(100))
})

export interface WorkerConfig {
  readonly queue: string
  /** Sessions processed at once. */
  readonly workerCount: number
  /** How long a slot waits for a free session. */
  readonly receiveTimeout: Duration.Duration
  /** How long a slot waits after finding no session. */
  readonly retryDelay: Duration.Duration
  /** Empty receives in a row that release a session. */
  readonly idleThreshold: number
  /** How long one receive in a session waits for a message. */
  readonly receiveWait: Duration.Duration
  /** Messages taken per receive. */
  readonly receiveBatch: number
  /** Deliveries of a failing message before it is dead-lettered. */
  readonly maxDelivery: number
  readonly breaker: {
    readonly failureThreshold: number
    readonly resetTimeout: Duration.Duration
    readonly successThreshold: number
  }
  /** How often `session_queue_depth` is read. */
  readonly depthInterval: Duration.Duration
}

export const workerDefaults: WorkerConfig = {
  queue: "session-queue",
  workerCount: 100,
  receiveTimeout: Duration.seconds(20),
  retryDelay: Duration.seconds(5),
  idleThreshold: 3,
  receiveWait: Duration.seconds(1),
  receiveBatch: 10,
  maxDelivery: 10,
  breaker: { failureThreshold: 5, resetTimeout: Duration.seconds(30), successThreshold: 3 },
  depthInterval: Duration.seconds(15)
}

const d = workerDefaults

export const workerConfig: Config.Config<WorkerConfig> = Config.all({
  queue: queueName,
  workerCount: intInRange("WORKER_COUNT", 1, 10_000).pipe(Config.withDefault(d.workerCount)),
  receiveTimeout: positiveDuration("RECEIVE_TIMEOUT").pipe(Config.withDefault(d.receiveTimeout)),
  retryDelay: positiveDuration("RETRY_DELAY").pipe(Config.withDefault(d.retryDelay)),
  idleThreshold: intInRange("IDLE_THRESHOLD", 1, 1_000).pipe(Config.withDefault(d.idleThreshold)),
  receiveWait: positiveDuration("RECEIVE_WAIT").pipe(Config.withDefault(d.receiveWait)),
  receiveBatch: intInRange("RECEIVE_BATCH_SIZE", 1, 1_000).pipe(Config.withDefault(d.receiveBatch)),
  maxDelivery: intInRange("MAX_DELIVERY", 1, 1_000).pipe(Config.withDefault(d.maxDelivery)),
  breaker: Config.all({
    failureThreshold: positiveInt("CIRCUIT_FAILURE_THRESHOLD").pipe(Config.withDefault(d.breaker.failureThreshold)),
    resetTimeout: positiveDuration("CIRCUIT_RESET_TIMEOUT").pipe(Config.withDefault(d.breaker.resetTimeout)),
    successThreshold: positiveInt("CIRCUIT_SUCCESS_THRESHOLD").pipe(Config.withDefault(d.breaker.successThreshold))
  }),
  depthInterval: positiveDuration("QUEUE_DEPTH_INTERVAL").pipe(Config.withDefault(d.depthInterval))
})
