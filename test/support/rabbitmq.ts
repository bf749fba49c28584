/**
 * Removes what tests declared on a shared RabbitMQ: each subscription's queue and topic exchange
 * and its dead-letter pair, so a developer's broker does not fill up run after run.
 */
import * as amqp from "amqplib"
import { deadLetterTopic, type Subscription } from "../../src/capabilities/Subscriber.ts"

export const deleteRabbitmqTopology = async (url: string, subscriptions: ReadonlyArray<Pick<Subscription, "topic" | "group">>) => {
  if (subscriptions.length === 0) return
  const connection = await amqp.connect(url)
  try {
    const channel = await connection.createChannel()
    for (const sub of subscriptions) {
      for (const queue of [sub.group, deadLetterTopic(sub.group)]) await channel.deleteQueue(queue)
      // The default exchange ("") cannot be deleted.
      for (const exchange of [sub.topic, deadLetterTopic(sub.group)]) if (exchange !== "") await channel.deleteExchange(exchange)
    }
  } finally {
    await connection.close()
  }
}
