import { describe, expect, test } from "bun:test"
import * as Result from "effect/Result"
import { parseEvent } from "../../src/counter/events.ts"

const parse = (key: string, body = `{"id":"e1"}`) =>
  parseEvent({ id: "m1", key, headers: {}, body: new TextEncoder().encode(body) }, 1024)

describe("counter wire contract", () => {
  test("a <userId>.event.<type> key with an id body is an event", () => {
    const parsed = parse("user-7.event.updated")
    expect(Result.isSuccess(parsed) && parsed.success).toEqual({ id: "e1", userId: "user-7", type: "updated" })
  })

  test.each([
    ".event.created",
    "user1.event.",
    "user1.event.created.extra",
    "a.b.event.created",
    "user1.events.created",
    "user1event.created",
    "user1.event",
    ""
  ])("routing key %p is malformed", (key) => {
    const parsed = parse(key)
    expect(Result.isFailure(parsed) && parsed.failure.kind).toBe("routing_key")
  })

  test("unknown type, bad JSON, missing id and oversized bodies are told apart", () => {
    const kind = (key: string, body: string) => {
      const parsed = parse(key, body)
      return Result.isFailure(parsed) ? parsed.failure.kind : "ok"
    }
    expect(kind("u.event.archived", `{"id":"x"}`)).toBe("unknown_type")
    expect(kind("u.event.created", "{nope")).toBe("invalid_json")
    expect(kind("u.event.created", `{"id":""}`)).toBe("missing_id")
    expect(kind("u.event.created", `{"id":"${"x".repeat(2000)}"}`)).toBe("oversized")
  })
})
