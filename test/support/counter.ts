/**
 * What the counter's tests share: an in-process configuration and reading the files it writes.
 */
import * as Duration from "effect/Duration"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import type { CounterConfig } from "../../src/counter/counter.ts"
import { type Counts, eventTypes } from "../../src/counter/events.ts"

/** The original wire names, a 5 s idle timeout and small batches; `overrides` wins. */
export const counterTestConfig = (outputDir: string, overrides: Partial<CounterConfig> = {}): CounterConfig => ({
  exchange: "eventcounter",
  queue: "eventcountertest",
  outputDir,
  idleTimeout: Duration.seconds(5),
  prefetch: 50,
  batchSize: 20,
  maxMessageBytes: 64 * 1024,
  ...overrides
})

/** `created.json`, `updated.json` and `deleted.json` of `dir`, as written. */
export const readCounts = (dir: string): Counts =>
  Object.fromEntries(eventTypes.map((t) => [t, JSON.parse(readFileSync(join(dir, `${t}.json`), "utf8"))])) as Counts
