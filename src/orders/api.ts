/**
 * The orders HTTP API: a Hono app of plain `Request`/`Response`, so `app.fetch` serves under Bun,
 * Deno or anything else that speaks fetch.
 *
 *   POST /orders       201 + Location | 400 (not JSON, validation) | 413 | 415 | 422 (key reused)
 *   GET  /orders/:id   200 | 400 (not a UUID) | 404
 *
 * Every answer, errors included, is JSON, and counted by method, route and status (src/runtime/httpMetrics.ts). Each request runs in a server span (the child of the
 * caller's `traceparent` when it sends one), the parent of the outbox row's `traceparent`, so a
 * trace goes on from the client through the request to the relay and beyond.
 */
import * as Effect from "effect/Effect"
import { Hono } from "hono"
import { bodyTextStrict } from "../capabilities/Message.ts"
import type { SqlDatabase } from "../capabilities/SqlDatabase.ts"
import { parseTraceparent } from "../messaging/traceContext.ts"
import { httpMetrics } from "../runtime/httpMetrics.ts"
import { createOrder, getOrder } from "./orders.ts"
import { decodeOrderRequest } from "./request.ts"

export interface OrdersApiOptions {
  /** Largest request body accepted, in bytes; default 64 KiB. */
  readonly maxBodyBytes?: number
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i
const MAX_KEY_LENGTH = 255

const json = (status: number, body: unknown, headers: Record<string, string> = {}) =>
  new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json", ...headers } })

const error = (status: number, message: string) => json(status, { error: message })

const isJson = (contentType: string | null) => {
  const media = (contentType ?? "").split(";")[0]!.trim().toLowerCase()
  return media === "application/json" || /^application\/[^/]+\+json$/.test(media)
}

class TooLarge {}

/** The body's bytes, or TooLarge as soon as it passes `limit` bytes: never buffered past it. */
const readBounded = async (request: Request, limit: number): Promise<Uint8Array | TooLarge> => {
  const declared = Number(request.headers.get("content-length"))
  if (Number.isFinite(declared) && declared > limit) return new TooLarge()
  if (request.body === null) return new Uint8Array(0)
  const reader = request.body.getReader()
  const chunks: Array<Uint8Array> = []
  let size = 0
  for (;;) {
    const { done, value } = await reader.read()
    if (done) break
    size += value.byteLength
    if (size > limit) {
      await reader.cancel().catch(() => {})
      return new TooLarge()
    }
    chunks.push(value)
  }
  const bytes = new Uint8Array(size)
  let offset = 0
  for (const chunk of chunks) {
    bytes.set(chunk, offset)
    offset += chunk.byteLength
  }
  return bytes
}

/** The app, running its effects with the services of the context it is built in. */
export const makeOrdersApi = (options: OrdersApiOptions = {}) =>
  Effect.gen(function*() {
    const services = yield* Effect.context<SqlDatabase>()
    const limit = options.maxBodyBytes ?? 64 * 1024
    const run = <E>(name: string, request: Request, effect: Effect.Effect<Response, E, SqlDatabase>) =>
      Effect.runPromiseWith(services)(
        effect.pipe(
          Effect.catchCause((cause) =>
            Effect.logError("orders API request failed", cause).pipe(Effect.as(error(500, "internal error")))
          ),
          Effect.withSpan(name, {
            kind: "server",
            parent: parseTraceparent(request.headers.get("traceparent") ?? undefined),
            attributes: { "http.request.method": request.method, "url.path": new URL(request.url).pathname }
          })
        )
      )

    const app = new Hono()
    app.use(httpMetrics(services))

    app.post("/orders", async (c) => {
      if (!isJson(c.req.header("content-type") ?? null)) {
        return error(415, "content type must be application/json")
      }
      const key = c.req.header("idempotency-key")
      if (key !== undefined && (key.length === 0 || key.length > MAX_KEY_LENGTH)) {
        return error(400, `Idempotency-Key must be 1 to ${MAX_KEY_LENGTH} characters`)
      }
      const bytes = await readBounded(c.req.raw, limit)
      if (bytes instanceof TooLarge) return error(413, `request body over ${limit} bytes`)
      // Strict: invalid UTF-8 is bad input, not text to patch up with U+FFFD.
      const text = bodyTextStrict({ body: bytes })
      if (text === undefined) return error(400, "body is not valid UTF-8")
      let body: unknown
      try {
        body = JSON.parse(text)
      } catch (cause) {
        return error(400, `body is not JSON: ${cause instanceof Error ? cause.message : String(cause)}`)
      }
      return run(
        "POST /orders",
        c.req.raw,
        decodeOrderRequest(body).pipe(
          Effect.matchEffect({
            onFailure: (fields) => Effect.succeed(json(400, { error: "validation", fields })),
            onSuccess: (request) =>
              createOrder(request, key).pipe(
                Effect.map((stored) => {
                  const id = (JSON.parse(stored.body) as { id: string }).id
                  return new Response(stored.body, {
                    status: stored.status,
                    headers: {
                      "content-type": "application/json",
                      location: `/orders/${id}`,
                      ...(stored.replayed ? { "idempotent-replayed": "true" } : {})
                    }
                  })
                }),
                Effect.catchTag("IdempotencyKeyReused", (reused) => Effect.succeed(error(422, reused.message)))
              )
          })
        )
      )
    })

    app.get("/orders/:id", (c) => {
      const id = c.req.param("id")
      if (!UUID.test(id)) return error(400, "order id must be a UUID")
      return run(
        "GET /orders/:id",
        c.req.raw,
        getOrder(id.toLowerCase()).pipe(
          Effect.map((order) => order === undefined ? error(404, `order ${id} not found`) : json(200, order))
        )
      )
    })

    app.notFound(() => error(404, "not found"))
    app.onError(() => error(500, "internal error"))
    return app
  })

export type OrdersApi = Effect.Success<ReturnType<typeof makeOrdersApi>>
