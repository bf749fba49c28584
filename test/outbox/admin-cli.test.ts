/**
 * The outbox admin's command line: what each command accepts, what is a usage error, how a
 * retention reads, and the table a person sees.
 */
import { describe, expect, test } from "bun:test"
import * as Duration from "effect/Duration"
import { parseArgs, renderFailed, table } from "../../src/outbox/adminCli.ts"
import { parseRetention } from "../../src/outbox/adminConfig.ts"

const id = "0b0e7a52-6f3c-4a8e-9a47-1d4c1f1f2a10"

describe("outbox admin command line", () => {
  test("no arguments, help and --help anywhere ask for the help", () => {
    for (const argv of [[], ["--help"], ["help"], ["purge", "--help"], ["-h"]]) expect(parseArgs(argv)).toEqual({ _tag: "Help" })
  })

  test("each command with its options", () => {
    expect(parseArgs(["failed"])).toEqual({ _tag: "Run", command: { _tag: "Failed", json: false } })
    expect(parseArgs(["failed", "--aggregate", "o-1", "--limit=5", "--json"])).toEqual({
      _tag: "Run",
      command: { _tag: "Failed", aggregateId: "o-1", limit: 5, json: true }
    })
    expect(parseArgs(["requeue", id])).toEqual({ _tag: "Run", command: { _tag: "Requeue", target: { _tag: "Event", id }, json: false } })
    expect(parseArgs(["requeue", "--aggregate", "o-1"])).toMatchObject({ command: { target: { _tag: "Aggregate", aggregateId: "o-1" } } })
    expect(parseArgs(["requeue", "--all-failed", "--json"])).toMatchObject({ command: { target: { _tag: "AllFailed" }, json: true } })
    const purge = parseArgs(["purge", "--retention", "1d12h", "--batch-size", "500"])
    expect(purge).toMatchObject({ _tag: "Run", command: { _tag: "Purge", batchSize: 500 } })
    expect(Duration.toMillis((purge as { command: { retention: Duration.Duration } }).command.retention)).toBe(36 * 3_600_000)
    expect(parseArgs(["expire-keys"])).toEqual({ _tag: "Run", command: { _tag: "ExpireKeys", json: false } })
  })

  test("usage errors say what is wrong", () => {
    const cases: Array<[Array<string>, string]> = [
      [["bogus"], `unknown command "bogus"`],
      [["failed", "--limit", "0"], `--limit: expected an integer greater than 0, got "0"`],
      [["failed", "--limit"], "failed: --limit needs a value"],
      [["failed", "--verbose"], "failed: unknown option --verbose"],
      [["failed", "extra"], `failed: unexpected argument "extra"`],
      [["requeue"], "requeue: name exactly one of <event-id>, --aggregate ID or --all-failed"],
      [["requeue", id, "--all-failed"], "requeue: name exactly one of <event-id>, --aggregate ID or --all-failed"],
      [["requeue", id, id], "requeue: one event id at a time, got 2"],
      [["requeue", "--all-failed=yes"], "requeue: --all-failed takes no value"],
      [["purge", "--retention", "0s"], `--retention: expected a duration greater than 0 such as 7d, 24h, 90m or "7 days", got "0s"`],
      [["purge", "--batch-size", "1e3"], `--batch-size: expected an integer greater than 0, got "1e3"`],
      [["expire-keys", "--retention", "1", "--retention", "2"], "expire-keys: --retention given twice"]
    ]
    for (const [argv, message] of cases) expect(parseArgs(argv)).toEqual({ _tag: "Usage", message })
  })

  test("a retention reads days as well as the other durations", () => {
    const ms = (text: string) => {
      const d = parseRetention(text)
      return d === undefined ? undefined : Duration.toMillis(d)
    }
    expect(ms("7d")).toBe(7 * 86_400_000)
    expect(ms("1d12h")).toBe(36 * 3_600_000)
    expect(ms("24h")).toBe(86_400_000)
    expect(ms("7 days")).toBe(7 * 86_400_000)
    expect(ms("90")).toBe(90_000)
    for (const bad of ["", "0d", "d", "7x", "-1d", "1d-5s"]) expect(ms(bad)).toBeUndefined()
  })

  test("the failed table: aligned columns, one line per event, and how many there are", () => {
    const text = renderFailed({
      total: 3,
      events: [{
        id,
        aggregateType: "order",
        aggregateId: "o-1",
        aggregateSeq: 1,
        eventType: "OrderCreated",
        attempts: 4,
        lastError: "too large\n  at broker",
        createdAt: new Date("2026-01-02T03:04:05.000Z"),
        heldBack: 2
      }]
    }, false)
    expect(text).toBe([
      "ID                                    AGGREGATE  SEQ  TYPE          ATTEMPTS  HELD BACK  CREATED                   LAST ERROR",
      `${id}  order/o-1  1    OrderCreated  4         2          2026-01-02T03:04:05.000Z  too large at broker`,
      "3 failed (showing the oldest 1)"
    ].join("\n"))
    expect(table(["A", "B"], [["xx", "y"]])).toBe("A   B\nxx  y")
  })
})
