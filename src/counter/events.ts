/**
 * The event counter's wire contract, kept exactly as the original challenge defined it:
 * routing key `<userId>.event.<type>`, type one of created/updated/deleted, body `{"id": "..."}`.
 */
import * as Result from "effect/Result"
import { bodyTextStrict, type Message } from "../capabilities/Message.ts"

export const eventTypes = ["created", "updated", "deleted"] as const
export type EventType = (typeof eventTypes)[number]

export const bindingPattern = "*.event.*"
export const defaultQueue = "eventcountertest"
export const defaultExchange = "eventcounter"

export interface CounterEvent {
  readonly id: string
  readonly userId: string
  readonly type: EventType
}

export const routingKey = (userId: string, type: string) => `${userId}.event.${type}`

/**
 * Longest id and userId accepted, in UTF-16 code units (so at most 768 bytes of UTF-8): far
 * below what a PostgreSQL index entry holds (about 2.7 kB), so every accepted event can be stored.
 */
export const maxIdLength = 256

export const malformedKinds = [
  "routing_key",
  "unknown_type",
  "oversized",
  "invalid_utf8",
  "invalid_json",
  "missing_id",
  "id_too_long",
  "id_nul",
  "id_lone_surrogate",
  "user_id_too_long",
  "user_id_nul",
  "user_id_lone_surrogate"
] as const

/** Why a message cannot be counted; the text goes into the dead-letter header. */
export interface Malformed {
  readonly kind: (typeof malformedKinds)[number]
  readonly reason: string
}

// Compared, not looked up: this runs for every message.
const isEventType = (s: string): s is EventType => s === "created" || s === "updated" || s === "deleted"

// With the u flag a surrogate pair is one code point: only a lone surrogate matches.
const loneSurrogate = /\p{Surrogate}/u

/**
 * Ids and user ids are stored and compared as text: a NUL or a lone surrogate cannot be stored
 * by PostgreSQL (or would be stored as U+FFFD, colliding with others), and an unbounded one
 * overflows its index. Refused here, with their own reason, rather than by the store.
 */
const checkText = (value: string, field: "id" | "user_id", label: string): Malformed | undefined => {
  if (value.length > maxIdLength) {
    return { kind: `${field}_too_long`, reason: `${label} is ${value.length} characters, over the limit of ${maxIdLength}` }
  }
  if (value.includes("\u0000")) return { kind: `${field}_nul`, reason: `${label} contains a NUL character` }
  if (loneSurrogate.test(value)) {
    return { kind: `${field}_lone_surrogate`, reason: `${label} contains a lone surrogate (not well-formed Unicode)` }
  }
  return undefined
}

export const parseEvent = (message: Message, maxBytes: number): Result.Result<CounterEvent, Malformed> => {
  // <userId>.event.<type>, read without splitting: this runs for every message.
  const key = message.key
  const dot = key.indexOf(".")
  if (dot <= 0 || !key.startsWith(".event.", dot) || key.length === dot + 7 || key.indexOf(".", dot + 7) !== -1) {
    return Result.fail({
      kind: "routing_key",
      reason: `routing key "${key}" does not have the form <userId>.event.<type>`
    })
  }
  const userId = key.slice(0, dot)
  const type = key.slice(dot + 7)
  if (!isEventType(type)) {
    return Result.fail({ kind: "unknown_type", reason: `unknown event type "${type}" (expected ${eventTypes.join(", ")})` })
  }
  const badUser = checkText(userId, "user_id", "the userId of the routing key")
  if (badUser !== undefined) return Result.fail(badUser)
  if (message.body.byteLength > maxBytes) {
    return Result.fail({ kind: "oversized", reason: `body is ${message.body.byteLength} bytes, over the limit of ${maxBytes}` })
  }
  // Strict: a lossy decoder turns every invalid sequence into U+FFFD, so "bad\xff" and
  // "bad\xfe" would become one id and two events would count as one.
  const text = bodyTextStrict(message)
  if (text === undefined) return Result.fail({ kind: "invalid_utf8", reason: "body is not valid UTF-8" })
  let body: unknown
  try {
    body = JSON.parse(text)
  } catch {
    return Result.fail({ kind: "invalid_json", reason: "body is not valid JSON" })
  }
  const id = typeof body === "object" && body !== null ? (body as { id?: unknown }).id : undefined
  if (typeof id !== "string" || id === "") {
    return Result.fail({ kind: "missing_id", reason: `body has no "id" string` })
  }
  const badId = checkText(id, "id", "the id")
  if (badId !== undefined) return Result.fail(badId)
  return Result.succeed({ id, userId, type })
}

/**
 * Counts per type per user: the content of the output files. Each per-user object has no
 * prototype: user ids are arbitrary strings, and assigning `__proto__` on a plain object sets its
 * prototype instead of adding the user, who then vanishes from the files.
 */
export type Counts = Record<EventType, Record<string, number>>

/** An empty per-user object, safe to key by any user id. */
export const byUserRecord = (): Record<string, number> => Object.create(null) as Record<string, number>

export const emptyCounts = (): Counts => ({ created: byUserRecord(), updated: byUserRecord(), deleted: byUserRecord() })

/** Same users with the same counts for every type, whatever the key order. */
export const sameCounts = (a: Counts, b: Counts): boolean =>
  eventTypes.every((type) => {
    const x = Object.entries(a[type])
    return x.length === Object.keys(b[type]).length && x.every(([user, n]) => Object.hasOwn(b[type], user) && b[type][user] === n)
  })

/** One type's counts with users in a stable (numeric-aware) order, for files and tables. */
export const sortedByUser = (byUser: Readonly<Record<string, number>>): Record<string, number> => {
  const sorted = byUserRecord()
  for (const [user, n] of Object.entries(byUser).sort(([a], [b]) => a.localeCompare(b, "en", { numeric: true }))) sorted[user] = n
  return sorted
}

/** Events counted per type, over all users. */
export const totals = (counts: Counts): Record<EventType, number> => ({
  created: sum(counts.created),
  updated: sum(counts.updated),
  deleted: sum(counts.deleted)
})

const sum = (byUser: Readonly<Record<string, number>>) => Object.values(byUser).reduce((a, b) => a + b, 0)
