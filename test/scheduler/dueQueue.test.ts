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
