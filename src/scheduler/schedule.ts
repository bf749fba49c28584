/**
 * A job's schedule: when its occurrences fall.
 *
 * Accepted forms (SPEC §3, the original's robfig/cron spellings):
 * - five cron fields `min hour day-of-month month day-of-week`, or six with seconds first;
 * - `@yearly` (`@annually`), `@monthly`, `@weekly`, `@daily` (`@midnight`), `@hourly`;
 * - `@every <duration>`: `@every 30s`, `@every 1m30s`, `@every 250ms`, `@every 5 minutes`.
 *
 * Cron schedules are evaluated by Effect's `Cron` in the job's time zone, always given
 * explicitly: `Cron` without a zone would use the host's, which differs between a laptop and a
 * container and would move every occurrence.
 *
 * Daylight saving time, for a zone that has it (Vixie cron's rule; tested):
 * - a job at a fixed hour runs once a day whatever the clocks do. A local time that does not
 *   exist (the hour skipped when clocks go forward) fires once, moved forward by the gap:
 *   `30 2 * * *` in Europe/Berlin fires at 03:30 CEST on the spring change. A local time that
 *   exists twice (the hour repeated when clocks go back) fires once, at its first occurrence.
 * - a job whose hour field is `*` (`@hourly`, every 15 minutes of every hour) runs by elapsed
 *   time: 23 times on the spring day, 25 on the autumn day, through the repeated hour twice.
 *
 * `@every` occurrences are multiples of the interval since the Unix epoch, not counted from the
 * process start: every replica computes the same instants, which is what lets the store claim
 * each occurrence once. `@every 1h` fires on the hour (UTC), whatever the zone.
 */
import * as Cron from "effect/Cron"
import * as Duration from "effect/Duration"
import * as Result from "effect/Result"
import { parseDuration } from "../runtime/duration.ts"

export type Schedule =
  | { readonly _tag: "Cron"; readonly expression: string; readonly cron: Cron.Cron }
  | { readonly _tag: "Every"; readonly expression: string; readonly interval: Duration.Duration }

/** Why a schedule expression or time zone was refused: `field` names the part at fault. */
export interface ScheduleIssue {
  readonly field: string
  readonly message: string
}

const macros: Readonly<Record<string, string>> = {
  "@yearly": "0 0 1 1 *",
  "@annually": "0 0 1 1 *",
  "@monthly": "0 0 1 * *",
  "@weekly": "0 0 * * 0",
  "@daily": "0 0 * * *",
  "@midnight": "0 0 * * *",
  "@hourly": "0 * * * *"
}

const fieldNames5 = ["minute", "hour", "day-of-month", "month", "day-of-week"]
const fieldNames6 = ["second", ...fieldNames5]

/** The first cron field `Cron.parse` refuses, found by parsing it alone among wildcards. */
const faultyField = (fields: ReadonlyArray<string>, timeZone: string): ScheduleIssue | undefined => {
  const names = fields.length === 6 ? fieldNames6 : fieldNames5
  for (let i = 0; i < fields.length; i++) {
    const probe = fields.map((field, j) => (j === i ? field : "*")).join(" ")
    const parsed = Cron.parse(probe, timeZone)
    if (Result.isFailure(parsed)) {
      return { field: `${names[i]} field "${fields[i]}"`, message: parsed.failure.message }
    }
  }
  return undefined
}

// An empty hour set is Cron's "every hour": such a job follows elapsed time through a repeated
// hour; a job at fixed hours keeps the first occurrence only (Cron's default).
const withDstRule = (cron: Cron.Cron, text: string, timeZone: string): Cron.Cron =>
  cron.hours.size === 0 ? Cron.parseUnsafe(text, timeZone, { onDstOverlap: "both" }) : cron

// Zones found valid: 10 000 jobs in one zone would otherwise build 10 000 ICU formatters at start.
const knownZones = new Set<string>()

/** Whether `timeZone` is an IANA zone name this runtime knows ("UTC", "Europe/Berlin"). */
export const isTimeZone = (timeZone: string): boolean => {
  if (knownZones.has(timeZone)) return true
  if (timeZone.trim() === "") return false
  try {
    new Intl.DateTimeFormat("en-US", { timeZone })
    knownZones.add(timeZone)
    return true
  } catch {
    return false
  }
}

/** Parses `expression` for `timeZone`; a refusal names the field at fault. */
export const parseSchedule = (expression: string, timeZone: string): Result.Result<Schedule, ScheduleIssue> => {
  const text = expression.trim()
  if (!isTimeZone(timeZone)) {
    return Result.fail({ field: "timeZone", message: `"${timeZone}" is not a known IANA time zone (e.g. UTC, Europe/Berlin)` })
  }
  if (text.startsWith("@every")) {
    const amount = text.slice("@every".length).trim()
    const interval = amount === "" ? undefined : parseDuration(amount, "seconds")
    if (interval === undefined || !(Duration.toMillis(interval) >= 1) || !Number.isFinite(Duration.toMillis(interval))) {
      return Result.fail({
        field: "schedule",
        message: `"${expression}": @every needs a duration of at least 1ms, such as @every 30s, @every 1m30s or @every 5 minutes`
      })
    }
    return Result.succeed({ _tag: "Every", expression: text, interval })
  }
  if (text.startsWith("@")) {
    const macro = macros[text.toLowerCase()]
    if (macro === undefined) {
      return Result.fail({
        field: "schedule",
        message: `"${expression}" is not a known macro (${[...Object.keys(macros), "@every <duration>"].join(", ")})`
      })
    }
    return Result.succeed({ _tag: "Cron", expression: text, cron: withDstRule(Cron.parseUnsafe(macro, timeZone), macro, timeZone) })
  }
  const fields = text.split(/\s+/).filter((field) => field !== "")
  if (fields.length !== 5 && fields.length !== 6) {
    return Result.fail({
      field: "schedule",
      message: `"${expression}" has ${fields.length} fields; expected 5 (minute hour day-of-month month day-of-week), 6 (with seconds first), or a macro such as @daily or @every 30s`
    })
  }
  const parsed = Cron.parse(fields.join(" "), timeZone)
  if (Result.isFailure(parsed)) {
    const issue = faultyField(fields, timeZone) ?? { field: "schedule", message: parsed.failure.message }
    return Result.fail({ field: `schedule ${issue.field}`, message: issue.message })
  }
  return Result.succeed({ _tag: "Cron", expression: text, cron: withDstRule(parsed.success, fields.join(" "), timeZone) })
}

/** The first occurrence strictly after `after` (epoch millis), in epoch millis. */
export const nextOccurrence = (schedule: Schedule, after: number): number => {
  if (schedule._tag === "Every") {
    const every = Duration.toMillis(schedule.interval)
    return (Math.floor(after / every) + 1) * every
  }
  return Cron.next(schedule.cron, new Date(after)).getTime()
}

/** The last occurrence at or before `at` (epoch millis), in epoch millis. */
export const previousOccurrence = (schedule: Schedule, at: number): number => {
  if (schedule._tag === "Every") {
    const every = Duration.toMillis(schedule.interval)
    return Math.floor(at / every) * every
  }
  // `Cron.prev` is strict; step one millisecond past `at` so an occurrence at `at` counts.
  return Cron.prev(schedule.cron, new Date(at + 1)).getTime()
}
