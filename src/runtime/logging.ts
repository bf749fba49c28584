/**
 * Logging from `LOG_FORMAT` (json [default] | pretty) and `LOG_LEVEL` (info [default]).
 *
 * Logs go to stderr so a program's stdout stays free for its results.
 */
import * as Config from "effect/Config"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as References from "effect/References"
import { load, oneOf } from "./config.ts"

const levels = ["trace", "debug", "info", "warn", "error", "fatal", "none"] as const
const toLevel = {
  trace: "Trace",
  debug: "Debug",
  info: "Info",
  warn: "Warn",
  error: "Error",
  fatal: "Fatal",
  none: "None"
} as const

export const LoggingConfig = Config.all({
  format: oneOf("LOG_FORMAT", ["json", "pretty"]).pipe(Config.withDefault("json" as const)),
  level: oneOf("LOG_LEVEL", levels, { caseInsensitive: true }).pipe(Config.withDefault("info" as const))
})

export const layer = (options: { readonly format: "json" | "pretty"; readonly level: (typeof levels)[number] }) =>
  Layer.mergeAll(
    Logger.layer([options.format === "json" ? Logger.withConsoleError(Logger.formatJson) : Logger.consolePretty({ colors: "auto" })]),
    Layer.succeed(References.MinimumLogLevel, toLevel[options.level])
  )

export const layerConfig = Layer.unwrap(Effect.map(load(LoggingConfig), layer))
