import { expect, test } from "bun:test"
import * as Effect from "effect/Effect"
import * as MemorySessionQueue from "../../layers/memory/sessionQueue.ts"
import { sessionDemo } from "../../src/sessions/demo.ts"

test("session demo on the memory queue: every session's messages handled once each, in order, and the queue left empty", async () => {
  const result = await Effect.runPromise(
    sessionDemo({ sessions: 20, messagesPerSession: 15, slots: 8 }).pipe(Effect.provide(MemorySessionQueue.layer()))
  )
  expect(result.handled).toBe(300)
  expect(result.allInOrder).toBe(true)
  expect(result.sessions.map((s) => s.handled)).toEqual(Array(20).fill(15))
  expect(result.depth).toEqual({ active: 0, deadLettered: 0 })
}, 30_000)
