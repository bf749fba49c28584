import { describe, expect, test } from "bun:test"
import * as Result from "effect/Result"
import { maxIdLength, parseEvent } from "../../src/counter/events.ts"

const parse = (key: string, body: string | Uint8Array = `{"id":"e1"}`, maxBytes = 1024) =>
  parseEvent({ id: "m1", key, headers: {}, body: typeof body === "string" ? new TextEncoder().encode(body) : body }, maxBytes)

const failure = (parsed: ReturnType<typeof parse>) => Result.isFailure(parsed) ? parsed.failure : undefined

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

  test("invalid UTF-8 in the body is malformed, so two ids that differ only there never become one", () => {
    // {"id":"bad\xff"} and {"id":"bad\xfe"}: a lossy decode read both as "bad\ufffd".
    const bytes = (last: number) => new Uint8Array([...new TextEncoder().encode(`{"id":"bad`), last, ...new TextEncoder().encode(`"}`)])
    for (const last of [0xff, 0xfe]) {
      expect(failure(parse("u.event.created", bytes(last)))).toEqual({ kind: "invalid_utf8", reason: "body is not valid UTF-8" })
    }
    // A truncated multi-byte sequence too, and well-formed multi-byte text still parses.
    expect(failure(parse("u.event.created", new Uint8Array([0x7b, 0x22, 0xe2, 0x82])))?.kind).toBe("invalid_utf8")
    const accented = parse("u.event.created", `{"id":"é😀"}`)
    expect(Result.isSuccess(accented) && accented.success.id).toBe("é😀")
  })

  test("an id that cannot be stored as text is malformed, each with its own reason", () => {
    expect(failure(parse("u.event.created", `{"id":"nul\\u0000id"}`))).toEqual({ kind: "id_nul", reason: "the id contains a NUL character" })
    expect(failure(parse("u.event.created", `{"id":"\\ud800x"}`))).toEqual({
      kind: "id_lone_surrogate",
      reason: "the id contains a lone surrogate (not well-formed Unicode)"
    })
    // A low surrogate alone, and a high one at the very end, are lone too.
    expect(failure(parse("u.event.created", `{"id":"x\\udc00"}`))?.kind).toBe("id_lone_surrogate")
    expect(failure(parse("u.event.created", `{"id":"x\\ud83d"}`))?.kind).toBe("id_lone_surrogate")
    // Well under a 64 KiB body limit, and far over what an index entry holds.
    expect(failure(parse("u.event.created", `{"id":"${"x".repeat(40_000)}"}`, 64 * 1024))).toEqual({
      kind: "id_too_long",
      reason: `the id is 40000 characters, over the limit of ${maxIdLength}`
    })
  })

  test("an id at the length limit, or with a surrogate pair, is an event", () => {
    const longest = parse("u.event.created", `{"id":"${"x".repeat(maxIdLength)}"}`)
    expect(Result.isSuccess(longest) && longest.success.id.length).toBe(maxIdLength)
    // The escaped pair of 😀 is one well-formed code point.
    const pair = parse("u.event.created", `{"id":"\\ud83d\\ude00"}`)
    expect(Result.isSuccess(pair) && pair.success.id).toBe("😀")
    expect(failure(parse("u.event.created", `{"id":"${"x".repeat(maxIdLength + 1)}"}`))?.kind).toBe("id_too_long")
  })

  test("a userId that cannot be stored as text is malformed, each with its own reason", () => {
    expect(failure(parse("nul\u0000user.event.created"))).toEqual({
      kind: "user_id_nul",
      reason: "the userId of the routing key contains a NUL character"
    })
    expect(failure(parse("\ud800x.event.created"))?.kind).toBe("user_id_lone_surrogate")
    expect(failure(parse(`${"u".repeat(maxIdLength + 1)}.event.created`))?.kind).toBe("user_id_too_long")
    const longest = parse(`${"u".repeat(maxIdLength)}.event.created`)
    expect(Result.isSuccess(longest) && longest.success.userId.length).toBe(maxIdLength)
  })
})
