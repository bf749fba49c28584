/**
 * Durations as the programs' configuration and job schedules write them. A module of its own,
 * apart from `config.ts`: parsing a schedule's `@every 30s` needs this and not Effect's
 * configuration system, whose modules (Config, and Schema under it) add about 10 MB to a
 * process that loads them.
 */
import * as Duration from "effect/Duration"
import * as Option from "effect/Option"

const GO_DURATION = /^(\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h))+$/
const GO_UNIT = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g
const UNIT_MILLIS: Record<string, number> = { ns: 1e-6, us: 1e-3, "µs": 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 }

/**
 * Parses Go-style durations (`5s`, `1m30s`, `250ms`) as the original programs wrote them,
 * Effect-style ones (`5 seconds`), and bare numbers, read as `bareUnit`.
 */
export const parseDuration = (text: string, bareUnit: "seconds" | "millis" = "seconds"): Duration.Duration | undefined => {
  const trimmed = text.trim()
  if (/^\d+(\.\d+)?$/.test(trimmed)) {
    const n = Number(trimmed)
    return bareUnit === "seconds" ? Duration.seconds(n) : Duration.millis(n)
  }
  if (GO_DURATION.test(trimmed)) {
    let millis = 0
    for (const [, amount, unit] of trimmed.matchAll(GO_UNIT)) millis += Number(amount) * UNIT_MILLIS[unit!]!
    return Duration.millis(millis)
  }
  return Option.getOrUndefined(Duration.fromInput(trimmed as Duration.Input))
}
