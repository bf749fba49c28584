import { describe, expect, test } from "bun:test"
import { bodyText, bodyTextStrict } from "../../src/capabilities/Message.ts"

const bytes = (...values: ReadonlyArray<number>) => ({ body: new Uint8Array(values) })

describe("message bodies as text", () => {
  test("strict decoding refuses invalid UTF-8 where lossy decoding makes two bodies one", () => {
    const ff = bytes(0x62, 0x61, 0x64, 0xff)
    const fe = bytes(0x62, 0x61, 0x64, 0xfe)
    expect(bodyText(ff)).toBe(bodyText(fe))
    expect(bodyTextStrict(ff)).toBeUndefined()
    expect(bodyTextStrict(fe)).toBeUndefined()
    // A sequence cut short is invalid too.
    expect(bodyTextStrict(bytes(0xc3))).toBeUndefined()
  })

  test("valid UTF-8 reads the same both ways", () => {
    const text = "é😀 {\"id\":1}"
    const body = { body: new TextEncoder().encode(text) }
    expect(bodyTextStrict(body)).toBe(text)
    expect(bodyText(body)).toBe(text)
  })
})
