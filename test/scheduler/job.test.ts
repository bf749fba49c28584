import { describe, expect, test } from "bun:test"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Result from "effect/Result"
import { job, JobDefinitionError, register } from "../../src/scheduler/job.ts"
import { nextOccurrence, parseSchedule, previousOccurrence, type Schedule } from "../../src/scheduler/schedule.ts"

const defaults = { timeZone: "UTC", timeout: Duration.seconds(300) }

const parsed = (expression: string, timeZone = "UTC"): Schedule => {
  const result = parseSchedule(expression, timeZone)
  if (Result.isFailure(result)) throw new Error(`${result.failure.field}: ${result.failure.message}`)
  return result.success
}

const iso = (millis: number) => new Date(millis).toISOString()

/** The first `n` occurrences after `from`. */
const occurrences = (schedule: Schedule, from: string, n: number) => {
  const out: Array<string> = []
  let at = Date.parse(from)
  for (let i = 0; i < n; i++) {
    at = nextOccurrence(schedule, at)
    out.push(iso(at))
  }
  return out
}

const failure = (definitions: Parameters<typeof register>[0]) =>
  Effect.runPromise(Effect.flip(register(definitions, defaults)))

describe("schedule expressions", () => {
  test("five fields: seconds are 0; six fields: seconds first", () => {
    expect(occurrences(parsed("*/15 9 * * MON-FRI"), "2026-01-02T09:20:00Z", 3)).toEqual([
      "2026-01-02T09:30:00.000Z", "2026-01-02T09:45:00.000Z", "2026-01-05T09:00:00.000Z"
    ])
    expect(occurrences(parsed("*/20 * * * * *"), "2026-01-01T00:00:05Z", 3)).toEqual([
      "2026-01-01T00:00:20.000Z", "2026-01-01T00:00:40.000Z", "2026-01-01T00:01:00.000Z"
    ])
  })

  test("macros: @hourly, @daily, @weekly (Sunday midnight), @monthly", () => {
    const from = "2026-03-11T10:30:00Z" // a Wednesday
    expect(occurrences(parsed("@hourly"), from, 1)).toEqual(["2026-03-11T11:00:00.000Z"])
    expect(occurrences(parsed("@daily"), from, 1)).toEqual(["2026-03-12T00:00:00.000Z"])
    expect(occurrences(parsed("@weekly"), from, 1)).toEqual(["2026-03-15T00:00:00.000Z"])
    expect(occurrences(parsed("@monthly"), from, 1)).toEqual(["2026-04-01T00:00:00.000Z"])
  })

  test("@every: multiples of the interval since the epoch, the same on every replica", () => {
    expect(occurrences(parsed("@every 30s"), "2026-01-01T00:00:10.500Z", 3)).toEqual([
      "2026-01-01T00:00:30.000Z", "2026-01-01T00:01:00.000Z", "2026-01-01T00:01:30.000Z"
    ])
    expect(occurrences(parsed("@every 1m30s"), "2026-01-01T00:00:00Z", 2)).toEqual([
      "2026-01-01T00:01:30.000Z", "2026-01-01T00:03:00.000Z"
    ])
    expect(occurrences(parsed("@every 5 minutes"), "2026-01-01T00:04:59Z", 1)).toEqual(["2026-01-01T00:05:00.000Z"])
    // an occurrence exactly at `from` is not "next"; it is the previous one
    expect(iso(nextOccurrence(parsed("@every 30s"), Date.parse("2026-01-01T00:00:30Z")))).toBe("2026-01-01T00:01:00.000Z")
    expect(iso(previousOccurrence(parsed("@every 30s"), Date.parse("2026-01-01T00:00:30Z")))).toBe("2026-01-01T00:00:30.000Z")
  })

  test("previousOccurrence counts an occurrence at the instant itself (cron)", () => {
    const daily = parsed("0 2 * * *")
    expect(iso(previousOccurrence(daily, Date.parse("2026-01-02T02:00:00Z")))).toBe("2026-01-02T02:00:00.000Z")
    expect(iso(previousOccurrence(daily, Date.parse("2026-01-02T01:59:59.999Z")))).toBe("2026-01-01T02:00:00.000Z")
  })

  test("the zone is the job's, never the host's: 09:00 in New York is 14:00Z in winter, 13:00Z in summer", () => {
    const nine = parsed("0 9 * * *", "America/New_York")
    expect(occurrences(nine, "2026-01-10T00:00:00Z", 1)).toEqual(["2026-01-10T14:00:00.000Z"])
    expect(occurrences(nine, "2026-07-10T00:00:00Z", 1)).toEqual(["2026-07-10T13:00:00.000Z"])
    expect(occurrences(parsed("0 9 * * *", "UTC"), "2026-07-10T00:00:00Z", 1)).toEqual(["2026-07-10T09:00:00.000Z"])
  })

  test("DST spring forward (Europe/Berlin 2026-03-29, 02:00→03:00): the skipped 02:30 fires once, moved by the gap to 03:30", () => {
    const daily = parsed("30 2 * * *", "Europe/Berlin")
    expect(occurrences(daily, "2026-03-27T12:00:00Z", 4)).toEqual([
      "2026-03-28T01:30:00.000Z", // 02:30 CET (+01:00)
      "2026-03-29T01:30:00.000Z", // 02:30 does not exist: 03:30 CEST (+02:00), once
      "2026-03-30T00:30:00.000Z", // 02:30 CEST
      "2026-03-31T00:30:00.000Z"
    ])
  })

  test("DST fall back (Europe/Berlin 2026-10-25, 03:00→02:00): the repeated 02:30 fires once, at its first occurrence", () => {
    const daily = parsed("30 2 * * *", "Europe/Berlin")
    expect(occurrences(daily, "2026-10-23T12:00:00Z", 3)).toEqual([
      "2026-10-24T00:30:00.000Z", // 02:30 CEST
      "2026-10-25T00:30:00.000Z", // first 02:30 (+02:00); the second (01:30Z) does not fire
      "2026-10-26T01:30:00.000Z" // 02:30 CET
    ])
  })

  test("DST: an hourly job in New York fires 23 times on the spring day and 25 on the fall day: every elapsed hour", () => {
    const hourly = parsed("@hourly", "America/New_York")
    const count = (fromIso: string, toIso: string) => {
      let at = Date.parse(fromIso)
      let n = 0
      while ((at = nextOccurrence(hourly, at)) < Date.parse(toIso)) n++
      return n
    }
    // local midnight to midnight: 2026-03-08 (EST→EDT) and 2026-11-01 (EDT→EST)
    expect(count("2026-03-08T04:59:59Z", "2026-03-09T03:59:59Z")).toBe(23)
    expect(count("2026-11-01T03:59:59Z", "2026-11-02T04:59:59Z")).toBe(25)
  })

  test("refusals name the field at fault", () => {
    const issue = (expression: string, timeZone = "UTC") => {
      const result = parseSchedule(expression, timeZone)
      return Result.isFailure(result) ? `${result.failure.field}: ${result.failure.message}` : "accepted"
    }
    expect(issue("61 * * * *")).toBe(`schedule minute field "61": Expected a value between 0 and 59`)
    expect(issue("0 25 * * *")).toBe(`schedule hour field "25": Expected a value between 0 and 23`)
    expect(issue("0 0 0 * * *")).toBe("accepted")
    expect(issue("0 0 * 13 *")).toContain(`schedule month field "13"`)
    expect(issue("0 0 * * FUNDAY")).toContain(`schedule day-of-week field "FUNDAY"`)
    expect(issue("* * *")).toContain("schedule: \"* * *\" has 3 fields")
    expect(issue("@fortnightly")).toContain("is not a known macro")
    expect(issue("@every")).toContain("@every needs a duration")
    expect(issue("@every 0s")).toContain("@every needs a duration")
    expect(issue("@every soon")).toContain("@every needs a duration")
    expect(issue("@daily", "Mars/Olympus")).toContain("timeZone: \"Mars/Olympus\" is not a known IANA time zone")
    expect(issue("@daily", "")).toContain("timeZone")
  })
})

