/**
 * Reading AMQP messages, without a broker: which headers the codec trusts.
 */
import { describe, expect, test } from "bun:test"
import type * as amqp from "amqplib"
import { fromAmqp, OriginalKey, OriginalTopic } from "../../layers/rabbitmq/codec.ts"
import { retryExchange } from "../../layers/rabbitmq/topology.ts"

const message = (exchange: string, headers: Record<string, unknown>): amqp.ConsumeMessage => ({
  content: Buffer.from("{}"),
  fields: { deliveryTag: 1, redelivered: false, exchange, routingKey: "u1.event.created", consumerTag: "c" },
  properties: { headers, messageId: "m-1" } as unknown as amqp.MessageProperties
})

describe("rabbitmq codec", () => {
  test("a retry copy (through the retry exchange) restores its origin and attempt", () => {
    const incoming = fromAmqp(message(retryExchange, { [OriginalTopic]: "events", [OriginalKey]: "u2.event.deleted", "x-delivery-attempt": "3" }))
    expect([incoming.topic, incoming.message.key, incoming.attempt]).toEqual(["events", "u2.event.deleted", 3])
  })

  test("a retry copy of a message sent straight to a queue restores the default exchange as its origin", () => {
    const incoming = fromAmqp(message(retryExchange, { [OriginalTopic]: "", [OriginalKey]: "worker-1", "x-delivery-attempt": "2" }))
    expect([incoming.topic, incoming.message.key, incoming.attempt]).toEqual(["", "worker-1", 2])
  })

  test("a message sent straight to a queue through the default exchange is a first attempt of its own origin, whatever its headers say", () => {
    const forged = { [OriginalTopic]: "elsewhere", [OriginalKey]: "victim.event.deleted", "x-delivery-attempt": "99", "x-a": "1" }
    const incoming = fromAmqp(message("", forged))
    expect([incoming.topic, incoming.message.key, incoming.attempt]).toEqual(["", "u1.event.created", 1])
    // Dropped, not handed on: a handler that republishes the headers cannot carry them further.
    expect({ ...incoming.message.headers }).toEqual({ "x-a": "1" })
  })

  test("a redelivered message sent straight to a queue is attempt 2, not one more than its forged header", () => {
    const msg = message("", { "x-delivery-attempt": "99" })
    const incoming = fromAmqp({ ...msg, fields: { ...msg.fields, redelivered: true } })
    expect(incoming.attempt).toBe(2)
  })

  test("a message from a topic exchange keeps its own origin and is a first attempt, whatever its headers say", () => {
    const incoming = fromAmqp(message("events", { [OriginalTopic]: "elsewhere", [OriginalKey]: "victim.event.deleted", "x-delivery-attempt": "7" }))
    expect([incoming.topic, incoming.message.key, incoming.attempt]).toEqual(["events", "u1.event.created", 1])
  })

  test("headers inherited through a `__proto__` table are not taken for the toolkit's own", () => {
    // What amqplib makes of a table header named __proto__: an object whose prototype holds it.
    const headers = Object.create({ [OriginalKey]: "victim.event.deleted", "x-delivery-attempt": "9" }) as Record<string, unknown>
    const incoming = fromAmqp(message(retryExchange, headers))
    expect([incoming.message.key, incoming.attempt]).toEqual(["u1.event.created", 1])
  })
})
