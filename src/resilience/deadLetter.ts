/**
 * Dead-lettering, written once: the message a dead-letter destination receives. Backends whose
 * dead-letter destination is a topic of their own (memory, RabbitMQ, Kafka) publish this message
 * there; the reason and the topic it was consumed from travel as headers.
 */
import { Headers, type Message } from "../capabilities/Message.ts"

/** `message` as dead-lettered from `source` for `reason`: same id, key and body, two headers more. */
export const deadLetterMessage = (message: Message, reason: string, source: string): Message => ({
  ...message,
  headers: { ...message.headers, [Headers.deadLetterReason]: reason, [Headers.deadLetterSource]: source }
})
