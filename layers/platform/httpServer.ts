/**
 * A `fetch` handler served over HTTP as a scoped resource, on the runtime's own server.
 *
 * `Bun.serve` under Bun, `Deno.serve` under Deno; no Node adapter, because a Hono app already
 * speaks `Request`/`Response` and both runtimes serve that natively. Port 0 binds an ephemeral
 * port; the bound one is returned. Closing the scope stops accepting connections, lets requests
 * in flight finish for up to `drainTimeout`, then cuts whatever is left.
 */
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Scope from "effect/Scope"

export type FetchHandler = (request: Request) => Response | Promise<Response>

export interface ServeOptions {
  /** 0 binds an ephemeral port. */
  readonly port: number
  /** Interface to bind; default `0.0.0.0` (all IPv4 interfaces). */
  readonly hostname?: string | undefined
  /** How long in-flight requests may run after the scope closes; default 5 seconds. */
  readonly drainTimeout?: Duration.Input | undefined
}

export interface BoundServer {
  readonly port: number
  /** Where a client on this host reaches the server (a wildcard bind is reported as loopback). */
  readonly url: string
}

export class HttpServerError extends Data.TaggedError("HttpServerError")<{
  readonly reason: "AddressInUse" | "Unsupported" | "Listen"
  readonly hostname: string
  readonly port: number
  readonly cause: unknown
}> {
  override get message() {
    const where = `${bracketed(this.hostname)}:${this.port}`
    switch (this.reason) {
      case "AddressInUse":
        return `cannot listen on ${where}: port ${this.port} is already in use`
      case "Unsupported":
        return `cannot listen on ${where}: this runtime has neither Bun.serve nor Deno.serve`
      case "Listen":
        return `cannot listen on ${where}: ${this.cause instanceof Error ? this.cause.message : String(this.cause)}`
    }
  }
}

/** Serves `fetch` until the enclosing scope closes. */
export const serve = (
  fetch: FetchHandler,
  options: ServeOptions
): Effect.Effect<BoundServer, HttpServerError, Scope.Scope> => {
  const hostname = options.hostname ?? "0.0.0.0"
  const drainTimeout = options.drainTimeout ?? Duration.seconds(5)
  const fail = (reason: HttpServerError["reason"], cause: unknown) =>
    new HttpServerError({ reason, hostname, port: options.port, cause })

  const runtime = detectRuntime()
  if (runtime === undefined) return Effect.fail(fail("Unsupported", undefined))

  return Effect.acquireRelease(
    Effect.try({
      try: () => runtime.listen(fetch, options.port, hostname),
      catch: (cause) => fail(isAddressInUse(cause) ? "AddressInUse" : "Listen", cause)
    }),
    (server) =>
      Effect.promise(() => server.stop()).pipe(
        Effect.timeoutOption(drainTimeout),
        Effect.flatMap((stopped) => stopped._tag === "Some" ? Effect.void : Effect.promise(() => server.kill()))
      )
  ).pipe(Effect.map((server) => ({ port: server.port, url: `http://${hostForUrl(hostname)}:${server.port}` })))
}

interface Listening {
  readonly port: number
  /** Stops accepting; resolves once requests in flight are answered. */
  readonly stop: () => Promise<void>
  /** Closes every connection now. */
  readonly kill: () => Promise<void>
}

interface Runtime {
  readonly listen: (fetch: FetchHandler, port: number, hostname: string) => Listening
}

// Only what we call, so the file type-checks without Deno's types.
interface DenoServe {
  serve(
    options: { port: number; hostname: string; onListen: () => void; signal: AbortSignal },
    handler: (request: Request) => Response | Promise<Response>
  ): { readonly addr: { readonly port: number }; shutdown(): Promise<void>; readonly finished: Promise<void> }
}

const detectRuntime = (): Runtime | undefined => {
  const g = globalThis as { Bun?: typeof Bun; Deno?: DenoServe }
  if (g.Bun !== undefined && typeof g.Bun.serve === "function") {
    const bun = g.Bun
    return {
      listen: (fetch, port, hostname) => {
        // Throws synchronously (EADDRINUSE) when the port is taken.
        const server = bun.serve({
          port,
          hostname,
          fetch: (request) => fetch(request),
          // Never Bun's development error page: it would show source and stack to any client.
          error: () => new Response("internal server error", { status: 500 })
        })
        return {
          port: server.port ?? port,
          stop: () => server.stop(false),
          kill: () => server.stop(true)
        }
      }
    }
  }
  if (g.Deno !== undefined && typeof g.Deno.serve === "function") {
    const deno = g.Deno
    return {
      listen: (fetch, port, hostname) => {
        const abort = new AbortController()
        // onListen given so Deno does not print its own "Listening on" line.
        const server = deno.serve({ port, hostname, onListen: () => {}, signal: abort.signal }, (request) => fetch(request))
        return {
          port: server.addr.port,
          stop: () => server.shutdown(),
          kill: () => {
            abort.abort()
            return server.finished
          }
        }
      }
    }
  }
  return undefined
}

// Bun: code "EADDRINUSE"; Deno: Deno.errors.AddrInUse (name "AddrInUse").
const isAddressInUse = (cause: unknown): boolean =>
  typeof cause === "object" && cause !== null &&
  (("code" in cause && cause.code === "EADDRINUSE") || ("name" in cause && cause.name === "AddrInUse"))

const bracketed = (hostname: string): string => hostname.includes(":") ? `[${hostname}]` : hostname

const hostForUrl = (hostname: string): string =>
  hostname === "0.0.0.0" ? "127.0.0.1" : hostname === "::" ? "[::1]" : bracketed(hostname)
