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
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
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
  /** Connected to the cluster, as the producer's own connect/disconnect events say. */
  readonly connected: Effect.Effect<boolean>
}

export const makeProducer = (client: Client, timeout: Duration.Input): Effect.Effect<Producer, BrokerError, Scope.Scope> =>
  Effect.gen(function*() {
    const producer = client.kafka.producer({
      idempotent: true,
      maxInFlightRequests: 1,
      // kafkajs's default, named so it does not print its partitioner-change notice.
      createPartitioner: client.kafkajs.Partitioners.DefaultPartitioner
    })
    let connected = false
    producer.on(producer.events.CONNECT, () => {
      connected = true
    })
    producer.on(producer.events.DISCONNECT, () => {
      connected = false
    })
    yield* client.connect("producer.connect", producer)
    const millis = Duration.toMillis(Duration.fromInputUnsafe(timeout))

    const send = (topic: string, records: ReadonlyArray<KafkaRecord>): Effect.Effect<void, PublisherError> =>
      records.length === 0
        ? Effect.void
        : Effect.tryPromise({
          try: () => producer.send({ topic, acks: -1, timeout: millis, messages: [...records] }),
          catch: (cause) => new PublisherError({ operation: "producer.send", topic, cause })
        }).pipe(
          Effect.timeoutOrElse({
            duration: timeout,
            orElse: () =>
              Effect.fail(new PublisherError({ operation: "producer.send", topic, cause: `not acknowledged within ${formatDuration(timeout)}` }))
          }),
          Effect.asVoid
        )

    return { send, connected: Effect.sync(() => connected) }
  })

/** The Publisher's raw send for `Publisher.make`. */
export const send = (producer: Producer) => (topic: string, messages: ReadonlyArray<Message>): Effect.Effect<void, PublisherError> =>
  producer.send(topic, messages.map((message) => toRecord(message)))
