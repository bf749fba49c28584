/**
 * Which database failures are permanent for the data that caused them, and which pass.
 *
 * A worker that writes what it received must tell the two apart: a database that is down, a
 * lost connection, a serialization failure or a deadlock pass, and the same write succeeds
 * later, so it is retried with backoff and the message waits. A value the database can never
 * store (a NUL byte, an over-long index key, a broken constraint) fails the same way on every
 * retry; retried like the first kind, one such message stalls its worker for good. It must be
 * isolated (see `isolatePoison`) and dead-lettered with the reason, and the rest go on.
 *
 * Driver-free: it reads the SQLSTATE the backends keep in `SqlError.code`. What the drivers
 * report, pinned by test/sql/failures.test.ts on PostgreSQL and PGlite alike:
 *
 * | value                                    | SQLSTATE | message                                  |
 * | ---------------------------------------- | -------- | ---------------------------------------- |
 * | NUL in a text parameter                  | 22021    | invalid byte sequence for encoding "UTF8": 0x00 |
 * | `\u0000` in JSON cast to jsonb            | 22P05    | unsupported Unicode escape sequence      |
 * | lone surrogate in JSON cast to jsonb      | 22P02    | invalid input syntax for type json       |
 * | 40 kB value in an indexed text column     | 54000    | index row requires … bytes, maximum size is … |
 *
 * A lone surrogate in a plain text parameter fails nowhere: both drivers encode it as U+FFFD, so
 * distinct strings can be stored as one. Validate text before it reaches the database.
 */
import type { SqlError } from "../capabilities/SqlDatabase.ts"

/**
 * SQLSTATE classes that say the data is at fault, so the same statement with the same values
 * fails again: 22 data exception (encoding, length, format, range), 23 integrity constraint
 * violation, 54 program limit exceeded (index row size, too many arguments; a smaller batch may
 * pass, a single value never will).
 *
 * Left out on purpose, as transient: 08 connection exception, 40 transaction rollback
 * (serialization failure, deadlock), 53 insufficient resources, 57 operator intervention (admin
 * shutdown, cancel), 58 system error; and as a bug to fix rather than data to drop: 42 syntax or
 * access rule violation (a missing table, a wrong statement). Dead-lettering every message over
 * a missing table would empty the queue into the dead-letter queue; holding them waits for the fix.
 */
const permanentClasses: ReadonlySet<string> = new Set(["22", "23", "54"])

/**
 * True when `error` says the data it was given can never be stored: retrying the same write is
 * futile, while the same write without the offending values may succeed. False for everything
 * else, failures without a SQLSTATE (connection lost, server unreachable) included.
 */
export const isPermanentForData = (error: Pick<SqlError, "code">): boolean =>
  error.code !== undefined && permanentClasses.has(error.code.slice(0, 2))
