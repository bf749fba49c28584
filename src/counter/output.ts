/**
 * The counter's output: `<type>.json` = `{ "<userId>": count }` for each type, as the original
 * challenge wrote them, and beside them `counter-status.json`, which says whether they are complete.
 *
 * - `prepare`, at start: OUTPUT_DIR must be a directory the counter can write to (it is created
 *   if missing), or the program stops with a ConfigError naming it (exit 2) before a message is
 *   taken, instead of acking every message and failing to write at the end. It also reads the
 *   status an earlier run left. A run stopped by a signal or a failure leaves `complete: false`;
 *   the messages it acked are gone from the queue, so with a store that forgets (memory) this run
 *   adds its counts to those files, and together the two runs count everything.
 * - `write`, at the end: the three files, each written whole then renamed into place, then the
 *   status, `complete: true` only for a run that stopped because the queue stayed idle. Counts
 *   that cannot be written there go to a new temporary directory, the log says where, and the run
 *   fails (exit 1): they are never lost without a word.
 */
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FileSystem from "effect/FileSystem"
import * as Option from "effect/Option"
import * as Path from "effect/Path"
import * as Result from "effect/Result"
import { ConfigError } from "../runtime/config.ts"
import { type Counts, emptyCounts, type EventType, eventTypes, sortedByUser, totals } from "./events.ts"

export const statusFile = "counter-status.json"

/** The setting the directory comes from, named in errors (the counter's config reads it). */
const variable = "OUTPUT_DIR"

/**
 * What a run does with the counts of an earlier run that did not finish: `files` adds to the
 * files it left (a store that forgets its counts, memory); `store` writes what the store holds, as
 * it kept them (postgres); `none` starts over (a broker that forgets its messages too, as the
 * demo's in-process one, so the rest of that run can never be counted).
 */
export type CarryOver = "files" | "store" | "none"

/** Why counting stopped: only `idle` (the queue stayed empty) means every message was counted. */
export type StoppedBy = "idle" | "signal" | "failure"

export interface Status {
  readonly complete: boolean
  readonly stoppedBy: StoppedBy
  /** Runs whose counts the files hold: more than 1 after a run resumed from partial files. */
  readonly runs: number
  readonly exchange: string
  readonly queue: string
  readonly totals: Record<EventType, number>
  readonly writtenAt: string
}

export interface OutputConfig {
  readonly outputDir: string
  readonly exchange: string
  readonly queue: string
  readonly carryOver?: CarryOver | undefined
}

/** What `prepare` found: the counts this run adds to, and how many runs they came from. */
export interface Prepared {
  readonly base: Counts
  readonly earlierRuns: number
}

export class CounterOutputError extends Data.TaggedError("CounterOutputError")<{
  readonly outputDir: string
  /** Where the counts were saved instead, when that worked. */
  readonly savedIn: string | undefined
  readonly cause: unknown
}> {
  override get message() {
    const reason = this.cause instanceof Error ? this.cause.message : String(this.cause)
    return `writing the counts to ${this.outputDir} failed (${reason})${this.savedIn === undefined ? "" : `; they are saved in ${this.savedIn}`}`
  }
}

const unusable = (outputDir: string, detail: string) =>
  new ConfigError({ variable, expected: "a directory the counter can write to", detail: `${outputDir}: ${detail}` })

const reason = (error: unknown) => (error instanceof Error ? error.message : String(error))

/** Checks the directory can take the files, and reads what an earlier run left there. */
export const prepare = (config: OutputConfig): Effect.Effect<Prepared, ConfigError, FileSystem.FileSystem | Path.Path> =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    const dir = config.outputDir
    // The files are renamed into place at the end, so a directory that takes a new file (and
    // lets it be removed) takes them too, whatever the files already there allow.
    const probe = path.join(dir, ".counter-write-check")
    yield* fs.makeDirectory(dir, { recursive: true }).pipe(
      Effect.andThen(fs.writeFileString(probe, "")),
      Effect.andThen(fs.remove(probe)),
      Effect.mapError((error) => unusable(dir, reason(error)))
    )
    const status = yield* readStatus(dir)
    if (status === undefined || status.complete) return { base: emptyCounts(), earlierRuns: 0 }
    const earlier = { outputDir: dir, runs: status.runs, stoppedBy: status.stoppedBy, exchange: status.exchange, queue: status.queue }
    switch (config.carryOver ?? "files") {
      case "none":
        yield* Effect.logWarning("overwriting the partial counts of an earlier run: this broker keeps no message across runs").pipe(
          Effect.annotateLogs(earlier)
        )
        return { base: emptyCounts(), earlierRuns: 0 }
      case "store":
        yield* Effect.logInfo("an earlier run stopped before the queue was idle; the store kept its counts").pipe(Effect.annotateLogs(earlier))
        return { base: emptyCounts(), earlierRuns: status.runs }
      case "files": {
        if (status.exchange !== config.exchange || status.queue !== config.queue) {
          return yield* unusable(
            dir,
            `it holds the partial counts of queue "${status.queue}" on exchange "${status.exchange}" (${statusFile}: complete false); ` +
              `count that queue to finish them, or move them away`
          )
        }
        const base = emptyCounts()
        for (const type of eventTypes) base[type] = yield* readCounts(path.join(dir, `${type}.json`))
        yield* Effect.logInfo("resuming from the partial counts of an earlier run").pipe(Effect.annotateLogs({ ...earlier, ...totals(base) }))
        return { base, earlierRuns: status.runs }
      }
    }
  })

