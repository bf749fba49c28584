/**
 * The session messages of SPEC §1: body `{"sessionId", "seq", "payload"}`, `seq` counting from 1
 * per session; and the example handler's session state, the last processed `seq`.
 */
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import { bodyTextStrict, type Message, type OutgoingMessage } from "../capabilities/Message.ts"

export const SessionBody = Schema.Struct({
  sessionId: Schema.String,
  seq: Schema.Int.check(Schema.isGreaterThan(0)),
  payload: Schema.Unknown
})
export type SessionBody = typeof SessionBody.Type

// Checked by hand rather than by decoding `SessionBody`: the worker parses every message, and
// the schema decoder cost several times the handling of a message in the bench.
const decodeBody = (text: string): SessionBody | undefined => {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    return undefined
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) return undefined
  const { payload, seq, sessionId } = value as Record<string, unknown>
  if (typeof sessionId !== "string" || typeof seq !== "number" || !Number.isSafeInteger(seq) || seq <= 0) return undefined
  if (!("payload" in value)) return undefined
  return { sessionId, seq, payload }
}

/** The body, or why it is malformed (for the dead-letter description). */
export const parseBody = (message: Message): SessionBody | { readonly malformed: string } => {
  const text = bodyTextStrict(message)
  if (text === undefined) return { malformed: "the body is not valid UTF-8" }
  const body = decodeBody(text)
  if (body === undefined) return { malformed: `the body is not {"sessionId": string, "seq": integer > 0, "payload"}: ${text.slice(0, 200)}` }
  if (body.sessionId !== message.key) return { malformed: `the body's sessionId "${body.sessionId}" is not the message's session "${message.key}"` }
  return body
}

export const sessionIdOf = (index: number) => `session-${index}`

/** Message `seq` of a session, as the sender sends it. */
export const sessionMessage = (sessionId: string, seq: number): OutgoingMessage => ({
  id: `${sessionId}-${seq}`,
  key: sessionId,
  body: JSON.stringify({ sessionId, seq, payload: `message ${seq} of ${sessionId}` })
})

const encoder = new TextEncoder()
const decoder = new TextDecoder()

/** The last processed seq kept as session state (`{"lastSeq": n}`), 0 when none or unreadable. */
export const lastSeqOf = (state: Option.Option<Uint8Array>): number => {
  if (Option.isNone(state)) return 0
  try {
    const value = JSON.parse(decoder.decode(state.value)) as { lastSeq?: unknown }
    return typeof value.lastSeq === "number" && Number.isSafeInteger(value.lastSeq) ? value.lastSeq : 0
  } catch {
    return 0
  }
}

const lastSeqPrefix = encoder.encode(`{"lastSeq":`)

/**
 * `{"lastSeq": n}` as bytes. The handler answers it for every message it processes, so a safe
 * integer's digits are written by hand rather than through `JSON.stringify` and `TextEncoder`.
 */
export const encodeLastSeq = (lastSeq: number): Uint8Array => {
  if (!Number.isSafeInteger(lastSeq)) return encoder.encode(JSON.stringify({ lastSeq }))
  const digits = String(lastSeq)
  const out = new Uint8Array(lastSeqPrefix.length + digits.length + 1)
  out.set(lastSeqPrefix)
  for (let i = 0; i < digits.length; i++) out[lastSeqPrefix.length + i] = digits.charCodeAt(i)
  out[out.length - 1] = 0x7d // }
  return out
}
