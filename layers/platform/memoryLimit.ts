/**
 * `MEMORY_LIMIT`: the soft resident-memory limit of `src/runtime/memoryLimit.ts`, with Bun's
 * collector.
 * - unset or `auto`: 90 % of the container's memory limit (cgroup v2 `memory.max`, or v1
 *   `memory.limit_in_bytes`) when there is one, else no limit;
 * - a size (`90MiB`, `512MB`, bytes): that;
 * - `off` or `0`: no limit.
 * Runtimes that let a program start no full collection (Deno) ignore it, with a warning.
 */
import { readFileSync } from "node:fs"
import { totalmem } from "node:os"
import process from "node:process"
import * as Config from "effect/Config"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { configIssue, parseBytes } from "../../src/runtime/config.ts"
import { enforceMemoryLimit } from "../../src/runtime/memoryLimit.ts"
import { formatMiB } from "../../src/runtime/format.ts"

export type MemoryLimitSetting = number | "off" | "auto"

export const MemoryLimitConfig: Config.Config<MemoryLimitSetting> = Config.String("MEMORY_LIMIT").pipe(
  Config.withDefault("auto"),
  Config.mapEffect((text) => {
    const word = text.trim().toLowerCase()
    if (word === "auto" || word === "") return Effect.succeed<MemoryLimitSetting>("auto")
    if (word === "off") return Effect.succeed<MemoryLimitSetting>("off")
    const n = parseBytes(word)
    return n === undefined
      ? Effect.fail(configIssue("MEMORY_LIMIT", "a size such as 96MiB, 512MB, 1GiB or a number of bytes, auto or off", `got "${text}"`))
      : Effect.succeed<MemoryLimitSetting>(n > 0 ? n : "off")
  })
)

const CgroupFiles = ["/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"]

/**
 * The memory limit of the container this process runs in, from the cgroup files; undefined
 * outside one, or when its "limit" is no less than the machine's memory (v1 writes a huge number
 * for none, v2 writes `max`).
 */
export const containerMemoryLimit = (
  read: (path: string) => string | undefined = readOptional,
  machineBytes: number = totalmem()
): number | undefined => {
  for (const file of CgroupFiles) {
    const text = read(file)?.trim()
    if (text === undefined) continue
    const n = /^\d+$/.test(text) ? Number(text) : Number.NaN
    return Number.isFinite(n) && n > 0 && n < machineBytes ? n : undefined
  }
  return undefined
}

const readOptional = (path: string): string | undefined => {
  try {
    return readFileSync(path, "utf8")
  } catch {
    return undefined
  }
}

/** The limit in bytes a setting comes to here, and where it came from (for the start-up log). */
export const resolveMemoryLimit = (
  setting: MemoryLimitSetting,
  container: () => number | undefined = containerMemoryLimit
): { readonly bytes: number; readonly source: string } | undefined => {
  if (setting === "off") return undefined
  if (setting !== "auto") return { bytes: setting, source: "MEMORY_LIMIT" }
  const limit = container()
  return limit === undefined ? undefined : { bytes: Math.floor(limit * 0.9), source: `90% of the container's ${formatMiB(limit)}` }
}


interface BunGc {
  readonly gc: (force: boolean) => void
}

export const layer = (setting: MemoryLimitSetting): Layer.Layer<never> =>
  Layer.effectDiscard(Effect.gen(function*() {
    const limit = resolveMemoryLimit(setting)
    if (limit === undefined) return
    const bun = (globalThis as { readonly Bun?: BunGc }).Bun
    if (bun === undefined) {
      return yield* Effect.logWarning(`a memory limit (${limit.source}) applies, but this runtime offers no full collection; ignored`)
    }
    yield* Effect.logInfo(`memory limit ${formatMiB(limit.bytes)} (${limit.source})`)
    yield* Effect.forkScoped(enforceMemoryLimit({
      limit: limit.bytes,
      residentBytes: Effect.sync(() => process.memoryUsage.rss()),
      collect: Effect.sync(() => bun.gc(true))
    }))
  }))
