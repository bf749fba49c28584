/**
 * In-memory broker: the embedded backend of Publisher and Subscriber.
 *
 * A real implementation with the semantics the contract asks of RabbitMQ: topics fan out to
 * groups whose filter matches the key, a group is a FIFO queue shared by competing consumers,
 * each consumer holds at most `prefetch` unsettled deliveries, and whatever a consumer leaves
 * unsettled when it goes away is delivered again. Nothing survives the process.
 */
import * as Cause from "effect/Cause"
import * as Config from "effect/Config"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Queue from "effect/Queue"
import type { Message } from "../../src/capabilities/Message.ts"
import { Publisher } from "../../src/capabilities/Publisher.ts"
import {
  type Consumer,
  type Delivery,
  deadLetterTopic,
  defaultPrefetch,
  directTopic,
  matchesPattern,
  Subscriber,
  SubscriberError,
  type Subscription
} from "../../src/capabilities/Subscriber.ts"
import { deadLetterMessage } from "../../src/resilience/deadLetter.ts"

interface Entry {
  readonly message: Message
  readonly topic: string
  readonly attempt: number
}

interface ConsumerState {
  readonly prefetch: number
  readonly buffer: Queue.Queue<Delivery, Cause.Done>
  readonly unsettled: Set<Pending>
  stopped: boolean
}

interface Pending {
  readonly entry: Entry
  settled: boolean
}

interface GroupState {
  readonly ready: Array<Entry>
  readonly consumers: Array<ConsumerState>
  next: number
  /** Made by an exclusive subscription: deleted when its consumer goes away. */
  exclusive: boolean
}

export class MemoryBroker extends Context.Service<MemoryBroker, {
  /** Messages waiting in a group, not yet handed to a consumer. */
  readonly depth: (group: string) => Effect.Effect<number>
  /** Messages handed out and not yet settled. */
  readonly inFlight: (group: string) => Effect.Effect<number>
}>()("queueworks/MemoryBroker") {}

const hasCredit = (consumer: ConsumerState) => !consumer.stopped && consumer.unsettled.size < consumer.prefetch

// The next of the consumers with credit, round-robin; counted, then picked, so that no array is
// made per message.
const nextWithCredit = (group: GroupState): ConsumerState | undefined => {
  let open = 0
  for (const consumer of group.consumers) if (hasCredit(consumer)) open++
  if (open === 0) return undefined
  let pick = group.next++ % open
  for (const consumer of group.consumers) if (hasCredit(consumer) && pick-- === 0) return consumer
  return undefined
}

