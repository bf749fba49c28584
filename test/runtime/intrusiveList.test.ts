import { expect, test } from "bun:test"
import { IntrusiveList, type Links } from "../../src/runtime/intrusiveList.ts"

interface Entry extends Links<Entry> {
  readonly name: string
}
const entry = (name: string): Entry => ({ name, prev: undefined, next: undefined, linked: false })
const names = (list: IntrusiveList<Entry>) => list.toArray().map((e) => e.name)

test("keeps insertion order; removing from the head, middle and tail relinks the rest", () => {
  const list = new IntrusiveList<Entry>()
  const [a, b, c, d] = ["a", "b", "c", "d"].map(entry) as [Entry, Entry, Entry, Entry]
  for (const e of [a, b, c, d]) list.push(e)
  expect(names(list)).toEqual(["a", "b", "c", "d"])
  expect(list.remove(b)).toBe(true)
  expect(names(list)).toEqual(["a", "c", "d"])
  expect(list.remove(a)).toBe(true)
  expect(list.first).toBe(c)
  expect(list.remove(d)).toBe(true)
  expect(names(list)).toEqual(["c"])
  list.push(a)
  expect(names(list)).toEqual(["c", "a"])
  expect(list.size).toBe(2)
  expect(list.find((e) => e.name === "a")).toBe(a)
  expect(list.find((e) => e.name === "b")).toBeUndefined()
})

test("removing twice, or an entry never added, changes nothing; a removed entry holds no links", () => {
  const list = new IntrusiveList<Entry>()
  const [a, b, c] = ["a", "b", "c"].map(entry) as [Entry, Entry, Entry]
  list.push(a)
  list.push(b)
  list.push(b)
  expect(list.size).toBe(2)
  expect(list.remove(c)).toBe(false)
  expect(list.remove(a)).toBe(true)
  expect(list.remove(a)).toBe(false)
  expect([a.prev, a.next, a.linked]).toEqual([undefined, undefined, false])
  expect(names(list)).toEqual(["b"])
  expect(list.remove(b)).toBe(true)
  expect(list.size).toBe(0)
  expect(list.first).toBeUndefined()
  expect(list.toArray()).toEqual([])
})

test("a copy from toArray can be gone through while its entries are removed", () => {
  const list = new IntrusiveList<Entry>()
  for (const name of ["a", "b", "c"]) list.push(entry(name))
  for (const e of list.toArray()) list.remove(e)
  expect(list.size).toBe(0)
})
