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
 * `ensure` creates the missing ones through the admin client and remembers what exists.
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import { type Admin, Kafka, type LogEntry, logLevel } from "kafkajs"
import { SubscriberError } from "../../src/capabilities/Subscriber.ts"

export type KafkaLogLevel = "nothing" | "error" | "warn" | "info" | "debug"

const levels: Record<KafkaLogLevel, logLevel> = {
  nothing: logLevel.NOTHING,
  error: logLevel.ERROR,
  warn: logLevel.WARN,
  info: logLevel.INFO,
  debug: logLevel.DEBUG
}

export interface ClientOptions {
  readonly brokers: ReadonlyArray<string>
  readonly clientId: string
  readonly logLevel: KafkaLogLevel
}

export interface Client {
  readonly kafka: Kafka
  /** The configured brokers, for error messages (the client keeps its own private). */
  readonly brokers: string
}

export const makeClient = (options: ClientOptions): Effect.Effect<Client> =>
  Effect.gen(function*() {
    const runFork = Effect.runForkWith(yield* Effect.context<never>())
    const kafka = new Kafka({
      brokers: [...options.brokers],
      clientId: options.clientId,
      logLevel: levels[options.logLevel],
      logCreator: () => (entry) => {
        runFork(toEffectLog(entry))
      }
    })
    return { kafka, brokers: options.brokers.join(",") }
  })

// Fields every entry repeats, or too long for a log line (the stack is in the message's cause).
const omitted = new Set(["timestamp", "message", "logger", "stack"])

const toEffectLog = (entry: LogEntry): Effect.Effect<void> => {
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

export const makeTopics = (client: Client, options: TopicOptions): Effect.Effect<Topics, SubscriberError, Scope.Scope> =>
  Effect.gen(function*() {
    const admin: Admin = client.kafka.admin()
    yield* Effect.acquireRelease(
      Effect.tryPromise({
        try: () => admin.connect(),
        catch: (cause) => new SubscriberError({ operation: "admin.connect", subject: client.brokers, cause })
      }),
      () => Effect.promise(() => admin.disconnect().catch(() => {}))
    )
    const known = new Set<string>()

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
      }).pipe(Effect.tap(() => Effect.sync(() => known.add(topic))))

    return {
      ensure: (topics, operation) =>
        Effect.forEach(topics.filter((topic) => !known.has(topic)), (topic) => create(topic, operation), {
          concurrency: "unbounded",
          discard: true
        })
    }
  })
