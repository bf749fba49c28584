/**
 * Consuming: one kafkajs consumer (one group member) per subscription, reading with `eachBatch`
 * and manual offset resolution; deliveries go into an Effect Queue that `Consumer.take` reads.
 *
 * A batch callback never returns before the records it handed out are settled: it hands records
 * to the buffer in offset order while the consumer has prefetch credit, then waits, heartbeating,
 * until they are settled, resolving and committing the offset as far as every record before it
 * is settled (`ledger.ts`). Records the filter rejects are settled as they are read. Batches of
 * different partitions run concurrently (`partitionsConsumedConcurrently`); kafkajs fetches again
 * only when every batch of the previous fetch is done, so one slow handler holds back the next
 * fetch of the other partitions too.
 *
 * Settling:
 * - `ack` marks the record settled; the commit follows within `commitInterval`, and always when
 *   the batch is done or the consumer leaves.
 * - `retry` stays inside this consumer: the same record goes back to the head of this consumer's
 *   buffer as a new delivery with `attempt + 1`, keeping its place in the batch, so its offset
 *   and every later one of its partition stay uncommitted until it is settled. Nothing is
 *   written to the topic, so other groups never see a retry, and a consumer that takes one
 *   delivery at a time gets the retried record before any later record of its key. If the
 *   consumer stops, crashes or loses the partition first, the group reads it again from the
 *   committed offset, as attempt 1 (Kafka keeps no count).
 * - `deadLetter` appends a copy to `deadLetterTopic(group)` with the reason and the source topic,
 *   then the original counts as settled.
 * - The first settlement of a delivery wins; a dead letter that fails leaves it unsettled.
 *
 * `subscribe` returns once the member has joined its group (kafkajs's GROUP_JOIN) and so holds
 * its assignment, which is empty when the group has more members than the topic has partitions.
 *
 * Redelivery is the group reading again from the committed offset: whatever was not settled when
 * the member stopped, closed, crashed or lost its partitions in a rebalance. Kafka cannot count
 * those attempts, so such a redelivery has the attempt it had before.
 *
 * Rebalance: a heartbeat or commit that reports the group rebalancing drops every open delivery
 * of this member (settling them becomes a no-op; the new owner of the partition reads them) and
 * hands the error back to kafkajs, which joins the group again. kafkajs rebalances eagerly, so
 * this also happens to partitions the member keeps.
 */
import * as Cause from "effect/Cause"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"
import type { EachBatchPayload } from "kafkajs"
import type { PublisherError } from "../../src/capabilities/Publisher.ts"
import {
  type Consumer,
  deadLetterTopic,
  type Delivery,
  matchesPattern,
  SubscriberError,
  type SubscriberShape,
  type Subscription
} from "../../src/capabilities/Subscriber.ts"
import { deadLetterMessage } from "../../src/resilience/deadLetter.ts"
import type { Client, Topics } from "./client.ts"
import { fromRecord, type Incoming, toRecord } from "./codec.ts"
import { ConsumerLedger, type Slot } from "./ledger.ts"
import type { Producer } from "./publisher.ts"
import { formatDuration } from "../../src/runtime/format.ts"

export interface SubscriberOptions {
  /** Unsettled deliveries per consumer when the subscription names none. */
  readonly prefetch: number
  readonly sessionTimeout: Duration.Input
  readonly heartbeatInterval: Duration.Input
  readonly rebalanceTimeout: Duration.Input
  /** How long a fetch waits on the broker for records. */
  readonly maxWaitTime: Duration.Input
  /** At most this long between a record settling and its offset being committed. */
  readonly commitInterval: Duration.Input
  readonly partitionsConsumedConcurrently: number
  /** How long `subscribe` waits for the consumer to join its group. */
  readonly joinTimeout: Duration.Input
  /** How long stopping or closing a consumer waits for kafkajs to leave the group. */
  readonly closeTimeout: Duration.Input
}

