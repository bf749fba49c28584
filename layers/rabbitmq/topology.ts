/**
 * What a subscription means on the broker: `topic` is a durable topic exchange, `group` a durable
 * queue bound to it with `filter` (default `#`), and `deadLetterTopic(group)` a topic exchange
 * with a durable queue of the same name bound with `#`, so a dead-lettered message always has
 * somewhere to go even before anyone reads the dead letters.
 *
 * Every group's queue is also bound to `retryExchange` (direct, durable) with its own name as
 * the key: retries come back through it, and only through it, so a message's attempt and origin
 * are read only from a message that arrived there (see `codec.ts`). The binding is declared at
 * every subscribe, so queues declared before it existed, or by other programs, get it too.
 * An exclusive subscription is an exclusive, auto-delete, non-durable queue of the group's name
 * (deleted when its consumer is cancelled or its connection closes), with no dead-letter queue;
 * it is bound to `retryExchange` too, so its handler's retries come back to it.
 *
 * Queues are declared with no x-arguments on purpose: a queue may already exist, declared by
 * another program without arguments (the original sales client and worker declare theirs so), and a declaration whose arguments differ fails with
 * PRECONDITION_FAILED and closes the channel.
 */
import type * as amqp from "amqplib"
import { deadLetterTopic, directTopic, type Subscription } from "../../src/capabilities/Subscriber.ts"

/**
 * The toolkit's own exchange for retry copies. Not a topic: the Publisher refuses it, and a
 * broker that gives clients no write permission on it leaves them no way to forge a retry.
 */
export const retryExchange = "queueworks.retry"

export const assertTopic = (channel: amqp.Channel, topic: string): Promise<unknown> =>
  topic === retryExchange ? assertRetryExchange(channel) : channel.assertExchange(topic, "topic", { durable: true })

const assertRetryExchange = (channel: amqp.Channel): Promise<unknown> =>
  channel.assertExchange(retryExchange, "direct", { durable: true })

const assertGroup = async (channel: amqp.Channel, topic: string, group: string, filter: string) => {
  // The default exchange exists already, cannot be declared, and routes to every queue by name.
  if (topic !== directTopic) await assertTopic(channel, topic)
  await channel.assertQueue(group, { durable: true })
  if (topic !== directTopic) await channel.bindQueue(group, topic, filter)
}

export const declareSubscription = async (channel: amqp.Channel, subscription: Subscription): Promise<void> => {
  if (subscription.exclusive === true) {
    // The original Go client's reply queue. Not durable, so an existing durable queue of that
    // name is refused (PRECONDITION_FAILED) rather than taken over; no dead-letter queue, as
    // nothing would delete it.
    await channel.assertQueue(subscription.group, { exclusive: true, autoDelete: true, durable: false })
    if (subscription.topic !== directTopic) {
      await assertTopic(channel, subscription.topic)
      await channel.bindQueue(subscription.group, subscription.topic, subscription.filter ?? "#")
    }
    await assertRetryExchange(channel)
    await channel.bindQueue(subscription.group, retryExchange, subscription.group)
    return
  }
  await assertGroup(channel, subscription.topic, subscription.group, subscription.filter ?? "#")
  await assertRetryExchange(channel)
  await channel.bindQueue(subscription.group, retryExchange, subscription.group)
  const dead = deadLetterTopic(subscription.group)
  await assertGroup(channel, dead, dead, "#")
}
