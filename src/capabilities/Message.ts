/**
 * The message every broker backend carries.
 *
 * `key` is what the broker routes or partitions on: the AMQP routing key, the Kafka record key,
 * the session id. `headers` carry metadata that must survive the trip (trace context, event type,
 * dead-letter reason). `body` is bytes; helpers below handle the common text and JSON cases.
 */
export interface Message {
  readonly id: string
  readonly key: string
  readonly headers: Readonly<Record<string, string>>
  readonly body: Uint8Array
}

/** What a caller hands to `Publisher.publish`; a missing id is generated. */
export interface OutgoingMessage {
  readonly id?: string
  readonly key: string
  readonly headers?: Readonly<Record<string, string>>
  readonly body: Uint8Array | string
}

/** Header names shared by every backend. */
export const Headers = {
  traceparent: "traceparent",
  tracestate: "tracestate",
  /** Why a message was dead-lettered. */
  deadLetterReason: "x-dead-letter-reason",
  /** The topic a dead-lettered message was first consumed from. */
  deadLetterSource: "x-dead-letter-source",
  /** How many times a message was handed to a handler before this delivery (backends that count it themselves). */
  attempt: "x-delivery-attempt",
  /**
   * Request/reply: where the answer goes (a group's name, published to `directTopic` with it as
   * the key) and what ties the answer to its request. RabbitMQ carries them as the AMQP `reply-to`
   * and `correlation-id` properties, so clients written against AMQP directly interoperate.
   */
  replyTo: "reply-to",
  correlationId: "correlation-id"
} as const

/**
 * The headers a backend hands its handlers: every received header but its own (`internal`), as
 * text. `text` reads one value the driver's way; undefined drops the header.
 */
export const receivedHeaders = <V>(
  raw: Readonly<Record<string, V>>,
  internal: ReadonlySet<string>,
  text: (value: V) => string | undefined
): Record<string, string> => {
  // No prototype, and own names only: header names come from producers, and a driver that
  // decodes a table entry named `__proto__` into a plain object hands over inherited entries.
  const headers: Record<string, string> = Object.create(null)
  for (const name of Object.keys(raw)) {
    if (internal.has(name)) continue
    const value = text(raw[name] as V)
    if (value !== undefined) headers[name] = value
  }
  return headers
}

/** The attempt an `x-delivery-attempt` header value states: a positive integer, else 1. */
export const attemptFrom = (header: string | undefined): number => {
  const counted = Number(header)
  return Number.isInteger(counted) && counted >= 1 ? counted : 1
}

const encoder = new TextEncoder()
const decoder = new TextDecoder()

export const encodeBody = (body: Uint8Array | string): Uint8Array =>
  typeof body === "string" ? encoder.encode(body) : body

/**
 * The body as text, invalid UTF-8 replaced by U+FFFD: for logs and display. To read input, use
 * `bodyTextStrict`: replacing makes different bodies equal ("bad\xff" and "bad\xfe").
 */
export const bodyText = (message: Pick<Message, "body">): string => decoder.decode(message.body)

const strictDecoder = new TextDecoder("utf-8", { fatal: true })

/** The body as text, or undefined when it is not valid UTF-8 (malformed input, to dead-letter). */
export const bodyTextStrict = (message: Pick<Message, "body">): string | undefined => {
  try {
    return strictDecoder.decode(message.body)
  } catch {
    return undefined
  }
}

export const normalize = (message: OutgoingMessage): Message => ({
  id: message.id ?? crypto.randomUUID(),
  key: message.key,
  headers: message.headers ?? {},
  body: encodeBody(message.body)
})
