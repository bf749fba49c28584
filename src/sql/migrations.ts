/**
 * Schema migrations: numbered pairs of SQL scripts, applied in version order, one transaction
 * per migration together with its row in the migrations table.
 *
 * Replicas that start at once may all run `migrate up`. Every transaction here first takes the
 * same transaction-scoped advisory lock and re-reads the table under it, so each migration is
 * applied exactly once and the replicas that lose the race find nothing left to do.
 *
 * A migration's SQL runs inside that transaction, so statements PostgreSQL refuses to run in one
 * (CREATE INDEX CONCURRENTLY, VACUUM) do not belong in a migration.
 */
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import { type SqlClient, SqlDatabase, type SqlError } from "../capabilities/SqlDatabase.ts"

export interface Migration {
  readonly version: number
  readonly name: string
  /** SQL text; may hold several statements. */
  readonly up: string
  readonly down: string
}

export interface MigrateOptions {
  readonly direction: "up" | "down"
  /** At most this many migrations: all pending ones going up, 1 going down, when absent. */
  readonly steps?: number
  readonly table?: string
}

export interface MigrationStep {
  readonly version: number
  readonly name: string
}

export class MigrationError extends Data.TaggedError("MigrationError")<{ readonly reason: string }> {
  override get message() {
    return this.reason
  }
}

interface AppliedRow {
  readonly version: number
  readonly name: string
}

const identifier = /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$/

// One advisory lock per migrations table: runners of the same table queue, others don't.
// FNV-1a keeps the key stable across processes and releases.
const lockKey = (table: string) => {
  let hash = 0x811c9dc5
  for (const char of `queueworks/migrations/${table}`) {
    hash = Math.imul(hash ^ char.charCodeAt(0), 0x01000193)
  }
  return hash | 0
}

const validate = (migrations: ReadonlyArray<Migration>, options: MigrateOptions) =>
  Effect.gen(function*() {
    const table = options.table ?? "schema_migrations"
    if (!identifier.test(table)) {
      return yield* new MigrationError({ reason: `migrations table name "${table}" is not a plain identifier` })
    }
    if (options.steps !== undefined && !(Number.isSafeInteger(options.steps) && options.steps > 0)) {
      return yield* new MigrationError({ reason: `steps must be a positive integer, got ${options.steps}` })
    }
    const byVersion = new Map<number, Migration>()
    for (const migration of migrations) {
      if (!Number.isSafeInteger(migration.version)) {
        return yield* new MigrationError({ reason: `migration "${migration.name}" has version ${migration.version}, not an integer` })
      }
      const other = byVersion.get(migration.version)
      if (other !== undefined) {
        return yield* new MigrationError({
          reason: `duplicate migration version ${migration.version}: "${other.name}" and "${migration.name}"`
        })
      }
      byVersion.set(migration.version, migration)
    }
    return { table, byVersion }
  })

/**
 * Applies pending migrations (`up`) or reverts the latest applied ones (`down`), and returns the
 * ones this call applied or reverted, in the order it did so.
 */
export const migrate = Effect.fn("migrate")(function*(
  migrations: ReadonlyArray<Migration>,
  options: MigrateOptions
): Effect.fn.Return<ReadonlyArray<MigrationStep>, MigrationError | SqlError, SqlDatabase> {
  const { table, byVersion } = yield* validate(migrations, options)
  const db = yield* SqlDatabase
  const lock = (tx: SqlClient) => tx.query(`select pg_advisory_xact_lock(${lockKey(table)})`)
  const isApplied = (tx: SqlClient, version: number) =>
    tx.query(`select 1 from ${table} where version = $1`, [version]).pipe(Effect.map((rows) => rows.length > 0))

  const applied = yield* db.transaction((tx) =>
    Effect.gen(function*() {
      yield* lock(tx)
      yield* tx.query(
        `create table if not exists ${table} (version int primary key, name text not null, applied_at timestamptz not null default now())`
      )
      return yield* tx.query<AppliedRow>(`select version, name from ${table} order by version`)
    })
  )
  for (const row of applied) {
    const known = byVersion.get(Number(row.version))
    if (known !== undefined && known.name !== row.name) {
      return yield* new MigrationError({
        reason: `migration ${row.version} was applied as "${row.name}" but the code calls it "${known.name}"`
      })
    }
  }
  const appliedVersions = new Set(applied.map((row) => Number(row.version)))
  const done: Array<MigrationStep> = []

  if (options.direction === "up") {
    for (const row of applied) {
      if (!byVersion.has(Number(row.version))) {
        yield* Effect.logWarning(`migration ${row.version} ${row.name} is applied but unknown to this code`)
      }
    }
    const pending = [...byVersion.values()]
      .filter((m) => !appliedVersions.has(m.version))
      .sort((a, b) => a.version - b.version)
      .slice(0, options.steps ?? Infinity)
    for (const migration of pending) {
      const ran = yield* db.transaction((tx) =>
        Effect.gen(function*() {
          yield* lock(tx)
          if (yield* isApplied(tx, migration.version)) return false
          yield* tx.query(migration.up)
          yield* tx.query(`insert into ${table} (version, name) values ($1, $2)`, [migration.version, migration.name])
          return true
        })
      )
      if (ran) {
        yield* Effect.log(`migration ${migration.version} ${migration.name} applied`)
        done.push({ version: migration.version, name: migration.name })
      }
    }
  } else {
    const latest = [...applied].sort((a, b) => Number(b.version) - Number(a.version)).slice(0, options.steps ?? 1)
    const targets: Array<Migration> = []
    for (const row of latest) {
      const migration = byVersion.get(Number(row.version))
      if (migration === undefined) {
        return yield* new MigrationError({
          reason: `migration ${row.version} ${row.name} is applied but unknown to this code, so it cannot be reverted`
        })
      }
      targets.push(migration)
    }
    for (const migration of targets) {
      const ran = yield* db.transaction((tx) =>
        Effect.gen(function*() {
          yield* lock(tx)
          if (!(yield* isApplied(tx, migration.version))) return false
          yield* tx.query(migration.down)
          yield* tx.query(`delete from ${table} where version = $1`, [migration.version])
          return true
        })
      )
      if (ran) {
        yield* Effect.log(`migration ${migration.version} ${migration.name} reverted`)
        done.push({ version: migration.version, name: migration.name })
      }
    }
  }
  if (done.length === 0) yield* Effect.log(`migrations: nothing to ${options.direction === "up" ? "apply" : "revert"}`)
  return done
})
