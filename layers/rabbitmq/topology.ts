/**
 * What a subscription means on the broker: `topic` is a durable topic exchange, `group` a durable
 * queue bound to it with `filter` (default `#`), and `deadLetterTopic(group)` a topic exchange
 * with a durable queue of the same name bound with `#`, so a dead-lettered message always has
 * somewhere to go even before anyone reads the dead letters.
 *
 * An exclusive subscription is an exclusive, auto-delete, non-durable queue of the group's name
 * (deleted when its consumer is cancelled or its connection closes), with no dead-letter queue.
 *
 * Queues are declared with no x-arguments on purpose: a queue may already exist, declared by
 * another program without arguments (the original sales client and worker declare theirs so), and a declaration whose arguments differ fails with
 * PRECONDITION_FAILED and closes the channel.
 */
import type * as amqp from "amqplib"
import { deadLetterTopic, directTopic, type Subscription } from "../../src/capabilities/Subscriber.ts"

export const assertTopic = (channel: amqp.Channel, topic: string): Promise<unknown> =>
  channel.assertExchange(topic, "topic", { durable: true })

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
    return
  }
  await assertGroup(channel, subscription.topic, subscription.group, subscription.filter ?? "#")
  const dead = deadLetterTopic(subscription.group)
  await assertGroup(channel, dead, dead, "#")
}