const make = Effect.sync(() => {
  const groups = new Map<string, GroupState>()
  const pendingOf = new WeakMap<Delivery, Pending>()
  /** topic -> group -> filters binding that group to the topic */
  const bindings = new Map<string, Map<string, Set<string>>>()

  const groupOf = (name: string): GroupState => {
    let group = groups.get(name)
    if (group === undefined) {
      group = { ready: [], consumers: [], next: 0, exclusive: false }
      groups.set(name, group)
    }
    return group
  }

  const bind = (topic: string, group: string, filter: string) => {
    let byGroup = bindings.get(topic)
    if (byGroup === undefined) bindings.set(topic, byGroup = new Map())
    let filters = byGroup.get(group)
    if (filters === undefined) byGroup.set(group, filters = new Set())
    filters.add(filter)
  }

  const declareSync = (subscription: Subscription) => {
    groupOf(subscription.group)
    if (subscription.topic !== directTopic) bind(subscription.topic, subscription.group, subscription.filter ?? "#")
    const dlq = deadLetterTopic(subscription.group)
    groupOf(dlq)
    bind(dlq, dlq, "#")
  }

  const route = (topic: string, message: Message) => {
    if (topic === directTopic) {
      groups.get(message.key)?.ready.push({ message, topic, attempt: 1 })
      return
    }
    const byGroup = bindings.get(topic)
    if (byGroup === undefined) return
    for (const [name, filters] of byGroup) {
      for (const filter of filters) {
        if (matchesPattern(filter, message.key)) {
          groupOf(name).ready.push({ message, topic, attempt: 1 })
          break
        }
      }
    }
  }

  // Hands ready entries to consumers with free credit, round-robin, until either runs out.
  const dispatch = (name: string) => {
    const group = groupOf(name)
    while (group.ready.length > 0) {
      const consumer = nextWithCredit(group)
      if (consumer === undefined) return
      const entry = group.ready.shift()!
      const pending: Pending = { entry, settled: false }
      consumer.unsettled.add(pending)
      const delivery = deliveryFor(name, consumer, pending)
      pendingOf.set(delivery, pending)
      Queue.offerUnsafe(consumer.buffer, delivery)
    }
  }

  const settle = (name: string, consumer: ConsumerState, pending: Pending, then: () => void) =>
    Effect.sync(() => {
      if (pending.settled) return
      pending.settled = true
      consumer.unsettled.delete(pending)
      then()
      dispatch(name)
    })

  const deliveryFor = (name: string, consumer: ConsumerState, pending: Pending): Delivery => {
    const { entry } = pending
    return {
      message: entry.message,
      topic: entry.topic,
      attempt: entry.attempt,
      ack: settle(name, consumer, pending, () => {}),
      // Made when asked for: most deliveries are only acked.
      get retry() {
        return settle(name, consumer, pending, () => {
          groupOf(name).ready.push({ ...entry, attempt: entry.attempt + 1 })
        })
      },
      deadLetter: (reason) =>
        settle(name, consumer, pending, () => {
          if (groups.get(name)?.exclusive === true) return
          const dlq = deadLetterTopic(name)
          route(dlq, deadLetterMessage(entry.message, reason, entry.topic))
          dispatch(dlq)
        })
    }
  }

  // Buffered deliveries never reached a handler: they go back to the head of the queue as they were.
  const stop = (name: string, consumer: ConsumerState) =>
    Effect.gen(function*() {
      if (consumer.stopped) return
      consumer.stopped = true
      const buffered = yield* Queue.clear(consumer.buffer).pipe(Effect.orElseSucceed(() => [] as Array<Delivery>))
      const group = groupOf(name)
      const returned: Array<Entry> = []
      for (const delivery of buffered) {
        const pending = pendingOf.get(delivery)
        if (pending === undefined || pending.settled) continue
        pending.settled = true
        consumer.unsettled.delete(pending)
        returned.push(pending.entry)
      }
      group.ready.unshift(...returned)
      yield* Queue.end(consumer.buffer)
      dispatch(name)
    })

  // Handed to a handler and never settled: redelivered, counted as another attempt.
  const abandon = (name: string, consumer: ConsumerState) =>
    Effect.sync(() => {
      const group = groupOf(name)
      const orphans = [...consumer.unsettled].filter((p) => !p.settled)
      for (const pending of orphans) pending.settled = true
      consumer.unsettled.clear()
      group.ready.unshift(...orphans.map((p) => ({ ...p.entry, attempt: p.entry.attempt + 1 })))
      const index = group.consumers.indexOf(consumer)
      if (index >= 0) group.consumers.splice(index, 1)
      if (group.exclusive) {
        groups.delete(name)
        for (const byGroup of bindings.values()) byGroup.delete(name)
        return
      }
      dispatch(name)
    })

  // Another program's group of that name, or another consumer's private one: AMQP refuses both.
  const claimExclusive = (subscription: Subscription) =>
    Effect.suspend(() => {
      const name = subscription.group
      if (groups.has(name)) {
        return Effect.fail(new SubscriberError({ operation: "subscribe", subject: name, cause: "the group exists already; an exclusive group is made by its one consumer" }))
      }
      groupOf(name).exclusive = true
      if (subscription.topic !== directTopic) bind(subscription.topic, name, subscription.filter ?? "#")
      return Effect.void
    })

  const publisher = Publisher.make("memory", (topic, messages) =>
    Effect.sync(() => {
      for (const message of messages) route(topic, message)
      if (topic === directTopic) for (const message of messages) if (groups.has(message.key)) dispatch(message.key)
      const byGroup = bindings.get(topic)
      if (byGroup !== undefined) for (const name of byGroup.keys()) dispatch(name)
    }))

  const subscriber = Subscriber.of({
    healthy: Effect.succeed(true),
    consumers: (name) => Effect.sync(() => groups.get(name)?.consumers.filter((c) => !c.stopped).length),
    declare: (subscription) =>
      subscription.exclusive === true
        ? Effect.fail(new SubscriberError({ operation: "declare", subject: subscription.group, cause: "an exclusive group is made by subscribing, not declared" }))
        : Effect.sync(() => declareSync(subscription)),
    subscribe: (subscription) =>
      Effect.gen(function*() {
        if (subscription.exclusive === true) yield* claimExclusive(subscription)
        else declareSync(subscription)
        const name = subscription.group
        const consumer: ConsumerState = {
          prefetch: Math.max(1, subscription.prefetch ?? defaultPrefetch),
          buffer: yield* Queue.unbounded<Delivery, Cause.Done>(),
          unsettled: new Set(),
          stopped: false
        }
        yield* Effect.acquireRelease(
          Effect.sync(() => {
            groupOf(name).consumers.push(consumer)
            dispatch(name)
          }),
          () => stop(name, consumer).pipe(Effect.andThen(abandon(name, consumer)))
        )
        const result: Consumer = {
          take: Queue.take(consumer.buffer),
          takeBatch: (max) => Queue.takeBetween(consumer.buffer, 1, max),
          stop: stop(name, consumer)
        }
        return result
      })
  })

  const broker = MemoryBroker.of({
    depth: (name) => Effect.sync(() => groups.get(name)?.ready.length ?? 0),
    inFlight: (name) =>
      Effect.sync(() => (groups.get(name)?.consumers ?? []).reduce((n, c) => n + c.unsettled.size, 0))
  })

  return { ends: MemoryBrokerEnds.of({ publisher, subscriber }), broker }
})

