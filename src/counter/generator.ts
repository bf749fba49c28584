/**
 * Test traffic for the counter: events over a few users and the three types, with duplicates
 * (the same message sent twice) and, on request, malformed messages of every kind. Deterministic
 * for a seed, and it knows the counts a correct counter must end with.
 */
import type { OutgoingMessage } from "../capabilities/Message.ts"
import { type Counts, emptyCounts, eventTypes, routingKey } from "./events.ts"

export interface GeneratorOptions {
  /** Well-formed messages to send, duplicates included [100]. */
  readonly count: number
  readonly users: number
  /** Share of well-formed messages that repeat an earlier message's id [0.1]. */
  readonly duplicateRatio: number
  /** Malformed messages added on top, cycling through every kind [0]. */
  readonly malformed: number
  readonly seed: number
  /** Size of the oversized body among malformed messages. */
  readonly oversizedBytes: number
}

export const defaultGeneratorOptions: GeneratorOptions = {
  count: 100,
  users: 5,
  duplicateRatio: 0.1,
  malformed: 0,
  seed: 42,
  oversizedBytes: 70_000
}

export interface Generated {
  readonly messages: ReadonlyArray<OutgoingMessage>
  readonly expected: Counts
  readonly unique: number
  readonly duplicates: number
  readonly malformed: number
}

/** mulberry32: small, fast, good enough for test data. */
const random = (seed: number) => () => {
  seed |= 0
  seed = (seed + 0x6d2b79f5) | 0
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}

const hex = (value: number, digits: number) => value.toString(16).padStart(digits, "0")

/**
 * A version-4-shaped UUID, as most producers send, made from the seeded generator so runs repeat;
 * the last group is the message's index, so ids within a run never collide.
 */
const uuid = (next: () => number, index: number): string => {
  const word = () => Math.floor(next() * 4294967296)
  const a = word(), b = word()
  return `${hex(a, 8)}-${hex(b >>> 16, 4)}-4${hex(b & 0xfff, 3)}-${hex(8 + Math.floor(next() * 4), 1)}${hex(word() & 0xfff, 3)}-${hex(index, 12)}`
}

export const generate = (options: Partial<GeneratorOptions> = {}): Generated => {
  const o = { ...defaultGeneratorOptions, ...options }
  const next = random(o.seed)
  const pick = <A>(xs: ReadonlyArray<A>) => xs[Math.floor(next() * xs.length)]!
  const users = Array.from({ length: o.users }, (_, i) => `user${i + 1}`)
  const messages: Array<OutgoingMessage> = []
  const sent: Array<OutgoingMessage> = []
  const expected = emptyCounts()
  let duplicates = 0
  for (let i = 0; i < o.count; i++) {
    if (sent.length > 0 && next() < o.duplicateRatio) {
      messages.push(pick(sent))
      duplicates++
      continue
    }
    const user = pick(users)
    const type = pick(eventTypes)
    const id = uuid(next, i)
    const message = { id, key: routingKey(user, type), body: JSON.stringify({ id }) }
    messages.push(message)
    sent.push(message)
    expected[type][user] = (expected[type][user] ?? 0) + 1
  }
  const bad = malformedMessages(o.malformed, o.oversizedBytes, o.seed)
  // Spread the malformed ones through the run so they arrive among good messages.
  for (const message of bad) messages.splice(Math.floor(next() * (messages.length + 1)), 0, message)
  return { messages, expected, unique: sent.length, duplicates, malformed: bad.length }
}

const malformedMessages = (n: number, oversizedBytes: number, seed: number): Array<OutgoingMessage> =>
  Array.from({ length: n }, (_, i) => {
    const id = `bad-${seed}-${i}`
    switch (i % 5) {
      case 0:
        return { id, key: ".event.created", body: JSON.stringify({ id }) }
      case 1:
        return { id, key: routingKey("user1", "created"), body: "{not json" }
      case 2:
        return { id, key: routingKey("user2", "updated"), body: JSON.stringify({ notId: id }) }
      case 3:
        return { id, key: routingKey("user3", "archived"), body: JSON.stringify({ id }) }
      default:
        return { id, key: routingKey("user4", "deleted"), body: JSON.stringify({ id, pad: "x".repeat(oversizedBytes) }) }
    }
  })
