/**
 * Configuration from the environment and command-line flags.
 *
 * Names are the environment variables of the original programs; a flag `--output-dir=x` (or
 * `--output-dir x`) sets `OUTPUT_DIR` and wins over the environment. A bad value fails with a
 * `ConfigError` that names the variable and the form it expects; the runner turns it into exit 2.
 */
import * as Config from "effect/Config"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { parseDuration } from "./duration.ts"

export class ConfigError extends Data.TaggedError("ConfigError")<{
  readonly variable: string
  readonly expected: string
  readonly detail: string
}> {
  override get message() {
    return `invalid configuration: ${this.variable}: expected ${this.expected}${this.detail ? ` (${this.detail})` : ""}`
  }
}

/** A ConfigProvider reading `--name=value` / `--name value` flags as NAME, then the environment. */
export const providerFrom = (argv: ReadonlyArray<string>, env: Record<string, string | undefined>) => {
  const flags: Record<string, string> = {}
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    if (!arg.startsWith("--")) continue
    const eq = arg.indexOf("=")
    const name = (eq >= 0 ? arg.slice(2, eq) : arg.slice(2)).replaceAll("-", "_").toUpperCase()
    if (eq >= 0) flags[name] = arg.slice(eq + 1)
    else if (i + 1 < argv.length && !argv[i + 1]!.startsWith("--")) flags[name] = argv[++i]!
    else flags[name] = "true"
  }
  const clean: Record<string, string> = {}
  for (const [k, v] of Object.entries(env)) if (v !== undefined) clean[k] = v
  return ConfigProvider.fromEnvRecord({ ...clean, ...flags })
}

export { parseDuration } from "./duration.ts"

const DURATION_FORM = `a duration such as 5s, 250ms, 1m30s or "5 seconds"`

/** A duration variable; see `parseDuration`. */
export const duration = (name: string, options: { readonly bareUnit?: "seconds" | "millis" } = {}) =>
  Config.String(name).pipe(
    Config.mapEffect((text) => {
      const parsed = parseDuration(text, options.bareUnit)
      return parsed === undefined || Duration.toMillis(parsed) < 0
        ? Effect.fail(configIssue(name, DURATION_FORM, `got "${text}"`))
        : Effect.succeed(parsed)
    })
  )

/**
 * A duration variable that must be greater than 0: a timeout, an interval, a deadline. Zero is
 * accepted by `duration` but means "at once" there, which for these stops a program before it
 * did anything (an idle timeout) or gives it no time at all (a shutdown deadline).
 */
export const positiveDuration = (name: string, options: { readonly bareUnit?: "seconds" | "millis" } = {}) =>
  Config.String(name).pipe(
    Config.mapEffect((text) => {
      const parsed = parseDuration(text, options.bareUnit)
      return parsed === undefined || !(Duration.toMillis(parsed) > 0)
        ? Effect.fail(configIssue(name, `${DURATION_FORM}, greater than 0`, `got "${text}"`))
        : Effect.succeed(parsed)
    })
  )

/** A positive integer variable (counts, sizes, concurrency). */
export const positiveInt = (name: string) => intInRange(name, 1, Number.MAX_SAFE_INTEGER, "an integer greater than 0")

/** A number (ratios, multipliers) from `min` to `max`, inclusive. */
export const numberInRange = (name: string, min: number, max: number) =>
  Config.String(name).pipe(
    Config.mapEffect((text) => {
      const n = text.trim() === "" ? Number.NaN : Number(text)
      return Number.isFinite(n) && n >= min && n <= max
        ? Effect.succeed(n)
        : Effect.fail(configIssue(name, `a number from ${min} to ${max}`, `got "${text}"`))
    })
  )

/** An integer from `min` to `max`, inclusive (ports, ratios in percent). */
export const intInRange = (name: string, min: number, max: number, what = `an integer from ${min} to ${max}`) =>
  Config.String(name).pipe(
    Config.mapEffect((text) => {
      const n = /^\s*-?\d+\s*$/.test(text) ? Number(text) : Number.NaN
      return Number.isSafeInteger(n) && n >= min && n <= max
        ? Effect.succeed(n)
        : Effect.fail(configIssue(name, what, `got "${text}"`))
    })
  )