/** The status in `dir`, or undefined when there is none (a fresh directory, or the original program's files). */
const readStatus = (dir: string) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    const file = path.join(dir, statusFile)
    if (!(yield* fs.exists(file).pipe(Effect.mapError((error) => unusable(dir, reason(error)))))) return undefined
    const text = yield* fs.readFileString(file).pipe(Effect.mapError((error) => unusable(dir, reason(error))))
    const status = parseStatus(text)
    return status ?? (yield* unusable(dir, `${statusFile} is not a status this counter wrote; move it away to start over`))
  })

const parseStatus = (text: string): Status | undefined => {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    return undefined
  }
  if (typeof value !== "object" || value === null) return undefined
  const s = value as Record<string, unknown>
  return typeof s.complete === "boolean" && typeof s.exchange === "string" && typeof s.queue === "string" &&
      Number.isSafeInteger(s.runs) && (s.stoppedBy === "idle" || s.stoppedBy === "signal" || s.stoppedBy === "failure")
    ? value as Status
    : undefined
}

/** One type's counts from a partial file; each value must be a count. */
const readCounts = (file: string) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const text = yield* fs.readFileString(file).pipe(Effect.mapError((error) => unusable(file, `partial counts unreadable: ${reason(error)}`)))
    let value: unknown
    try {
      value = JSON.parse(text)
    } catch {
      value = undefined
    }
    const entries = typeof value === "object" && value !== null && !Array.isArray(value) ? Object.entries(value) : undefined
    if (entries === undefined || !entries.every(([, n]) => Number.isSafeInteger(n) && (n as number) >= 0)) {
      return yield* unusable(file, `partial counts are not { "<userId>": count }; move the files away to start over`)
    }
    // From entries, not by assignment: JSON.parse made "__proto__" an own key, and it stays one.
    return Object.fromEntries(entries) as Record<string, number>
  })

/** Why the counting that ended with `exit` stopped. */
export const stoppedBy = (exit: Exit.Exit<unknown, unknown>): StoppedBy =>
  Exit.isSuccess(exit) ? "idle" : Cause.hasInterruptsOnly(exit.cause) ? "signal" : "failure"

/** `a` + `b`, user by user. */
const add = (a: Counts, b: Counts): Counts => {
  const out = emptyCounts()
  for (const type of eventTypes) {
    const sum = new Map(Object.entries(a[type]))
    for (const [user, n] of Object.entries(b[type])) sum.set(user, (sum.get(user) ?? 0) + n)
    out[type] = Object.fromEntries(sum)
  }
  return out
}

/**
 * Writes this run's `counts`, added to the earlier runs' it resumed from, and the status. The
 * last log line of a run says whether the counts are complete.
 */
export const write = (
  config: OutputConfig,
  prepared: Prepared,
  counts: Counts,
  stopped: StoppedBy
): Effect.Effect<void, CounterOutputError, FileSystem.FileSystem | Path.Path> =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const all = add(prepared.base, counts)
    const status: Status = {
      complete: stopped === "idle",
      stoppedBy: stopped,
      runs: prepared.earlierRuns + 1,
      exchange: config.exchange,
      queue: config.queue,
      totals: totals(all),
      writtenAt: new Date(yield* Clock.currentTimeMillis).toISOString()
    }
    const done = status.complete
      ? "counts written"
      : `counts written (partial: stopped by ${stopped === "signal" ? "a signal" : "a failure"} before the queue was idle; rerun to finish)`
    const summary = { complete: status.complete, runs: status.runs, ...status.totals }
    const written = yield* Effect.result(writeFiles(config.outputDir, all, status))
    if (Result.isSuccess(written)) {
      return yield* Effect.logInfo(done).pipe(Effect.annotateLogs({ outputDir: config.outputDir, ...summary }))
    }
    const failed = written.failure
    // Elsewhere, so that the counts of messages already acked survive: a directory of its own,
    // the same files, ready to be moved into OUTPUT_DIR.
    const savedIn = yield* fs.makeTempDirectory({ prefix: "event-counter-" }).pipe(
      Effect.tap((dir) => writeFiles(dir, all, status)),
      Effect.option
    )
    if (Option.isSome(savedIn)) {
      yield* Effect.logError(`writing the counts to ${config.outputDir} failed; they are saved in ${savedIn.value}`).pipe(
        Effect.annotateLogs({ outputDir: config.outputDir, savedIn: savedIn.value, reason: reason(failed), ...summary })
      )
    } else {
      yield* Effect.logError("writing the counts failed, here and in a temporary directory; here they are").pipe(
        Effect.annotateLogs({ outputDir: config.outputDir, reason: reason(failed), counts: JSON.stringify(all), status: JSON.stringify(status) })
      )
    }
    return yield* new CounterOutputError({ outputDir: config.outputDir, savedIn: Option.getOrUndefined(savedIn), cause: failed })
  })

/** The three files, then the status: a status never vouches for files not yet written. */
const writeFiles = (dir: string, counts: Counts, status: Status) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    // Written whole under another name, then renamed: a file is never left half-written.
    const put = (name: string, text: string) => {
      const file = path.join(dir, name)
      return fs.writeFileString(`${file}.tmp`, text).pipe(Effect.andThen(fs.rename(`${file}.tmp`, file)))
    }
    yield* fs.makeDirectory(dir, { recursive: true })
    // Users in a stable order, so two runs with the same counts write the same files.
    for (const type of eventTypes) yield* put(`${type}.json`, JSON.stringify(sortedByUser(counts[type]), null, 2) + "\n")
    yield* put(statusFile, JSON.stringify(status, null, 2) + "\n")
  })
