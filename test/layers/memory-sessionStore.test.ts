/**
 * The session store on its own (the state of the memory SessionQueue and of the Service Bus test
 * server): the rules the contract cannot reach through a backend, with time passed in by hand.
 */
import { describe, expect, test } from "bun:test"
import type { Message } from "../../src/capabilities/Message.ts"
import { type Grant, lockLost, SessionStore } from "../../layers/memory/sessionStore.ts"

const message = (key: string, id: string): Message => ({ id, key, headers: {}, body: new TextEncoder().encode(id) })
const store = () => {
  let token = 0
  return new SessionStore({ lockDurationMs: 1_000, maxDeliveryCount: 2, newToken: () => `t${++token}` })
}
const granted = (grant: Grant | "locked" | undefined): Grant => {
  if (grant === undefined || grant === "locked") throw new Error(`no grant: ${String(grant)}`)
  return grant
}

describe("session store", () => {
  test("a holder whose lock ended gets lock-lost even after another receiver locked the session again", () => {
    const s = store()
    s.send("q", [message("a", "1")], 0)
    const first = granted(s.accept("q", "a", 0))
    const [m] = s.receive("q", "a", first.lockToken, 1, 0) as ReadonlyArray<{ lockToken: string | undefined }>
    const second = granted(s.acceptNext("q", 1_000))
    expect(second.sessionId).toBe("a")
    expect(s.settle("q", "a", first.lockToken, m!.lockToken!, { _tag: "complete" }, 1_000)).toBe(lockLost)
    expect(s.renew("q", "a", first.lockToken, 1_000)).toBe(lockLost)
    expect(s.depth("q", 1_000)).toEqual({ active: 1, deadLettered: 0 })
  })

  test("accept-next gives sessions turns instead of always the first one with messages", () => {
    const s = store()
    s.send("q", [message("a", "a1"), message("b", "b1"), message("a", "a2")], 0)
    const a = granted(s.acceptNext("q", 0))
    s.release("q", a.sessionId, a.lockToken, 0)
    expect(granted(s.acceptNext("q", 0)).sessionId).toBe(a.sessionId === "a" ? "b" : "a")
  })

  test("a session without messages is forgotten unless it has state; its state outlives its messages", () => {
    const s = store()
    const a = granted(s.accept("q", "a", 0))
    s.setState("q", "a", a.lockToken, new Uint8Array([7]), 0)
    s.release("q", "a", a.lockToken, 0)
    const again = granted(s.accept("q", "a", 0))
    expect([...(s.getState("q", "a", again.lockToken, 0) as Uint8Array)]).toEqual([7])
    expect(s.acceptNext("q", 0)).toBeUndefined()
  })

  test("expire ends a lock at once and says whether there was one", () => {
    const s = store()
    s.send("q", [message("a", "1")], 0)
    expect(s.expire("q", "a")).toBe(false)
    const a = granted(s.accept("q", "a", 0))
    s.receive("q", "a", a.lockToken, 1, 0)
    expect(s.expire("q", "a")).toBe(true)
    expect(s.lockedUntil("q", "a", a.lockToken, 0)).toBe(lockLost)
    expect(s.peek("q", "a", 0, 10, 0).map((m) => [m.message.id, m.attempts, m.lockToken])).toEqual([["1", 1, undefined]])
  })

  test("peek and the dead-letter queue read from a sequence number on, without handing anything out", () => {
    const s = store()
    const [one, two, three] = s.send("q", [message("a", "1"), message("a", "2"), message("a", "3")], 0)
    expect(s.peek("q", "a", two!, 10, 0).map((m) => m.message.id)).toEqual(["2", "3"])
    const a = granted(s.accept("q", "a", 0))
    const out = s.receive("q", "a", a.lockToken, 3, 0) as ReadonlyArray<{ lockToken: string | undefined }>
    s.settle("q", "a", a.lockToken, out[0]!.lockToken!, { _tag: "deadLetter", reason: "r1", description: undefined }, 0)
    s.settle("q", "a", a.lockToken, out[2]!.lockToken!, { _tag: "deadLetter", reason: "r3", description: "d" }, 0)
    expect(s.deadLettered("q", one!, 10, 0).map((d) => d.reason)).toEqual(["r1", "r3"])
    expect(s.deadLettered("q", three!, 10, 0).map((d) => [d.reason, d.description])).toEqual([["r3", "d"]])
  })

  test("the earliest lock end of a queue is what a waiter for a free session sleeps until", () => {
    const s = store()
    s.send("q", [message("a", "1"), message("b", "1")], 0)
    expect(s.nextExpiry("q")).toBeUndefined()
    s.accept("q", "a", 100)
    s.accept("q", "b", 50)
    expect(s.nextExpiry("q")).toBe(1_050)
  })
})