const BYTE_UNITS: Record<string, number> = {
  "": 1, b: 1, kb: 1e3, mb: 1e6, gb: 1e9, kib: 2 ** 10, mib: 2 ** 20, gib: 2 ** 30, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30
}

/** Reads `512MiB`, `96MB`, `1.5GiB`, `100m` (as Kubernetes and Docker write them) or plain bytes. */
export const parseBytes = (text: string): number | undefined => {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(text)
  const unit = BYTE_UNITS[match?.[2]?.toLowerCase() ?? "?"]
  return match === null || unit === undefined ? undefined : Math.round(Number(match[1]) * unit)
}

/** One of a fixed set of words. */
export const oneOf = <const A extends string>(name: string, values: ReadonlyArray<A>, options: { readonly caseInsensitive?: boolean } = {}) =>
  Config.String(name).pipe(
    Config.mapEffect((text) => {
      const word = options.caseInsensitive ? text.toLowerCase() : text
      return values.includes(word as A)
        ? Effect.succeed(word as A)
        : Effect.fail(configIssue(name, `one of ${values.join(", ")}`, `got "${text}"`))
    })
  )

/** A URL with one of the given schemes. */
export const url = (name: string, schemes: ReadonlyArray<string>) =>
  Config.String(name).pipe(
    Config.mapEffect((text) => {
      const parsed = URL.canParse(text) ? new URL(text) : undefined
      return parsed !== undefined && schemes.includes(parsed.protocol.replace(/:$/, ""))
        ? Effect.succeed(text)
        : Effect.fail(configIssue(name, `a URL starting with ${schemes.map((s) => `${s}://`).join(" or ")}`, `got "${redactUrl(text)}"`))
    })
  )

/** Hides the password of a URL so it can be logged or put in an error. */
export const redactUrl = (text: string): string => {
  if (!URL.canParse(text)) return redactCredentials(text)
  const parsed = new URL(text)
  if (parsed.password) parsed.password = "***"
  return parsed.toString()
}

/**
 * Hides the password of every `scheme://user:password@` in a text: a URL that does not parse, or
 * an error message quoting one. In a URL that does not parse, a password may hold a raw `/`, so
 * the match runs to the `@`, but never past a space into the rest of a message.
 */
export const redactCredentials = (text: string): string => text.replace(/\/\/([^:/@\s]*):[^@\s]*@/g, "//$1:***@")

interface Issue {
  readonly variable: string
  readonly expected: string
  readonly detail: string
}

/** The error a config helper fails with: the runner prints it naming `variable` and exits 2. */
export const configIssue = (variable: string, expected: string, detail: string) =>
  new Config.ConfigError(
    new ConfigProvider.SourceError({ message: `${variable}: expected ${expected} (${detail})`, cause: { variable, expected, detail } satisfies Issue })
  )

/**
 * Reads a config, turning Effect's ConfigError into ours, with the variable named.
 */
export const load = <A>(config: Config.Config<A>): Effect.Effect<A, ConfigError> =>
  Effect.mapError(config, toConfigError)

export const toConfigError = (error: Config.ConfigError): ConfigError => {
  const cause = error.cause
  if (cause._tag === "SourceError" && isIssue(cause.cause)) return new ConfigError(cause.cause)
  const text = error.message
  const at = /at \["?([^"\]]+)"?\]/.exec(text)
  const variable = at?.[1] ?? "configuration"
  const first = text.replace(/^SchemaError\(/, "").replace(/\)$/, "").split("\n")[0] ?? text
  const expected = first.replace(/^Expected /, "")
  return new ConfigError({ variable, expected: expected === "string" ? "a value (it is missing)" : expected, detail: "" })
}

const isIssue = (u: unknown): u is Issue =>
  typeof u === "object" && u !== null && "variable" in u && "expected" in u && "detail" in u
