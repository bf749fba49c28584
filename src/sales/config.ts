/**
 * Configuration of the sales programs, with the original's names and defaults.
 */
import * as Config from "effect/Config"
import * as Effect from "effect/Effect"
import { configIssue, intInRange, positiveInt } from "../runtime/config.ts"
import { defaultSeedOptions, type SeedOptions } from "./seed.ts"

export const dbPath = Config.String("DB_PATH").pipe(Config.withDefault("./database.db"))

const isDay = (text: string) => {
  const millis = /^\d{4}-\d{2}-\d{2}$/.test(text) ? Date.parse(`${text}T00:00:00Z`) : Number.NaN
  return Number.isFinite(millis) && new Date(millis).toISOString().startsWith(text)
}

const day = (name: string, fallback: string) =>
  Config.String(name).pipe(
    Config.mapEffect((text) => isDay(text) ? Effect.succeed(text) : Effect.fail(configIssue(name, "a date YYYY-MM-DD", `got "${text}"`))),
    Config.withDefault(fallback)
  )

/** `--seed`, `--products`, `--sales`, `--from`, `--to` (or SEED, PRODUCTS, ...). */
export const seedConfig: Config.Config<SeedOptions> = Config.all({
  seed: intInRange("SEED", 0, 2 ** 31 - 1).pipe(Config.withDefault(defaultSeedOptions.seed)),
  products: intInRange("PRODUCTS", 1, 1_000_000).pipe(Config.withDefault(defaultSeedOptions.products)),
  sales: positiveInt("SALES").pipe(Config.withDefault(defaultSeedOptions.sales)),
  from: day("FROM", defaultSeedOptions.from),
  to: day("TO", defaultSeedOptions.to)
}).pipe(Config.mapEffect((options) =>
  options.from > options.to
    ? Effect.fail(configIssue("TO", `a date on or after FROM (${options.from})`, `got "${options.to}"`))
    : Effect.succeed(options)
))

export const force = Config.Boolean("FORCE").pipe(Config.withDefault(false))
