/**
 * The outbox admin's retentions, from the environment: `OUTBOX_RETENTION` [7d] for published
 * events, `IDEMPOTENCY_KEY_RETENTION` [24h] for idempotency keys. A retention reads like the
 * other durations, plus days (`7d`, `1d12h`), the unit retentions are usually thought in.
 */
import * as Config from "effect/Config"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { configIssue, parseDuration } from "../runtime/config.ts"
import { adminDefaults } from "./admin.ts"

export const RETENTION_FORM = "a duration greater than 0 such as 7d, 24h, 90m or \"7 days\""

/** `7d`, `1d12h`, `24h`, `7 days`; undefined when not a duration greater than 0. */
export const parseRetention = (text: string): Duration.Duration | undefined => {
  const days = /^\s*(\d+)d(.*)$/.exec(text)
  const rest = days === null ? text : days[2]!.trim()
  const more = rest === "" && days !== null ? Duration.zero : parseDuration(rest)
  if (more === undefined) return undefined
  const total = Duration.sum(Duration.days(Number(days?.[1] ?? 0)), more)
  return Duration.toMillis(total) > 0 ? total : undefined
}

const retention = (name: string) =>
  Config.String(name).pipe(
    Config.mapEffect((text) => {
      const parsed = parseRetention(text)
      return parsed === undefined ? Effect.fail(configIssue(name, RETENTION_FORM, `got "${text}"`)) : Effect.succeed(parsed)
    })
  )

export const outboxRetention = retention("OUTBOX_RETENTION").pipe(Config.withDefault(adminDefaults.outboxRetention))

export const keyRetention = retention("IDEMPOTENCY_KEY_RETENTION").pipe(Config.withDefault(adminDefaults.keyRetention))
