import { describe, expect, test } from "bun:test"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import { isolatePoison } from "../../src/resilience/isolate.ts"

class WriteError extends Data.TaggedError("WriteError")<{ readonly permanent: boolean; readonly what: string }> {}

/** A batch store that refuses, atomically, any batch holding one of `poison`; records the calls. */
const store = (poison: ReadonlySet<number>, transient: { left: number } = { left: 0 }) => {
  const stored: Array<number> = []
  const calls: Array<ReadonlyArray<number>> = []
  const write = (items: ReadonlyArray<number>) =>
    Effect.suspend(() => {
      calls.push(items)
      if (transient.left > 0) {
        transient.left--
        return Effect.fail(new WriteError({ permanent: false, what: "down" }))
      }
      const bad = items.find((item) => poison.has(item))
      if (bad !== undefined) return Effect.fail(new WriteError({ permanent: true, what: `cannot store ${bad}` }))
      stored.push(...items)
      return Effect.succeed(items.length)
    })
  return { stored, calls, write }
}
const isPermanent = (error: WriteError) => error.permanent
const range = (n: number) => Array.from({ length: n }, (_, i) => i)

describe("isolatePoison", () => {
  test("without poison: one write, nothing refused", async () => {
    const s = store(new Set())
    const result = await Effect.runPromise(isolatePoison(range(100), s.write, { isPermanent }))
    expect(result).toEqual({ written: [100], poison: [] })
    expect(s.calls.length).toBe(1)
  })

  test("one poison item among 1000: it alone is refused with its error, every other item is written once", async () => {
    const s = store(new Set([617]))
    const result = await Effect.runPromise(isolatePoison(range(1000), s.write, { isPermanent }))
    expect(result.poison.map((p) => [p.item, p.error.what])).toEqual([[617, "cannot store 617"]])
    expect([...s.stored].sort((a, b) => a - b)).toEqual(range(1000).filter((i) => i !== 617))
    expect(result.written.reduce((a, b) => a + b, 0)).toBe(999)
    // Halving: a few writes per level, not one per item.
    expect(s.calls.length).toBeLessThanOrEqual(2 * Math.ceil(Math.log2(1000)) + 1)
  })

  test("several poison items, first and last included, are each isolated in input order", async () => {
    const s = store(new Set([0, 5, 6, 63]))
    const result = await Effect.runPromise(isolatePoison(range(64), s.write, { isPermanent }))
    expect(result.poison.map((p) => p.item)).toEqual([0, 5, 6, 63])
    expect(s.stored.length).toBe(60)
  })

  test("a failure that is not permanent ends the call: the batch is not split, nothing is refused", async () => {
    const s = store(new Set([3]), { left: 1 })
    const error = await Effect.runPromise(Effect.flip(isolatePoison(range(10), s.write, { isPermanent })))
    expect(error.what).toBe("down")
    expect(s.calls.length).toBe(1)
    expect(s.stored).toEqual([])
  })
})
