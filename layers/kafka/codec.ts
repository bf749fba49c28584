/**
 * Message <-> Kafka record: key is the record key, body the value, id the `message-id` header,
 * every other header a string header.
 *
 * `message-id` is read here and not handed to handlers. A record produced outside this toolkit
 * has no `message-id`: its id is its position (`topic/partition/offset`), which stays the same
 * when the group reads it again. Every record read from Kafka is a first attempt: retries stay
 * inside the consumer (`subscriber.ts`), so an `x-delivery-attempt` header can only come from a
 * producer, is not trusted, and is dropped.
 */
import type { IHeaders, KafkaMessage, Message as KafkaRecord } from "kafkajs"
import { Headers, type Message, receivedHeaders } from "../../src/capabilities/Message.ts"
import { asBuffer } from "../platform/buffer.ts"

export const MessageIdHeader = "message-id"

const internal = new Set<string>([MessageIdHeader, Headers.attempt])

export const toRecord = (
  message: Message,
  extra: { readonly partition?: number; readonly headers?: Readonly<Record<string, string>> } = {}
): KafkaRecord => ({
  key: message.key,
  value: asBuffer(message.body),
  headers: { ...message.headers, ...extra.headers, [MessageIdHeader]: message.id },
  ...(extra.partition === undefined ? {} : { partition: extra.partition })
})

export interface Incoming {
  readonly message: Message
  readonly topic: string
  readonly partition: number
  readonly attempt: number
}

export const fromRecord = (topic: string, partition: number, record: KafkaMessage): Incoming => {
  const raw: IHeaders = record.headers ?? {}
  const headers = receivedHeaders(raw, internal, headerText)
  const id = Object.hasOwn(raw, MessageIdHeader) ? headerText(raw[MessageIdHeader]) : undefined
  return {
    message: {
      id: id !== undefined && id !== "" ? id : `${topic}/${partition}/${record.offset}`,
      key: record.key === null ? "" : record.key.toString("utf8"),
      headers,
      body: record.value ?? new Uint8Array(0)
    },
    topic,
    partition,
    attempt: 1
  }
}

// Kafka allows a header name more than once; kafkajs then hands an array. The last one wins,
// as it does for most Kafka clients' `lastHeader`.
const headerText = (value: IHeaders[string]): string | undefined => {
  const last = Array.isArray(value) ? value[value.length - 1] : value
  if (last === undefined) return undefined
  return typeof last === "string" ? last : last.toString("utf8")
}
