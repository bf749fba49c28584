/**
 * The kafkajs client a Kafka layer shares, its logs, and the topics `declare` creates.
 *
 * kafkajs logs through a `logCreator`; here every entry at or above the chosen level becomes an
 * Effect log in the context the layer was built in, so it reaches the program's logger (and
 * OpenTelemetry) with the kafkajs namespace as an annotation. kafkajs's `Connection` namespace
 * logs every error response at ERROR, also the ones the caller expects and handles (a topic that
 * exists already, a coordinator still loading after a restart); those are demoted to DEBUG, the
 * caller logs what is really wrong.
 *
 * Kafka has no routing to declare: a subscription needs its topic and its group's dead-letter
 * topic to exist, with more than one partition so a group's consumers can share the work.
 * `ensure` creates the missing ones through the admin client and remembers what exists. Only
 * subscriber layers make one: publishing needs no admin client.
 *
 * kafkajs retries a connect on its own for about 13 s; `connect` bounds that by the layer's
 * `connectTimeout` and reports the last connection error kafkajs logged, as a `BrokerError`.
 *
 * kafkajs is loaded when the first client is made, not when this module is: a program that can
 * run on Kafka but does not (`layers/broker.ts` imports every backend) never pays for it.
 */
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import type { Admin, Kafka, LogEntry, logLevel } from "kafkajs"
import { BrokerError } from "../../src/capabilities/BrokerError.ts"
import { SubscriberError } from "../../src/capabilities/Subscriber.ts"
import { formatDuration } from "../../src/runtime/format.ts"

export type KafkaLogLevel = "nothing" | "error" | "warn" | "info" | "debug"

type KafkaJs = typeof import("kafkajs")

const levelsOf = ({ logLevel }: KafkaJs): Record<KafkaLogLevel, logLevel> => ({
  nothing: logLevel.NOTHING,
  error: logLevel.ERROR,
  warn: logLevel.WARN,
  info: logLevel.INFO,
  debug: logLevel.DEBUG
})

/**
 * Applied to every kafkajs client a layer makes, before the layer uses it; by default nothing.
 * The seam a test wraps a client through, to see what a layer opens (producers, admin clients,
 * consumers).
 */
export const KafkaClientHook = Context.Reference<(kafka: Kafka) => Kafka>("queueworks/kafka/KafkaClientHook", {
  defaultValue: () => (kafka) => kafka
})

export interface ClientOptions {
  readonly brokers: ReadonlyArray<string>
  readonly clientId: string
  readonly logLevel: KafkaLogLevel
  /** Bounds connecting the producer or the admin client. */
  readonly connectTimeout: Duration.Input
}

export interface Client {
  readonly kafka: Kafka
  /** The kafkajs module itself, for its constants (partitioners, log levels). */
  readonly kafkajs: KafkaJs
  /** The configured brokers, for error messages (the client keeps its own private). */
  readonly brokers: string
  /**
   * Connects a producer or admin client made from `kafka`, or fails naming the brokers. It is
   * disconnected when the scope closes, also after a failed connect; a connect that timed out
   * cannot be cancelled, though: kafkajs's own retries of it run out in the background.
   */
  readonly connect: (
    operation: string,
    connectable: { readonly connect: () => Promise<void>; readonly disconnect: () => Promise<void> }
  ) => Effect.Effect<void, BrokerError, Scope.Scope>
}

