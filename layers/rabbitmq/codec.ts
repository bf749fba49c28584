/**
 * Message <-> AMQP: id is `messageId`, key the routing key, headers the AMQP headers (read back
 * as strings), body the content. Every message is persistent, but for request/reply traffic on
 * the default exchange when the layer is told `directDelivery: "transient"` (see `./index.ts`).
 *
 * A retry is republished to the group's queue through the toolkit's retry exchange
 * (`retryExchange`, bound to every group's queue by its name), so the original exchange and
 * routing key ride along in headers and are restored here: handlers see the message as it was
 * first published. Those headers and the attempt are read only from messages that came through
 * that exchange: a producer publishing to a topic exchange, or straight to a queue through the
 * default exchange (as request/reply clients do), cannot set its message's attempt or origin.
 * Whatever it puts in those headers is dropped, never handed to handlers. (Retry copies that an
 * older version sent through the default exchange are read the same way, as first attempts of
 * their queue: nothing tells them apart from a client's.)
 *
 * The `reply-to` and `correlation-id` headers travel as the AMQP properties of those names, both
 * ways: a client that sets `ReplyTo` and `CorrelationId` (the usual AMQP RPC) is understood, and
 * a reply published here reaches it with its `CorrelationId` set.
 */
import type * as amqp from "amqplib"
import { attemptFrom, Headers, type Message, receivedHeaders } from "../../src/capabilities/Message.ts"
import { asBuffer } from "../platform/buffer.ts"
import { retryExchange } from "./topology.ts"

export const OriginalTopic = "x-original-exchange"
export const OriginalKey = "x-original-routing-key"

/** Headers the layer reads itself and does not hand to handlers. */
const internal = new Set<string>([OriginalTopic, OriginalKey, Headers.attempt, Headers.replyTo, Headers.correlationId])

export interface Outgoing {
  readonly exchange: string
  readonly routingKey: string
  readonly content: Buffer
  readonly options: amqp.Options.Publish
}

/**
 * Publish options for a message's headers: the request/reply ones as properties, the rest as
 * headers; persistent (written to disk on a durable queue) unless told otherwise.
 */
export const publishOptions = (
  messageId: string,
  headers: Readonly<Record<string, string>>,
  persistent = true
): amqp.Options.Publish => {
  // Most messages carry neither: their headers go as they are, without a copy per message.
  if (headers[Headers.replyTo] === undefined && headers[Headers.correlationId] === undefined) {
    return { persistent, messageId, headers }
  }
  const { [Headers.replyTo]: replyTo, [Headers.correlationId]: correlationId, ...rest } = headers
  return {
    persistent,
    messageId,
    headers: rest,
    ...(replyTo === undefined ? {} : { replyTo }),
    ...(correlationId === undefined ? {} : { correlationId })
  }
}

export const toAmqp = (exchange: string, message: Message, persistent = true): Outgoing => ({
  exchange,
  routingKey: message.key,
  content: asBuffer(message.body),
  options: publishOptions(message.id, message.headers, persistent)
})

export interface Incoming {
  readonly message: Message
  readonly topic: string
  readonly attempt: number
}

export const fromAmqp = (msg: amqp.ConsumeMessage): Incoming => {
  const raw: Record<string, unknown> = msg.properties.headers ?? {}
  const headers = receivedHeaders(raw, internal, headerText)
  const { replyTo, correlationId } = msg.properties
  if (typeof replyTo === "string" && replyTo !== "") headers[Headers.replyTo] = replyTo
  if (typeof correlationId === "string" && correlationId !== "") headers[Headers.correlationId] = correlationId
  const retried = msg.fields.exchange === retryExchange
  // Own properties only: amqplib decodes a table header named `__proto__` into the prototype of
  // the headers object, and what it inherits from there must not pass for our headers.
  const own = (name: string) => Object.hasOwn(raw, name) ? headerText(raw[name]) : undefined
  const originalTopic = retried ? own(OriginalTopic) : undefined
  const originalKey = retried ? own(OriginalKey) : undefined
  // A retry copy carries the attempt it is; a redelivery of any message is one more than that.
  const base = retried ? attemptFrom(own(Headers.attempt)) : 1
  const id = msg.properties.messageId
  return {
    message: {
      // A producer outside this toolkit may send no id; there is nothing stable to use then.
      id: typeof id === "string" && id !== "" ? id : crypto.randomUUID(),
      key: originalKey ?? msg.fields.routingKey,
      headers,
      body: msg.content
    },
    topic: originalTopic ?? msg.fields.exchange,
    attempt: msg.fields.redelivered ? base + 1 : base
  }
}

const decoder = new TextDecoder()

const headerText = (value: unknown): string | undefined => {
  if (value === undefined || value === null) return undefined
  if (typeof value === "string") return value
  if (value instanceof Uint8Array) return decoder.decode(value)
  if (typeof value === "number" || typeof value === "boolean" || typeof value === "bigint") return String(value)
  // AMQP tables and arrays (e.g. RabbitMQ's own x-death): keep them readable rather than drop them.
  try {
    return JSON.stringify(value)
  } catch {
    return String(value)
  }
}
