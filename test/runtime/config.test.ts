import { describe, expect, test } from "bun:test"
import * as Config from "effect/Config"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { counterConfig } from "../../src/counter/config.ts"
import { duration, load, oneOf, parseDuration, positiveDuration, positiveInt, providerFrom, redactUrl, url } from "../../src/runtime/config.ts"

const read = <A>(config: Config.Config<A>, env: Record<string, string>, argv: Array<string> = []) =>
  Effect.runPromise(
    Effect.result(load(config)).pipe(Effect.provideService(ConfigProvider.ConfigProvider, providerFrom(argv, env)))
  )

describe("config", () => {
  test("durations in Go form, Effect form and bare seconds", () => {
    expect(Duration.toMillis(parseDuration("5s")!)).toBe(5000)
    expect(Duration.toMillis(parseDuration("1m30s")!)).toBe(90_000)
    expect(Duration.toMillis(parseDuration("250ms")!)).toBe(250)
    expect(Duration.toMillis(parseDuration("1.5h")!)).toBe(5_400_000)
    expect(Duration.toMillis(parseDuration("5 seconds")!)).toBe(5000)
    expect(Duration.toMillis(parseDuration("30")!)).toBe(30_000)
    expect(parseDuration("soon")).toBeUndefined()
    expect(parseDuration("5x")).toBeUndefined()
  })

  test("a bad value names the variable, the expected form and what it got", async () => {
    const r = await read(duration("IDLE_TIMEOUT"), { IDLE_TIMEOUT: "soon" })
    expect(r._tag).toBe("Failure")
    if (r._tag === "Failure") {
      expect(r.failure.variable).toBe("IDLE_TIMEOUT")
      expect(r.failure.message).toContain(`IDLE_TIMEOUT: expected a duration`)
      expect(r.failure.message).toContain(`got "soon"`)
    }
    const n = await read(positiveInt("WORKER_COUNT"), { WORKER_COUNT: "0" })
    expect(n._tag === "Failure" && n.failure.message).toBe(`invalid configuration: WORKER_COUNT: expected an integer greater than 0 (got "0")`)
    const w = await read(oneOf("LOG_FORMAT", ["json", "pretty"]), { LOG_FORMAT: "xml" })
    expect(w._tag === "Failure" && w.failure.message).toContain(`LOG_FORMAT: expected one of json, pretty`)
    const u = await read(url("RABBITMQ_URL", ["amqp", "amqps"]), { RABBITMQ_URL: "http://guest:secret@host" })
    expect(u._tag === "Failure" && u.failure.message).toContain("RABBITMQ_URL: expected a URL starting with amqp:// or amqps://")
    expect(u._tag === "Failure" && u.failure.message).not.toContain("secret")
  })

  test("a timeout of zero or less is refused, naming the variable", async () => {
    for (const text of ["0s", "0", "0ms", "-5s", "-5 seconds"]) {
      const r = await read(positiveDuration("SHUTDOWN_TIMEOUT"), { SHUTDOWN_TIMEOUT: text })
      expect(r._tag === "Failure" && r.failure.message).toBe(
        `invalid configuration: SHUTDOWN_TIMEOUT: expected a duration such as 5s, 250ms, 1m30s or "5 seconds", greater than 0 (got "${text}")`
      )
    }
    const least = await read(positiveDuration("SHUTDOWN_TIMEOUT"), { SHUTDOWN_TIMEOUT: "1ms" })
    expect(least._tag === "Success" && Duration.toMillis(least.success)).toBe(1)
    // The counter's idle timeout: zero would stop it before it consumed anything.
    const idle = await read(counterConfig(), { IDLE_TIMEOUT: "0s" })
    expect(idle._tag === "Failure" && idle.failure.variable).toBe("IDLE_TIMEOUT")
  })

  test("a missing required value says so", async () => {
    const r = await read(Config.String("DATABASE_URL"), {})
    expect(r._tag === "Failure" && r.failure.message).toBe("invalid configuration: DATABASE_URL: expected a value (it is missing)")
  })

  test("flags override the environment, in both --name=value and --name value forms", async () => {
    const cfg = Config.all({ dir: Config.String("OUTPUT_DIR"), idle: duration("IDLE_TIMEOUT"), verbose: Config.String("VERBOSE") })
    const r = await read(cfg, { OUTPUT_DIR: "env", IDLE_TIMEOUT: "9s" }, ["--output-dir", "flag", "--idle-timeout=2s", "--verbose"])
    expect(r._tag).toBe("Success")
    if (r._tag === "Success") {
      expect(r.success.dir).toBe("flag")
      expect(Duration.toMillis(r.success.idle)).toBe(2000)
      expect(r.success.verbose).toBe("true")
    }
  })

  test("urls lose their password before they are shown", () => {
    expect(redactUrl("amqp://guest:secret@localhost:5672/vh")).toBe("amqp://guest:***@localhost:5672/vh")
    expect(redactUrl("postgres://u@h/db")).toBe("postgres://u@h/db")
  })
})
