/**
 * The outbox admin's command line (programs/outbox-admin.ts): the arguments it takes, its help,
 * and how results read, as tables for a person or JSON (`--json`) for a script.
 *
 * Parsing is strict: an unknown subcommand or flag, a missing or malformed value, or two
 * requeue targets at once is a usage error (the program exits 2 with it), never a guess.
 */
import * as Duration from "effect/Duration"
import type { DeletedInBatches, FailedListing, RequeuedEvent, RequeueTarget } from "./admin.ts"
import { parseRetention, RETENTION_FORM } from "./adminConfig.ts"

export const usage = `Usage: outbox-admin <command> [options]

Commands:
  failed [--aggregate ID] [--limit N] [--json]
      List failed outbox events, oldest first [limit 50], with their last error and how many
      later events of their aggregate each one holds back.
  requeue <event-id> | --aggregate ID | --all-failed [--json]
      Set failed events back to pending with their attempts at 0; the relay publishes them
      (and then the events they held back) in order. Naming an event that is not failed, or
      an aggregate without failed events, is an error.
  purge [--retention 7d] [--batch-size 1000] [--json]
      Delete published events older than the retention [OUTBOX_RETENTION, 7d], in batches.
      Each aggregate's sequence is kept, so its next event never reuses a purged number.
  expire-keys [--retention 24h] [--batch-size 1000] [--json]
      Delete idempotency keys older than the retention [IDEMPOTENCY_KEY_RETENTION, 24h].

Database: DATABASE_URL or DB_HOST/DB_PORT/DB_USER/DB_PASSWORD/DB_NAME for PostgreSQL, else
embedded PGlite (PGLITE_DATA_DIR). The orders migrations run first.
Exit codes: 0 done, 1 failed (an event not found or not failed, a database error), 2 usage.`

export type Command =
  | { readonly _tag: "Failed"; readonly aggregateId?: string; readonly limit?: number; readonly json: boolean }
  | { readonly _tag: "Requeue"; readonly target: RequeueTarget; readonly json: boolean }
  | { readonly _tag: "Purge"; readonly retention?: Duration.Duration; readonly batchSize?: number; readonly json: boolean }
  | { readonly _tag: "ExpireKeys"; readonly retention?: Duration.Duration; readonly batchSize?: number; readonly json: boolean }

export type Parsed =
  | { readonly _tag: "Help" }
  | { readonly _tag: "Usage"; readonly message: string }
  | { readonly _tag: "Run"; readonly command: Command }

/** The flags each command takes: true for a flag with a value, false for a switch. */
const flagsOf: Record<string, Record<string, boolean>> = {
  failed: { aggregate: true, limit: true, json: false },
  requeue: { aggregate: true, "all-failed": false, json: false },
  purge: { retention: true, "batch-size": true, json: false },
  "expire-keys": { retention: true, "batch-size": true, json: false }
}

class UsageError {
  constructor(readonly message: string) {}
}

const positiveInt = (flag: string, text: string) => {
  const n = /^\d+$/.test(text) ? Number(text) : Number.NaN
  if (!(Number.isSafeInteger(n) && n > 0)) throw new UsageError(`--${flag}: expected an integer greater than 0, got "${text}"`)
  return n
}

const retention = (text: string) => {
  const parsed = parseRetention(text)
  if (parsed === undefined) throw new UsageError(`--retention: expected ${RETENTION_FORM}, got "${text}"`)
  return parsed
}

