/**
 * The token that guards the ops endpoints which change state (`OPS_TOKEN`): such a request
 * carries `Authorization: Bearer <OPS_TOKEN>`. Without the variable these endpoints are off
 * (403 saying so), never open: an ops port reachable by anyone must not run jobs for anyone.
 *
 * The comparison takes as long whatever the token's first wrong character, so the token
 * cannot be guessed a character at a time by timing the answers.
 */
import * as Config from "effect/Config"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import type { MiddlewareHandler } from "hono"
import { configIssue } from "./config.ts"

/** `OPS_TOKEN`, when set: at least 16 characters, so a placeholder such as `secret` is refused at start. */
export const opsTokenConfig: Config.Config<Redacted.Redacted<string> | undefined> = Config.option(Config.Redacted("OPS_TOKEN")).pipe(
  Config.mapEffect((token) => {
    if (token._tag === "None") return Effect.succeed(undefined)
    const text = Redacted.value(token.value)
    return text.trim() === ""
      ? Effect.succeed(undefined)
      : text.length < 16 || /\s/.test(text)
      ? Effect.fail(configIssue("OPS_TOKEN", "a token of at least 16 characters without spaces", `got ${text.length} characters`))
      : Effect.succeed(token.value)
  })
)

const encoder = new TextEncoder()

/** Whether `given` equals `expected`, in time that depends on their lengths only. */
export const tokensEqual = (given: string, expected: string): boolean => {
  const a = encoder.encode(given)
  const b = encoder.encode(expected)
  let difference = a.length ^ b.length
  for (let i = 0; i < b.length; i++) difference |= (a[i % Math.max(1, a.length)] ?? 0) ^ b[i]!
  return difference === 0
}

/**
 * Hono middleware: lets a request through only with the right bearer token; 401 without one or
 * with a wrong one, 403 when no token is configured.
 */
export const requireOpsToken = (token: Redacted.Redacted<string> | undefined): MiddlewareHandler => async (c, next) => {
  if (token === undefined) {
    return c.json({ error: "this endpoint is disabled: set OPS_TOKEN to enable it" }, 403)
  }
  const header = c.req.header("authorization") ?? ""
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header)
  if (match === null || !tokensEqual(match[1]!, Redacted.value(token))) {
    c.header("WWW-Authenticate", `Bearer realm="ops"`)
    return c.json({ error: match === null ? "missing bearer token (Authorization: Bearer <OPS_TOKEN>)" : "wrong token" }, 401)
  }
  await next()
}