/**
 * Both ends of one in-memory broker. `publisherLayer` and `subscriberLayer` take theirs from it,
 * so a program that wants both, built from the two, still has one broker: messages published on
 * one end reach the other.
 */
export class MemoryBrokerEnds extends Context.Service<MemoryBrokerEnds, {
  readonly publisher: Publisher["Service"]
  readonly subscriber: Subscriber["Service"]
}>()("queueworks/MemoryBrokerEnds") {}

/** The memory backend takes no options; the type is here so every backend exports the same names. */
export interface MemoryOptions {}

export type Options = MemoryOptions

/** No variables: the memory broker lives and dies with the process. */
export const config: Config.Config<MemoryOptions> = Config.succeed({})

/** A fresh broker: its ends and its gauges. One per layer build, shared by whatever is built with it. */
export const brokerLayer: Layer.Layer<MemoryBroker | MemoryBrokerEnds> = Layer.effectContext(
  make.pipe(Effect.map(({ broker, ends }) => Context.make(MemoryBroker, broker).pipe(Context.add(MemoryBrokerEnds, ends))))
)

export const publisherLayer: Layer.Layer<Publisher, never, MemoryBrokerEnds> = Layer.effect(
  Publisher,
  MemoryBrokerEnds.useSync((ends) => ends.publisher)
)

export const subscriberLayer: Layer.Layer<Subscriber, never, MemoryBrokerEnds> = Layer.effect(
  Subscriber,
  MemoryBrokerEnds.useSync((ends) => ends.subscriber)
)

/**
 * One broker instance behind Publisher, Subscriber and MemoryBroker. A value, not a function of
 * `MemoryOptions`, as there are none to pass.
 */
export const layer: Layer.Layer<Publisher | Subscriber | MemoryBroker> = Layer.mergeAll(publisherLayer, subscriberLayer).pipe(
  Layer.provideMerge(brokerLayer)
)

export const layerConfig: Layer.Layer<Publisher | Subscriber | MemoryBroker> = layer

export const publisherLayerConfig: Layer.Layer<Publisher, never, MemoryBrokerEnds> = publisherLayer

export const subscriberLayerConfig: Layer.Layer<Subscriber, never, MemoryBrokerEnds> = subscriberLayer
