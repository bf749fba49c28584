/**
 * How durations and sizes read in logs and error messages, the same everywhere.
 */
import * as Duration from "effect/Duration"

/** `30s`, `1m 30s`, `250ms`: any duration input as Effect formats it. */
export const formatDuration = (input: Duration.Input): string => Duration.format(Duration.fromInputUnsafe(input))

/** Bytes in MiB: `90 MiB`, `90.5 MiB` (one decimal at most). */
export const formatMiB = (bytes: number): string => `${Number((bytes / 2 ** 20).toFixed(1))} MiB`
