import { expect, test } from "bun:test"
import { DueQueue } from "../../src/scheduler/dueQueue.ts"

test("takeDue hands back every entry due by then, earliest first, and keeps the rest", () => {
  const queue = new DueQueue<number>()
  // A fixed pseudo-random order with repeated times.
  const times = Array.from({ length: 500 }, (_, i) => (i * 7919) % 251)
  times.forEach((at, i) => queue.push(at, i))
  const first = queue.takeDue(100)
  expect(first.map((d) => d.at)).toEqual(times.filter((t) => t <= 100).sort((a, b) => a - b))
  expect(queue.size).toBe(times.filter((t) => t > 100).length)
  expect(queue.peek()).toBe(Math.min(...times.filter((t) => t > 100)))
  queue.push(50, -1)
  const rest = queue.takeDue(Infinity)
  expect(rest.map((d) => d.at)).toEqual([50, ...times.filter((t) => t > 100).sort((a, b) => a - b)])
  expect(queue.size).toBe(0)
  expect(queue.peek()).toBeUndefined()
  expect(new Set([...first, ...rest].map((d) => d.value)).size).toBe(501)
})

test("an entry taken and rescheduled comes back at its new time, the same entry", () => {
  const queue = new DueQueue<string>()
  const a = queue.push(10, "a")
  queue.push(20, "b")
  const [taken] = queue.takeDue(10)
  expect(taken).toBe(a)
  queue.reschedule(taken!, 30)
  expect(queue.peek()).toBe(20)
  expect(queue.takeDue(25).map((d) => d.value)).toEqual(["b"])
  const again = queue.takeDue(30)
  expect(again).toEqual([{ at: 30, value: "a" }])
  expect(again[0]).toBe(a)
  expect(queue.size).toBe(0)
})
