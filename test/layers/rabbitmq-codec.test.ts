/**
 * Reading AMQP messages, without a broker: which headers the codec trusts.
 */
import { describe, expect, test } from "bun:test"
import type * as amqp from "amqplib"
import { fromAmqp, OriginalKey, OriginalTopic } from "../../layers/rabbitmq/codec.ts"

const message = (exchange: string, headers: Record<string, unknown>): amqp.ConsumeMessage => ({
  content: Buffer.from("{}"),
  fields: { deliveryTag: 1, redelivered: false, exchange, routingKey: "u1.event.created", consumerTag: "c" },
  properties: { headers, messageId: "m-1" } as unknown as amqp.MessageProperties
})

describe("rabbitmq codec", () => {
  test("a retry copy (through the default exchange) restores its origin and attempt", () => {
    const incoming = fromAmqp(message("", { [OriginalTopic]: "events", [OriginalKey]: "u2.event.deleted", "x-delivery-attempt": "3" }))
    expect([incoming.topic, incoming.message.key, incoming.attempt]).toEqual(["events", "u2.event.deleted", 3])
  })

  test("a message from a topic exchange keeps its own origin and is a first attempt, whatever its headers say", () => {
    const incoming = fromAmqp(message("events", { [OriginalTopic]: "elsewhere", [OriginalKey]: "victim.event.deleted", "x-delivery-attempt": "7" }))
    expect([incoming.topic, incoming.message.key, incoming.attempt]).toEqual(["events", "u1.event.created", 1])
  })

  test("headers inherited through a `__proto__` table are not taken for the toolkit's own", () => {
    // What amqplib makes of a table header named __proto__: an object whose prototype holds it.
    const headers = Object.create({ [OriginalKey]: "victim.event.deleted", "x-delivery-attempt": "9" }) as Record<string, unknown>
    const incoming = fromAmqp(message("", headers))
    expect([incoming.message.key, incoming.attempt]).toEqual(["u1.event.created", 1])
  })
})
