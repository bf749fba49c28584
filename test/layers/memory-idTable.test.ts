/**
 * IdTable (the memory scheduler store's index of running runs) against a Map doing the same
 * operations: ids mostly consecutive, as the store issues them, with some that stay long (runs
 * owed a retry) so deletions shift entries across the array's end and the table grows.
 */
import { expect, test } from "bun:test"
import { IdTable } from "../../layers/memory/idTable.ts"

// A fixed pseudo-random sequence, so a failure replays.
const random = (seed: number) => () => {
  seed = (seed * 1103515245 + 12345) % 2147483648
  return seed / 2147483648
}

test("adds, finds, replaces and deletes as a Map does, across wrap-around and growth", () => {
  const next = random(42)
  const table = new IdTable<{ readonly id: number; readonly v: number }>()
  const model = new Map<number, { readonly id: number; readonly v: number }>()
  let id = 0
  for (let step = 0; step < 20_000; step++) {
    const r = next()
    if (r < 0.5 || model.size === 0) {
      // Mostly the next id; sometimes one far ahead, or an id already in (a replacement).
      const key = r < 0.45 ? ++id : r < 0.48 ? id + 1000 + Math.floor(next() * 50) : [...model.keys()][0]!
      const entry = { id: key, v: step }
      table.set(entry)
      model.set(key, entry)
    } else {
      // Mostly the oldest few; sometimes any, sometimes one that is absent.
      const keys = [...model.keys()]
      const key = r < 0.9 ? keys[Math.floor(next() * Math.min(3, keys.length))]! : r < 0.97 ? keys[Math.floor(next() * keys.length)]! : -7
      expect(table.delete(key)).toBe(model.delete(key))
    }
    expect(table.size).toBe(model.size)
    if (step % 97 === 0) {
      for (const [key, entry] of model) expect(table.get(key)).toBe(entry)
      expect(table.get(id + 5000)).toBeUndefined()
      expect(table.values().map((e) => e.id).sort((a, b) => a - b)).toEqual([...model.keys()].sort((a, b) => a - b))
    }
  }
  // It grew past its first 16 slots and emptied again.
  for (const key of [...model.keys()]) expect(table.delete(key)).toBe(true)
  expect(table.size).toBe(0)
  expect(table.values()).toEqual([])
})

test("a deletion keeps every entry of a colliding run reachable", () => {
  const table = new IdTable<{ readonly id: number }>()
  // 16 slots: ids 1, 17 and 33 share home slot 1, and 2 is displaced by them.
  for (const id of [1, 17, 33, 2]) table.set({ id })
  expect(table.delete(17)).toBe(true)
  for (const id of [1, 33, 2]) expect(table.get(id)?.id).toBe(id)
  expect(table.get(17)).toBeUndefined()
  expect(table.delete(1)).toBe(true)
  expect(table.get(33)?.id).toBe(33)
  expect(table.get(2)?.id).toBe(2)
})
