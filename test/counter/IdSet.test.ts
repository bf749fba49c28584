import { describe, expect, test } from "bun:test"
import { IdSet } from "../../src/counter/IdSet.ts"

// A small deterministic generator, so a failure can be replayed.
const rng = (seed: number) => () => {
  seed = (Math.imul(seed ^ (seed >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) | 0
  return (seed >>> 0) / 2 ** 32
}

const hex = (random: () => number, digits: number) =>
  Array.from({ length: digits }, () => Math.floor(random() * 16).toString(16)).join("")

describe("IdSet", () => {
  test("agrees with a Set<string> over mixed ids, duplicates and growth", () => {
    const random = rng(7)
    const pool: Array<string> = []
    for (let i = 0; i < 3000; i++) {
      const kind = random()
      if (kind < 0.6) pool.push(crypto.randomUUID())
      // Time-ordered UUIDs (v7-like): long shared prefixes must still spread over the table.
      else if (kind < 0.75) pool.push(`0192f3a1-${hex(random, 4)}-7${hex(random, 3)}-8000-000000000${hex(random, 3)}`)
      else if (kind < 0.8) pool.push(crypto.randomUUID().toUpperCase())
      else if (kind < 0.85) pool.push(`order-${i}`)
      else if (kind < 0.9) pool.push("00000000-0000-0000-0000-000000000000")
      else if (kind < 0.95) pool.push(crypto.randomUUID().replaceAll("-", ""))
      else pool.push(`${crypto.randomUUID().slice(0, 35)}g`)
    }
    const ids = new IdSet()
    const reference = new Set<string>()
    for (let i = 0; i < 20_000; i++) {
      const id = pool[Math.floor(random() * pool.length)]!
      expect(ids.has(id)).toBe(reference.has(id))
      const added = !reference.has(id)
      reference.add(id)
      expect(ids.add(id)).toBe(added)
    }
    expect(ids.size).toBe(reference.size)
    for (const id of pool) expect(ids.has(id)).toBe(reference.has(id))
    expect(ids.has(crypto.randomUUID())).toBe(false)
  })

  test("a UUID and the same UUID in capitals are different ids, as strings are", () => {
    const ids = new IdSet()
    const id = "9b2f1c3e-4d5a-4b6c-8d7e-0f1a2b3c4d5e"
    expect(ids.add(id)).toBe(true)
    expect(ids.add(id.toUpperCase())).toBe(true)
    expect(ids.add(id)).toBe(false)
    expect(ids.size).toBe(2)
  })

  test("keeps every id across many growths of the table", () => {
    const ids = new IdSet()
    const all = Array.from({ length: 50_000 }, () => crypto.randomUUID())
    for (const id of all) expect(ids.add(id)).toBe(true)
    for (const id of all) expect(ids.add(id)).toBe(false)
    expect(ids.size).toBe(50_000)
  })
})
