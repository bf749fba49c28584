/**
 * `MEMORY_LIMIT` (e.g. `90MiB`; unset: no limit): the soft resident-memory limit of
 * `src/runtime/memoryLimit.ts`, with Bun's collector. Set it a little under the container's
 * memory limit. Runtimes that let a program start no full collection (Deno) ignore it, with a
 * warning.
 */
import process from "node:process"
import * as Config from "effect/Config"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { bytes } from "../../src/runtime/config.ts"
import { enforceMemoryLimit } from "../../src/runtime/memoryLimit.ts"

export const MemoryLimitConfig = bytes("MEMORY_LIMIT").pipe(
  Config.option,
  Config.map((limit) => (limit._tag === "Some" && limit.value > 0 ? limit.value : undefined))
)

interface BunGc {
  readonly gc: (force: boolean) => void
}

export const layer = (limit: number | undefined): Layer.Layer<never> => {
  if (limit === undefined) return Layer.empty
  const bun = (globalThis as { readonly Bun?: BunGc }).Bun
  if (bun === undefined) {
    return Layer.effectDiscard(Effect.logWarning("MEMORY_LIMIT is set but this runtime offers no full collection; ignored"))
  }
  return Layer.effectDiscard(Effect.forkScoped(enforceMemoryLimit({
    limit,
    residentBytes: Effect.sync(() => process.memoryUsage.rss()),
    collect: Effect.sync(() => bun.gc(true))
  })))
}
