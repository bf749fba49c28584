/**
 * Producing: one idempotent producer the whole layer shares, for the Publisher's batches and the
 * subscriber's retries and dead letters.
 *
 * `acks: -1` (all in-sync replicas) and `idempotent: true` with one request in flight per broker:
 * a batch succeeds once every replica that must have it has it, kafkajs's own retries of a
 * request cannot duplicate or reorder records, and records of one key keep their order. kafkajs
 * serializes concurrent sends per broker itself, so many fibers may send at once.
 *
 * A send cannot be cancelled in kafkajs: when `timeout` fails a call the records may still
 * arrive, which the contract allows (publishing again may duplicate, never lose).
 *
 * A send the broker refused (a record over the topic's `max.message.bytes`, say) replaces the
 * producer with a new one, and so a new producer id: see `renew` for the kafkajs behaviour that
 * would otherwise wedge or silently drop later sends to the other partitions of that request.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Scope from "effect/Scope"
import * as Semaphore from "effect/Semaphore"
import type { Message as KafkaRecord } from "kafkajs"
import type { Message } from "../../src/capabilities/Message.ts"
import type { BrokerError } from "../../src/capabilities/BrokerError.ts"
import { PublisherError } from "../../src/capabilities/Publisher.ts"
import type { Client } from "./client.ts"
import { toRecord } from "./codec.ts"
import { formatDuration } from "../../src/runtime/format.ts"

export interface Producer {
  /** Resolves once the broker acknowledged every record with acks=all. */
  readonly send: (topic: string, records: ReadonlyArray<KafkaRecord>) => Effect.Effect<void, PublisherError>
}

export const makeProducer = (client: Client, timeout: Duration.Input): Effect.Effect<Producer, BrokerError, Scope.Scope> =>
  Effect.gen(function*() {
    const parent = yield* Effect.scope
    // Each producer in a scope of its own, so a renewed one closes without closing the layer.
    const open = Effect.gen(function*() {
      const scope = yield* Scope.fork(parent)
      const producer = client.kafka.producer({
        idempotent: true,
        maxInFlightRequests: 1,
        // kafkajs's default, named so it does not print its partitioner-change notice.
        createPartitioner: client.kafkajs.Partitioners.DefaultPartitioner
      })
      const current = { producer, scope }
      yield* client.connect("producer.connect", producer).pipe(
        Scope.provide(scope),
        Effect.onError(() => Scope.close(scope, Exit.void))
      )
      return current
    })
    let current = yield* open
    // Sends share the producer; renewing it waits for them and holds the next ones back.
    const sending = yield* Semaphore.make(allPermits)
    const millis = Duration.toMillis(Duration.fromInputUnsafe(timeout))

    // kafkajs (2.2.4) rolls back the idempotence sequence of every partition of a produce request
    // that failed, also of those the broker appended: a batch with one record the broker refuses
    // (too large, say) leaves the producer's sequences behind the broker's on the other
    // partitions, whose next sends then fail with OUT_OF_ORDER_SEQUENCE_NUMBER forever, or are
    // taken for duplicates of the appended batch and silently dropped. Only a new producer id
    // starts the sequences afresh, and kafkajs gets one only for a new producer. So after the
    // broker refused a send, the producer is replaced (once, however many sends saw the refusal).
    const renew = (failed: typeof current) =>
      sending.withPermits(allPermits)(Effect.gen(function*() {
        if (current !== failed) return
        const fresh = yield* open
        current = fresh
        yield* Scope.close(failed.scope, Exit.void)
        yield* Effect.logInfo("kafka producer renewed after the broker refused a send")
      })).pipe(
        Effect.catch((error) => Effect.logWarning("kafka producer not renewed; keeping the old one", error))
      )

    const send = (topic: string, records: ReadonlyArray<KafkaRecord>): Effect.Effect<void, PublisherError> =>
      records.length === 0 ? Effect.void : Effect.suspend(() => {
        let used = current
        return sending.withPermits(1)(Effect.suspend(() => {
          used = current
          return Effect.tryPromise({
            try: () => used.producer.send({ topic, acks: -1, timeout: millis, messages: [...records] }),
            catch: (cause) =>
              new PublisherError({ operation: "producer.send", topic, cause, reason: refusedForGood(cause) ? "refused" : "unavailable" })
          })
        })).pipe(
          Effect.timeoutOrElse({
            duration: timeout,
            orElse: () =>
              Effect.fail(
                new PublisherError({
                  operation: "producer.send",
                  topic,
                  cause: `not acknowledged within ${formatDuration(timeout)}`,
                  reason: "unavailable"
                })
              )
          }),
          Effect.tapError((error) => refusedByBroker(error.cause) ? renew(used) : Effect.void),
          Effect.asVoid
        )
      })

    return { send }
  })

const allPermits = 1_000_000

/** The broker answered with an error code (kafkajs wraps it in a retry error as its cause). */
const refusedByBroker = (cause: unknown): boolean => {
  for (let error = cause, depth = 0; typeof error === "object" && error !== null && depth < 5; depth++) {
    if ((error as { name?: unknown }).name === "KafkaJSProtocolError") return true
    error = (error as { cause?: unknown }).cause
  }
  return false
}

/**
 * The broker answered with an error kafkajs does not retry (MESSAGE_TOO_LARGE, INVALID_RECORD,
 * TOPIC_AUTHORIZATION_FAILED, ...): the records are refused. A retriable code (a leader moving)
 * or no answer at all is the broker being unavailable.
 */
const refusedForGood = (cause: unknown): boolean => {
  for (let error = cause, depth = 0; typeof error === "object" && error !== null && depth < 5; depth++) {
    const { name, retriable } = error as { name?: unknown; retriable?: unknown }
    if (name === "KafkaJSProtocolError") return retriable === false
    error = (error as { cause?: unknown }).cause
  }
  return false
}

/** The Publisher's raw send for `Publisher.make`. */
export const send = (producer: Producer) => (topic: string, messages: ReadonlyArray<Message>): Effect.Effect<void, PublisherError> =>
  producer.send(topic, messages.map((message) => toRecord(message)))