describe("register", () => {
  const run = Effect.void

  test("applies the defaults: the default zone and timeout, overlap skip, missed skip, no retry", async () => {
    const [one] = await Effect.runPromise(register([job({ name: "cleanup", schedule: "0 2 * * *", run })], {
      timeZone: "Europe/Berlin",
      timeout: Duration.seconds(300)
    }))
    expect(one!.timeZone).toBe("Europe/Berlin")
    expect(Duration.toMillis(one!.timeout)).toBe(300_000)
    expect(one!.overlap).toBe("skip")
    expect(one!.missed).toBe("skip")
    expect(one!.retry).toBeUndefined()
    // the default zone reached the cron: 02:00 Berlin in winter is 01:00Z
    expect(iso(nextOccurrence(one!.schedule, Date.parse("2026-01-01T00:00:00Z")))).toBe("2026-01-01T01:00:00.000Z")
  })

  test("keeps what the job sets", async () => {
    const [one] = await Effect.runPromise(register([job({
      name: "report",
      schedule: "0 8 * * 1",
      timeZone: "UTC",
      timeout: "2 minutes",
      retry: { base: "1 second", max: "1 minute", maxAttempts: 3 },
      overlap: "allow",
      missed: "catch-up",
      run
    })], { timeZone: "Asia/Tokyo", timeout: Duration.seconds(300) }))
    expect(one!.timeZone).toBe("UTC")
    expect(Duration.toMillis(one!.timeout)).toBe(120_000)
    expect(one!.retry?.maxAttempts).toBe(3)
    expect(one!.overlap).toBe("allow")
    expect(one!.missed).toBe("catch-up")
  })

  test("two jobs with one name fail at start, naming the job and the field", async () => {
    const error = await failure([
      job({ name: "cleanup", schedule: "@daily", run }),
      job({ name: "report", schedule: "@weekly", run }),
      job({ name: "cleanup", schedule: "@hourly", run })
    ])
    expect(error).toBeInstanceOf(JobDefinitionError)
    expect(error.message).toBe(`job "cleanup": name: registered twice; job names must be unique`)
  })

  test("an invalid expression fails at start, naming the job and the cron field", async () => {
    const error = await failure([job({ name: "ok", schedule: "@daily", run }), job({ name: "typo", schedule: "0 25 * * *", run })])
    expect(error.job).toBe("typo")
    expect(error.message).toBe(`job "typo": schedule hour field "25": Expected a value between 0 and 23`)
  })

  test("an unknown zone, a bad timeout, a bad retry policy, a bad policy word or name: each named", async () => {
    expect((await failure([job({ name: "a", schedule: "@daily", timeZone: "Nowhere/City", run })])).field).toBe("timeZone")
    expect((await failure([job({ name: "a", schedule: "@daily", timeout: 0, run })])).field).toBe("timeout")
    expect((await failure([job({ name: "a", schedule: "@daily", timeout: "soon" as Duration.Input, run })])).field).toBe("timeout")
    expect((await failure([job({ name: "a", schedule: "@daily", timeout: Duration.infinity, run })])).field).toBe("timeout")
    expect((await failure([job({ name: "a", schedule: "@daily", retry: { base: "1 minute", max: "1 second" }, run })])).field)
      .toBe("retry.max")
    expect((await failure([job({ name: "a", schedule: "@daily", retry: { base: 1, max: 2, maxAttempts: 0 }, run })])).field)
      .toBe("retry.maxAttempts")
    expect((await failure([job({ name: "a", schedule: "@daily", retry: { base: 1, max: 2, factor: 0.5 }, run })])).field)
      .toBe("retry.factor")
    expect((await failure([job({ name: "a", schedule: "@daily", overlap: "sometimes" as "skip", run })])).field).toBe("overlap")
    expect((await failure([job({ name: "a", schedule: "@daily", missed: "all" as "skip", run })])).field).toBe("missed")
    expect((await failure([job({ name: "has space", schedule: "@daily", run })])).field).toBe("name")
    expect((await failure([job({ name: "", schedule: "@daily", run })])).field).toBe("name")
  })
})
