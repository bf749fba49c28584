/**
 * The scheduler's settings, under the original worker's variable names and defaults (SPEC §3).
 * A bad value stops the program at start with a ConfigError naming the variable (exit 2).
 *
 * - `SERVICE_NAME_WORKER` [scheduler]: the service name in logs and telemetry
 *   (`OTEL_SERVICE_NAME` still wins, as in every program).
 * - `WORKER_DEFAULT_TIMEOUT_SECONDS` [300]: a job's timeout unless it sets its own; seconds, or
 *   a duration such as `5m`.
 * - `WORKER_MAX_CONCURRENT_JOBS` [10]: job attempts running at once in one process.
 * - `SCHEDULER_HISTORY_RETENTION` [7d]: finished runs older than this are pruned; `7d`, `36h`,
 *   `"2 weeks"`.
 * - `SHUTDOWN_TIMEOUT` [30s]: the whole stop. Running jobs get it less a tenth (at least 1 s, at
 *   most 5 s) to finish; the rest is for interrupting the stragglers and recording them
 *   interrupted before the process deadline (the same variable) ends it.
 * - `TZ` [UTC]: the zone of cron schedules that name none. Never the host's zone by accident: an
 *   unset `TZ` means UTC, whatever the machine is set to.
 * - `SCHEDULER_INSTANCE_ID` [host-pid]: this replica's name in the history and in leases.
 * - `SCHEDULER_LEASE` [30s]: how long a claim lasts without renewal; a dead replica's run is
 *   taken over this long after its last renewal (plus one sweep).
 * - `SCHEDULER_SWEEP_INTERVAL` [5s]: how often expired leases, due retries and pause flags are read.
 */
import * as Config from "effect/Config"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { configIssue, intInRange, parseDuration, positiveDuration } from "../runtime/config.ts"
import { isTimeZone } from "./schedule.ts"

export interface SchedulerConfig {
  readonly serviceName: string
  readonly defaultTimeout: Duration.Duration
  readonly maxConcurrent: number
  readonly retention: Duration.Duration
  readonly shutdownTimeout: Duration.Duration
  readonly timeZone: string
  readonly instance: string | undefined
  readonly lease: Duration.Duration
  readonly sweepInterval: Duration.Duration
}

export const schedulerDefaults = {
  serviceName: "scheduler",
  defaultTimeout: Duration.seconds(300),
  maxConcurrent: 10,
  retention: Duration.days(7),
  shutdownTimeout: Duration.seconds(30),
  timeZone: "UTC",
  lease: Duration.seconds(30),
  sweepInterval: Duration.seconds(5)
} as const

/** A positive duration that also takes days (`7d`, `1d12h`), which Go's durations lack. */
export const longDuration = (name: string) =>
  Config.String(name).pipe(
    Config.mapEffect((text) => {
      const days = /^\s*(\d+(?:\.\d+)?)d(.*)$/.exec(text)
      const rest = days === null ? text : days[2]!.trim()
      const parsed = rest === "" ? Duration.zero : parseDuration(rest)
      const total = parsed === undefined ? undefined : Duration.sum(parsed, Duration.days(days === null ? 0 : Number(days[1])))
      return total === undefined || !(Duration.toMillis(total) > 0)
        ? Effect.fail(configIssue(name, `a duration greater than 0 such as 7d, 36h or "2 weeks"`, `got "${text}"`))
        : Effect.succeed(total)
    })
  )

/** An IANA zone name; a leading ":" (the POSIX form `:Europe/Berlin`) is accepted. */
const timeZone = (name: string) =>
  Config.String(name).pipe(
    Config.mapEffect((text) => {
      const zone = text.trim().replace(/^:/, "")
      return isTimeZone(zone)
        ? Effect.succeed(zone)
        : Effect.fail(configIssue(name, "an IANA time zone name such as UTC or Europe/Berlin", `got "${text}"`))
    })
  )

const instanceId = (name: string) =>
  Config.String(name).pipe(
    Config.mapEffect((text) =>
      /^[\x21-\x7e]{1,200}$/.test(text)
        ? Effect.succeed(text)
        : Effect.fail(configIssue(name, "1 to 200 printable characters without spaces", `got "${text}"`))
    )
  )

const optional = <A>(config: Config.Config<A>) => Config.option(config).pipe(Config.map((o) => (o._tag === "Some" ? o.value : undefined)))

export const schedulerConfig: Config.Config<SchedulerConfig> = Config.all({
  serviceName: Config.String("SERVICE_NAME_WORKER").pipe(
    Config.map((text) => text.trim()),
    Config.withDefault(schedulerDefaults.serviceName)
  ),
  defaultTimeout: positiveDuration("WORKER_DEFAULT_TIMEOUT_SECONDS", { bareUnit: "seconds" }).pipe(
    Config.withDefault(schedulerDefaults.defaultTimeout)
  ),
  maxConcurrent: intInRange("WORKER_MAX_CONCURRENT_JOBS", 1, 100_000, "an integer from 1 to 100000").pipe(
    Config.withDefault(schedulerDefaults.maxConcurrent)
  ),
  retention: longDuration("SCHEDULER_HISTORY_RETENTION").pipe(Config.withDefault(schedulerDefaults.retention)),
  shutdownTimeout: positiveDuration("SHUTDOWN_TIMEOUT").pipe(Config.withDefault(schedulerDefaults.shutdownTimeout)),
  timeZone: timeZone("TZ").pipe(Config.withDefault(schedulerDefaults.timeZone)),
  instance: optional(instanceId("SCHEDULER_INSTANCE_ID")),
  lease: positiveDuration("SCHEDULER_LEASE").pipe(Config.withDefault(schedulerDefaults.lease)),
  sweepInterval: positiveDuration("SCHEDULER_SWEEP_INTERVAL").pipe(Config.withDefault(schedulerDefaults.sweepInterval))
}).pipe(
  Config.mapEffect((config) =>
    config.serviceName === ""
      ? Effect.fail(configIssue("SERVICE_NAME_WORKER", "a service name", "got an empty value"))
      : Duration.toMillis(config.lease) < 1000
      ? Effect.fail(configIssue("SCHEDULER_LEASE", "a duration of at least 1s", `got ${Duration.format(config.lease)}`))
      : Effect.succeed(config)
  )
)

/**
 * How long stopping waits for running jobs: SHUTDOWN_TIMEOUT less a tenth of it (1 s to 5 s),
 * kept for interrupting and recording the jobs still running before the process deadline.
 */
export const jobDrainTimeout = (shutdownTimeout: Duration.Duration): Duration.Duration => {
  const total = Duration.toMillis(shutdownTimeout)
  const grace = Math.min(5000, Math.max(1000, total / 10))
  return Duration.millis(Math.max(0, total - grace))
}