export const parseArgs = (argv: ReadonlyArray<string>): Parsed => {
  if (argv.length === 0 || argv.includes("--help") || argv.includes("-h") || argv[0] === "help") return { _tag: "Help" }
  const [name, ...rest] = argv as [string, ...Array<string>]
  const known = flagsOf[name]
  if (known === undefined) return { _tag: "Usage", message: `unknown command "${name}"` }
  try {
    const flags = new Map<string, string | true>()
    const positional: Array<string> = []
    for (let i = 0; i < rest.length; i++) {
      const arg = rest[i]!
      if (!arg.startsWith("--")) {
        positional.push(arg)
        continue
      }
      const eq = arg.indexOf("=")
      const flag = eq >= 0 ? arg.slice(2, eq) : arg.slice(2)
      const takesValue = known[flag]
      if (takesValue === undefined) throw new UsageError(`${name}: unknown option --${flag}`)
      if (flags.has(flag)) throw new UsageError(`${name}: --${flag} given twice`)
      if (!takesValue) {
        if (eq >= 0) throw new UsageError(`${name}: --${flag} takes no value`)
        flags.set(flag, true)
      } else if (eq >= 0) {
        flags.set(flag, arg.slice(eq + 1))
      } else {
        const value = rest[i + 1]
        if (value === undefined || value.startsWith("--")) throw new UsageError(`${name}: --${flag} needs a value`)
        flags.set(flag, value)
        i++
      }
    }
    const value = (flag: string) => {
      const v = flags.get(flag)
      return typeof v === "string" ? v : undefined
    }
    const json = flags.has("json")
    if (name !== "requeue" && positional.length > 0) throw new UsageError(`${name}: unexpected argument "${positional[0]}"`)
    switch (name) {
      case "failed": {
        const aggregateId = value("aggregate")
        const limit = value("limit")
        return {
          _tag: "Run",
          command: {
            _tag: "Failed",
            json,
            ...(aggregateId === undefined ? {} : { aggregateId }),
            ...(limit === undefined ? {} : { limit: positiveInt("limit", limit) })
          }
        }
      }
      case "requeue": {
        if (positional.length > 1) throw new UsageError(`requeue: one event id at a time, got ${positional.length}`)
        const aggregateId = value("aggregate")
        const targets: Array<RequeueTarget> = [
          ...positional.map((id) => ({ _tag: "Event", id }) as const),
          ...(aggregateId === undefined ? [] : [{ _tag: "Aggregate", aggregateId } as const]),
          ...(flags.has("all-failed") ? [{ _tag: "AllFailed" } as const] : [])
        ]
        if (targets.length !== 1) {
          throw new UsageError(`requeue: name exactly one of <event-id>, --aggregate ID or --all-failed`)
        }
        return { _tag: "Run", command: { _tag: "Requeue", target: targets[0]!, json } }
      }
      default: {
        const text = value("retention")
        const size = value("batch-size")
        return {
          _tag: "Run",
          command: {
            _tag: name === "purge" ? "Purge" : "ExpireKeys",
            json,
            ...(text === undefined ? {} : { retention: retention(text) }),
            ...(size === undefined ? {} : { batchSize: positiveInt("batch-size", size) })
          }
        }
      }
    }
  } catch (error) {
    if (error instanceof UsageError) return { _tag: "Usage", message: error.message }
    throw error
  }
}

/** Columns padded to their widest cell; the last column is not padded. */
export const table = (header: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<string>>): string => {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)))
  const line = (cells: ReadonlyArray<string>) =>
    cells.map((cell, i) => i === cells.length - 1 ? cell : cell.padEnd(widths[i]!)).join("  ").trimEnd()
  return [line(header), ...rows.map(line)].join("\n")
}

// One line per event in the table: a multi-line error would break its columns.
const oneLine = (text: string, max: number) => {
  const flat = text.replace(/\s+/g, " ").trim()
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat
}

export const renderFailed = (listing: FailedListing, json: boolean): string => {
  if (json) return JSON.stringify(listing)
  if (listing.events.length === 0) return "no failed outbox events"
  const rows = listing.events.map((e) => [
    e.id,
    `${e.aggregateType}/${e.aggregateId}`,
    String(e.aggregateSeq),
    e.eventType,
    String(e.attempts),
    String(e.heldBack),
    e.createdAt.toISOString(),
    oneLine(e.lastError ?? "", 120)
  ])
  const shown = listing.events.length < listing.total ? ` (showing the oldest ${listing.events.length})` : ""
  return `${table(["ID", "AGGREGATE", "SEQ", "TYPE", "ATTEMPTS", "HELD BACK", "CREATED", "LAST ERROR"], rows)}\n` +
    `${listing.total} failed${shown}`
}

export const renderRequeued = (events: ReadonlyArray<RequeuedEvent>, json: boolean): string => {
  if (json) return JSON.stringify({ requeued: events })
  if (events.length === 0) return "no failed outbox events to requeue"
  const rows = events.map((e) => [e.id, `${e.aggregateType}/${e.aggregateId}`, String(e.aggregateSeq)])
  return `${table(["ID", "AGGREGATE", "SEQ"], rows)}\nrequeued ${events.length} event${events.length === 1 ? "" : "s"}`
}

export const renderDeleted = (what: string, retention: Duration.Duration, result: DeletedInBatches, json: boolean): string =>
  json
    ? JSON.stringify({ deleted: result.deleted, batches: result.batches, cutoff: result.cutoff.toISOString() })
    : `deleted ${result.deleted} ${what} older than ${Duration.format(retention)} (before ${result.cutoff.toISOString()}) in ${result.batches} batch${result.batches === 1 ? "" : "es"}`
