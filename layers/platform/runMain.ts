/**
 * Runs a program as a process: signals, logging, config errors and exit codes in one place.
 *
 * - SIGINT/SIGTERM interrupt the main fiber, so finalizers run in reverse order of acquisition:
 *   intake stops, in-flight work is settled, connections close. A clean stop exits 0.
 * - `SHUTDOWN_TIMEOUT` [30s] bounds that: past it the process exits 1. A second signal exits at once.
 * - A `ConfigError` (before any broker is touched) prints one line naming the variable, exits 2.
 * - Any other failure or defect is logged with its cause, exits 1.
 *
 * The one place that touches the process (signals, exit, a timer for the deadline), so it lives
 * with the other platform adapters; everything in `src/` is plain Effect.
 */
import process from "node:process"
import * as Cause from "effect/Cause"
import * as Config from "effect/Config"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Fiber from "effect/Fiber"
import * as Result from "effect/Result"
import { ConfigError, load, positiveDuration, providerFrom } from "../../src/runtime/config.ts"
import * as Logging from "../../src/runtime/logging.ts"

export interface RunOptions {
  /** Added to every log line as `service`. */
  readonly name: string
}

export const exitCodes = { ok: 0, failure: 1, config: 2, deadline: 1 } as const

export const runMain = <A, E>(program: Effect.Effect<A, E>, options: RunOptions): void => {
  let deadline = Duration.seconds(30)
  const main = Effect.gen(function*() {
    const logging = yield* load(Logging.LoggingConfig)
    deadline = yield* load(positiveDuration("SHUTDOWN_TIMEOUT").pipe(Config.withDefault(deadline)))
    return yield* program.pipe(Effect.annotateLogs({ service: options.name }), Effect.provide(Logging.layer(logging)))
  }).pipe(Effect.provideService(ConfigProvider.ConfigProvider, providerFrom(process.argv.slice(2), process.env)))

  // Handlers go in before the program starts: a signal that arrives while it is still starting
  // must interrupt it too, not kill the process with nothing released.
  let fiber: Fiber.Fiber<A, E | ConfigError> | undefined
  let signalled = false
  const onSignal = (signal: NodeJS.Signals) => {
    if (signalled) {
      process.stderr.write(`${options.name}: second ${signal}, exiting without waiting\n`)
      process.exit(130)
    }
    signalled = true
    process.stderr.write(`${options.name}: ${signal} received, shutting down (deadline ${Duration.format(deadline)})\n`)
    setTimeout(() => {
      process.stderr.write(`${options.name}: shutdown did not finish within ${Duration.format(deadline)}, exiting\n`)
      process.exit(exitCodes.deadline)
    }, Duration.toMillis(deadline)).unref()
    fiber?.interruptUnsafe()
  }
  process.on("SIGINT", onSignal)
  process.on("SIGTERM", onSignal)
  // A fiber waiting on a timer or a Deferred holds no handle the runtime sees; without this the
  // process would exit as soon as the event loop looked empty, mid-program.
  const keepAlive = setInterval(() => {}, 2 ** 31 - 1)

  fiber = Effect.runFork(main)
  if (signalled) fiber.interruptUnsafe()
  fiber.addObserver((exit) => {
    clearInterval(keepAlive)
    process.off("SIGINT", onSignal)
    process.off("SIGTERM", onSignal)
    process.exit(exitCode(exit, options.name))
  })
}

const exitCode = <A, E>(exit: Exit.Exit<A, E>, name: string): number => {
  if (Exit.isSuccess(exit)) return exitCodes.ok
  if (Cause.hasInterruptsOnly(exit.cause)) return exitCodes.ok
  const error = Cause.findError(exit.cause)
  if (Result.isSuccess(error) && error.success instanceof ConfigError) {
    process.stderr.write(`${name}: ${error.success.message}\n`)
    return exitCodes.config
  }
  process.stderr.write(`${name}: failed\n${Cause.pretty(exit.cause)}\n`)
  return exitCodes.failure
}
