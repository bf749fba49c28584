import { describe, expect, test } from "bun:test"
import * as Effect from "effect/Effect"
import { HttpServerError, serve } from "../../layers/platform/httpServer.ts"

const hello = () => new Response("hello")

describe("platform/httpServer", () => {
  test("port 0 binds an ephemeral port, serves the handler, and stops when the scope closes", async () => {
    const url = await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const server = yield* serve(hello, { port: 0, hostname: "127.0.0.1" })
      expect(server.port).toBeGreaterThan(0)
      expect(server.url).toBe(`http://127.0.0.1:${server.port}`)
      expect(yield* Effect.promise(() => fetch(server.url).then((r) => r.text()))).toBe("hello")
      return server.url
    })))
    expect(await fetch(url).then(() => "answered", () => "refused")).toBe("refused")
  })

  test("a port already in use fails with a typed error naming the port", () =>
    Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const first = yield* serve(hello, { port: 0, hostname: "127.0.0.1" })
      const error = yield* serve(hello, { port: first.port, hostname: "127.0.0.1" }).pipe(Effect.flip)
      expect(error).toBeInstanceOf(HttpServerError)
      expect(error.reason).toBe("AddressInUse")
      expect(error.port).toBe(first.port)
      expect(error.message).toBe(`cannot listen on 127.0.0.1:${first.port}: port ${first.port} is already in use`)
      // The first server is untouched by the failed attempt.
      expect(yield* Effect.promise(() => fetch(first.url).then((r) => r.status))).toBe(200)
    }))))

  test("a handler that throws answers 500 without leaking the error", () =>
    Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const server = yield* serve(() => { throw new Error("secret detail") }, { port: 0, hostname: "127.0.0.1" })
      const response = yield* Effect.promise(() => fetch(server.url))
      expect(response.status).toBe(500)
      expect(yield* Effect.promise(() => response.text())).not.toContain("secret")
    }))))

  test("release waits for a request in flight before stopping", () =>
    Effect.runPromise(Effect.gen(function*() {
      let url = ""
      let pending: Promise<string> | undefined
      yield* Effect.scoped(Effect.gen(function*() {
        const server = yield* serve(async () => {
          await Bun.sleep(150)
          return new Response("slow but answered")
        }, { port: 0, hostname: "127.0.0.1" })
        url = server.url
        pending = fetch(url).then((r) => r.text(), (e) => `failed: ${e}`)
        yield* Effect.sleep("30 millis")
      }))
      expect(yield* Effect.promise(() => pending!)).toBe("slow but answered")
      expect(yield* Effect.promise(() => fetch(url).then(() => "answered", () => "refused"))).toBe("refused")
    })))
})