export const makeClient = (options: ClientOptions): Effect.Effect<Client> =>
  Effect.gen(function*() {
    const runFork = Effect.runForkWith(yield* Effect.context<never>())
    const kafkajs = yield* Effect.promise(() => import("kafkajs"))
    const { logLevel } = kafkajs
    const brokers = options.brokers.join(",")
    // kafkajs's own connect error says only that it gave up; what went wrong is in its log.
    let lastConnectionError: string | undefined
    const kafka = (yield* KafkaClientHook)(new kafkajs.Kafka({
      brokers: [...options.brokers],
      clientId: options.clientId,
      logLevel: levelsOf(kafkajs)[options.logLevel],
      logCreator: () => (entry) => {
        if (entry.namespace === "Connection" && entry.level === logLevel.ERROR) lastConnectionError = entry.log.message
        runFork(toEffectLog(kafkajs, entry))
      }
    }))
    const within = formatDuration(options.connectTimeout)

    const connect: Client["connect"] = (operation, connectable) =>
      Effect.gen(function*() {
        yield* Effect.addFinalizer(() => Effect.promise(() => connectable.disconnect().catch(() => {})))
        yield* Effect.tryPromise({
          try: () => connectable.connect(),
          catch: (cause) => new BrokerError({ operation, broker: brokers, cause })
        }).pipe(
          Effect.timeoutOrElse({
            duration: options.connectTimeout,
            orElse: () =>
              Effect.fail(new BrokerError({
                operation,
                broker: brokers,
                cause: `not connected within ${within}; last error: ${lastConnectionError ?? "none logged"}`
              }))
          })
        )
      })

    return { kafka, kafkajs, brokers, connect }
  })

// Fields every entry repeats, or too long for a log line (the stack is in the message's cause).
const omitted = new Set(["timestamp", "message", "logger", "stack"])

const toEffectLog = ({ logLevel }: KafkaJs, entry: LogEntry): Effect.Effect<void> => {
  const annotations: Record<string, string> = { kafkajs: entry.namespace }
  for (const [name, value] of Object.entries(entry.log)) {
    if (omitted.has(name) || value === undefined) continue
    annotations[name] = typeof value === "string" ? value : safeJson(value)
  }
  const level = entry.namespace === "Connection" && entry.level === logLevel.ERROR ? logLevel.DEBUG : entry.level
  const log = level === logLevel.ERROR
    ? Effect.logError
    : level === logLevel.WARN
    ? Effect.logWarning
    : level === logLevel.INFO
    ? Effect.logInfo
    : Effect.logDebug
  return log(`kafkajs: ${entry.log.message}`).pipe(Effect.annotateLogs(annotations))
}

const safeJson = (value: unknown): string => {
  try {
    return JSON.stringify(value) ?? String(value)
  } catch {
    return String(value)
  }
}

export interface TopicOptions {
  /** Partitions of a topic created here. */
  readonly partitions: number
  /** Replicas of a topic created here; -1 means the broker's `default.replication.factor`. */
  readonly replicationFactor: number
}

export interface Topics {
  /** Creates those of `topics` that do not exist yet; `operation` names the caller in errors. */
  readonly ensure: (topics: ReadonlyArray<string>, operation: string) => Effect.Effect<void, SubscriberError>
}

export const makeTopics = (client: Client, options: TopicOptions): Effect.Effect<Topics, BrokerError, Scope.Scope> =>
  Effect.gen(function*() {
    const admin: Admin = client.kafka.admin()
    yield* client.connect("admin.connect", admin)
    const known = new Set<string>()

    const createRetry = Schedule.spaced("250 millis").pipe(Schedule.upTo({ times: 8 }))
    // One topic per request: kafkajs waits for the new topic's leader only when every topic of
    // the request was created, and a consumer of a topic without a leader yet backs off.
    const create = (topic: string, operation: string) =>
      Effect.tryPromise({
        try: () =>
          admin.createTopics({
            topics: [{ topic, numPartitions: options.partitions, replicationFactor: options.replicationFactor }],
            waitForLeaders: true
          }),
        catch: (cause) => new SubscriberError({ operation, subject: topic, cause })
      }).pipe(
        // A topic just created can be unknown for a moment to the broker kafkajs asks about its
        // leaders (UNKNOWN_TOPIC_OR_PARTITION, which kafkajs marks retriable, past its own retries).
        Effect.retry({ schedule: createRetry, while: (error) => isRetriable(error.cause) }),
        Effect.tap(() => Effect.sync(() => known.add(topic)))
      )

    return {
      ensure: (topics, operation) =>
        Effect.forEach(topics.filter((topic) => !known.has(topic)), (topic) => create(topic, operation), {
          concurrency: "unbounded",
          discard: true
        })
    }
  })

const isRetriable = (cause: unknown): boolean =>
  typeof cause === "object" && cause !== null && "retriable" in cause && cause.retriable === true