interface Buffered {
  readonly slot: Slot
  readonly delivery: Delivery
}

// The member's partitions are no longer its own: the group is rebalancing or went on without it.
const groupChanges = new Set([
  "REBALANCE_IN_PROGRESS",
  "ILLEGAL_GENERATION",
  "UNKNOWN_MEMBER_ID",
  "NOT_COORDINATOR_FOR_GROUP",
  "FENCED_INSTANCE_ID"
])

const isGroupChange = (error: unknown): boolean =>
  typeof error === "object" && error !== null && "type" in error && typeof error.type === "string" &&
  groupChanges.has(error.type)

const millis = (input: Duration.Input): number => Duration.toMillis(Duration.fromInputUnsafe(input))

/**
 * `healthy` is the cluster probe the layer shares with its publisher: the producer's own
 * connected flag follows only its sends, so an idle consumer would look healthy against a cluster
 * that went away.
 */
export const makeSubscriber = (
  client: Client,
  topics: Topics,
  producer: Producer,
  healthy: Effect.Effect<boolean>,
  options: SubscriberOptions
): SubscriberShape => {
  const declare = (subscription: Subscription) =>
    subscription.exclusive === true
      ? Effect.fail(new SubscriberError({ operation: "declare", subject: subscription.group, cause: "Kafka has no exclusive groups" }))
      : topics.ensure([subscription.topic, deadLetterTopic(subscription.group)], "declare")

  const subscribe = (subscription: Subscription): Effect.Effect<Consumer, SubscriberError, Scope.Scope> =>
    Effect.gen(function*() {
      const { group, topic } = subscription
      // A consumer group is shared and outlives its members by design: nothing to map onto.
      if (subscription.exclusive === true) {
        return yield* Effect.fail(new SubscriberError({ operation: "subscribe", subject: group, cause: "Kafka has no exclusive groups" }))
      }
      const filter = subscription.filter ?? "#"
      const dead = deadLetterTopic(group)
      yield* topics.ensure([topic, dead], "subscribe")

      const scope = yield* Effect.scope
      const context = yield* Effect.context<never>()
      const runPromise = Effect.runPromiseWith(context)
      const runFork = Effect.runForkWith(context)
      const buffer = yield* Queue.unbounded<Buffered, Cause.Done | SubscriberError>()
      let changed = Deferred.makeUnsafe<void>()
      const ledger = new ConsumerLedger(Math.max(1, subscription.prefetch ?? options.prefetch), () => {
        const previous = changed
        changed = Deferred.makeUnsafe()
        Deferred.doneUnsafe(previous, Effect.void)
      })
      const heartbeatMillis = millis(options.heartbeatInterval)
      // The error that told this member its group is rebalancing, until it has joined again.
      let groupChange: unknown = undefined
      let stopping = false

      const consumer = client.kafka.consumer({
        groupId: group,
        sessionTimeout: millis(options.sessionTimeout),
        heartbeatInterval: heartbeatMillis,
        rebalanceTimeout: millis(options.rebalanceTimeout),
        maxWaitTimeInMs: millis(options.maxWaitTime),
        // Topics are created by `ensure` with the partitions a group needs, never by a metadata request.
        allowAutoTopicCreation: false
      })

      const joined = Deferred.makeUnsafe<void, SubscriberError>()
      const listeners = [
        consumer.on(consumer.events.GROUP_JOIN, (event) => {
          groupChange = undefined
          Deferred.doneUnsafe(joined, Effect.void)
          runFork(
            Effect.logDebug("kafka: consumer joined its group").pipe(
              Effect.annotateLogs({ group, assignment: JSON.stringify(event.payload.memberAssignment) })
            )
          )
        }),
        // A crash kafkajs restarts from is only a pause; one it gives up on ends the consumer.
        consumer.on(consumer.events.CRASH, (event) => {
          if (event.payload.restart) return
          const error = new SubscriberError({ operation: "consume", subject: group, cause: event.payload.error })
          Deferred.doneUnsafe(joined, Effect.fail(error))
          ledger.stop()
          ledger.revokeAll()
          Queue.failCauseUnsafe(buffer, Cause.fail(error))
        })
      ]

      const makeDelivery = (slot: Slot, incoming: Incoming): Delivery => {
        const { message } = incoming
        // Per delivery, not per slot: after a retry the slot belongs to the next delivery.
        let settled = false
        const settleWith = (operation: string, publish: () => Effect.Effect<void, PublisherError>) =>
          Effect.suspend(() => {
            if (settled || !ledger.beginSettle(slot)) return Effect.void
            return publish().pipe(
              Effect.mapError((error) => new SubscriberError({ operation, subject: group, cause: error.cause })),
              Effect.onExit((exit) =>
                Effect.sync(() => {
                  if (Exit.isSuccess(exit)) {
                    settled = true
                    ledger.settle(slot)
                  } else {
                    ledger.abortSettle(slot)
                  }
                })
              )
            )
          })
        return {
          message,
          topic: incoming.topic,
          attempt: incoming.attempt,
          ack: settleWith("ack", () => Effect.void),
          retry: Effect.sync(() => {
            if (settled) return
            settled = true
            if (!ledger.requeue(slot)) return
            const again = { slot, delivery: makeDelivery(slot, { ...incoming, attempt: incoming.attempt + 1 }) }
            // First in line again, ahead of what was buffered after it: taken one at a time, a
            // retried record is handled before any later record of its partition (of its key).
            const behind: Array<Buffered> = []
            for (let next = Queue.takeUnsafe(buffer); next !== undefined && Exit.isSuccess(next); next = Queue.takeUnsafe(buffer)) {
              behind.push(next.value)
            }
            // The buffer ended (stop, crash): the group reads it again.
            if (!Queue.offerUnsafe(buffer, again)) return ledger.transition(slot, "dropped")
            Queue.offerAllUnsafe(buffer, behind)
          }),
          deadLetter: (reason) =>
            settleWith("deadLetter", () => producer.send(dead, [toRecord(deadLetterMessage(message, reason, incoming.topic))]))
        }
      }

      const consumeBatch = (payload: EachBatchPayload): Effect.Effect<void, unknown> => {
        // A batch fetched before the rebalance was noticed: kafkajs must join again first.
        if (groupChange !== undefined) return Effect.fail(groupChange)
        // Fetched before stop took effect: left unresolved, the group reads it again.
        if (ledger.stopped) return Effect.void
        const batch = ledger.open()
        const { messages, partition } = payload.batch
        const batchTopic = payload.batch.topic
        let next = 0

        const commitSettled = Effect.suspend(() => {
          const offset = batch.advance()
          if (offset !== undefined) payload.resolveOffset(offset)
          return Effect.tryPromise({ try: () => payload.commitOffsetsIfNecessary(), catch: (cause) => cause })
        })

        return Effect.gen(function*() {
          while (true) {
            while (!batch.revoked && !ledger.stopped && next < messages.length) {
              const record = messages[next]!
              const incoming = fromRecord(batchTopic, partition, record)
              if (!matchesPattern(filter, incoming.message.key)) {
                batch.skip(record.offset)
              } else if (ledger.hasCredit) {
                const slot = batch.handOut(record.offset)
                Queue.offerUnsafe(buffer, { slot, delivery: makeDelivery(slot, incoming) })
              } else {
                break
              }
              next++
            }
            yield* commitSettled
            const handingOut = !batch.revoked && !ledger.stopped && next < messages.length
            if (!handingOut && batch.pending === 0) return
            // Read before waiting, in the same synchronous step as the checks above, so no
            // settlement between the two goes unnoticed.
            const signal = changed
            yield* Deferred.await(signal).pipe(Effect.timeoutOption(heartbeatMillis))
            yield* Effect.tryPromise({ try: () => payload.heartbeat(), catch: (cause) => cause })
          }
        }).pipe(
          Effect.tapError((error) =>
            Effect.sync(() => {
              if (!isGroupChange(error)) return
              groupChange ??= error
              ledger.revokeAll()
            })
          ),
          Effect.ensuring(Effect.sync(() => ledger.close(batch)))
        )
      }

      const endIntake = Effect.gen(function*() {
        ledger.stop()
        yield* Queue.clear(buffer).pipe(Effect.ignore)
        yield* Queue.end(buffer)
      })

      // Leaving the group waits for the batch callbacks, so for the deliveries in handlers' hands.
      const leave = (operation: string, run: () => Promise<void>) =>
        Effect.tryPromise({ try: run, catch: (cause) => cause }).pipe(
          Effect.timeoutOrElse({
            duration: options.closeTimeout,
            orElse: () => Effect.fail(`still running after ${formatDuration(options.closeTimeout)}`)
          }),
          Effect.catch((cause) =>
            Effect.logWarning(`kafka: ${operation} of a consumer of "${group}" failed`).pipe(
              Effect.annotateLogs({ cause: cause instanceof Error ? cause.message : String(cause) })
            )
          )
        )

      // Registered before the consumer starts, so a failed start still disconnects it.
      yield* Effect.addFinalizer(() =>
        Effect.gen(function*() {
          stopping = true
          yield* endIntake
          ledger.revokeAll()
          yield* leave("disconnect", () => consumer.disconnect())
          for (const remove of listeners) remove()
        })
      )

      // Uninterruptible: a kafkajs consumer interrupted while joining cannot be stopped any more.
      yield* Effect.uninterruptible(Effect.tryPromise({
        try: async () => {
          await consumer.connect()
          await consumer.subscribe({ topics: [topic], fromBeginning: true })
          await consumer.run({
            eachBatchAutoResolve: false,
            autoCommit: true,
            autoCommitInterval: millis(options.commitInterval),
            partitionsConsumedConcurrently: options.partitionsConsumedConcurrently,
            eachBatch: (payload) => runPromise(consumeBatch(payload))
          })
        },
        catch: (cause) => new SubscriberError({ operation: "subscribe", subject: group, cause })
      }))
      // `run` resolves after the first join attempt, also when it crashed and kafkajs retries.
      yield* Deferred.await(joined).pipe(
        Effect.timeoutOrElse({
          duration: options.joinTimeout,
          orElse: () =>
            Effect.fail(new SubscriberError({ operation: "subscribe", subject: group, cause: `did not join the consumer group within ${formatDuration(options.joinTimeout)}` }))
        })
      )

      const take = Effect.uninterruptibleMask((restore) =>
        Effect.gen(function*() {
          while (true) {
            const item = yield* restore(Queue.take(buffer))
            // Dropped while buffered (rebalance, crash): the group reads it again.
            if (ledger.take(item.slot)) return item.delivery
          }
        })
      )

      // Buffered deliveries are dropped, never committed. The member leaves the group at once
      // when no delivery is in a handler's hands; otherwise once they are settled, without
      // making the caller (who may hold one of them) wait.
      const stop: Effect.Effect<void> = Effect.suspend(() => {
        if (stopping) return Effect.void
        stopping = true
        return endIntake.pipe(
          Effect.andThen(Effect.suspend(() => {
            const leaving = leave("stop", () => consumer.stop())
            return ledger.inHand === 0 ? leaving : Effect.asVoid(Effect.forkIn(leaving, scope))
          }))
        )
      })

      const takeBatch = (max: number) =>
        Effect.uninterruptibleMask((restore) =>
          Effect.gen(function*() {
            while (true) {
              const items = yield* restore(Queue.takeBetween(buffer, 1, max))
              const live = items.filter((item) => ledger.take(item.slot)).map((item) => item.delivery)
              if (live.length > 0) return live
            }
          })
        )

      const result: Consumer = { take, takeBatch, stop }
      return result
    })

  return { declare, subscribe, healthy }
}
