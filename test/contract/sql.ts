/**
 * The contract every SqlDatabase backend passes (postgres.js on a server, embedded PGlite), and
 * the migration runner on top of it.
 *
 * Each case uses its own table, channel and migrations-table names, so a backend whose layers
 * share one database (a PostgreSQL schema per run) needs no cleanup between cases.
 */
import { test as bunTest, describe, expect } from "bun:test"
import * as Data from "effect/Data"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import * as Stream from "effect/Stream"
import { SqlDatabase, SqlError } from "../../src/capabilities/SqlDatabase.ts"
import { type Migration, migrate, MigrationError } from "../../src/sql/migrations.ts"

export interface SqlFeatures {
  /**
   * Each `makeLayer()` opens another pool on the same database (a server). Without it each
   * layer is a database of its own (PGlite), and concurrency cases run fibers on one layer.
   */
  readonly sharedDatabase: boolean
  /**
   * A statement from outside an open transaction waits for it to end (PGlite's single session)
   * instead of running beside it on another connection and seeing the committed past.
   */
  readonly readersWaitForTransactions: boolean
}

class Boom extends Data.TaggedError("Boom")<{}> {}

const fresh = (prefix: string) => `${prefix}_${crypto.randomUUID().replaceAll("-", "").slice(0, 10)}`

const count = (table: string) =>
  SqlDatabase.use((db) => db.query<{ n: number }>(`select count(*)::int as n from ${table}`)).pipe(
    Effect.map((rows) => rows[0]?.n)
  )

const createTable = (table: string) => SqlDatabase.use((db) => db.query(`create table ${table} (id int primary key, note text)`))

const relationExists = (name: string) =>
  SqlDatabase.use((db) => db.query<{ r: string | null }>("select to_regclass($1)::text as r", [name])).pipe(
    Effect.map((rows) => rows[0]?.r != null)
  )

/** Three migrations that record each application in a log, so a double apply shows. */
const migrationsFor = (prefix: string): Array<Migration> => [
  {
    version: 1,
    name: "create-items",
    up: `create table ${prefix}_log (seq serial primary key, version int not null);
         create table ${prefix}_items (id int primary key, label text not null);
         insert into ${prefix}_log (version) values (1)`,
    down: `drop table ${prefix}_items; drop table ${prefix}_log`
  },
  {
    version: 2,
    name: "items-quantity",
    up: `alter table ${prefix}_items add column qty int not null default 0;
         insert into ${prefix}_log (version) values (2)`,
    down: `alter table ${prefix}_items drop column qty; delete from ${prefix}_log where version = 2`
  },
  {
    version: 3,
    name: "create-extras",
    up: `create table ${prefix}_extras (id int primary key);
         insert into ${prefix}_log (version) values (3)`,
    down: `drop table ${prefix}_extras; delete from ${prefix}_log where version = 3`
  }
]

const logged = (prefix: string) =>
  SqlDatabase.use((db) => db.query<{ version: number }>(`select version from ${prefix}_log order by seq`)).pipe(
    Effect.map((rows) => rows.map((row) => row.version))
  )

export const sqlContract = (
  name: string,
  makeLayer: () => Layer.Layer<SqlDatabase, SqlError>,
  features: SqlFeatures = { sharedDatabase: false, readersWaitForTransactions: true },
  options: { readonly timeout?: number } = {}
) => {
  const run = <A, E>(effect: Effect.Effect<A, E, SqlDatabase>): Promise<A> =>
    Effect.runPromise(effect.pipe(Effect.provide(makeLayer())))
  // Bun's 5 s default is tight for booting PGlite on a busy machine (bunfig's timeout is not applied).
  const test = (title: string, body: () => Promise<unknown>) => bunTest(title, body, options.timeout ?? 30_000)

  describe(`sql contract: ${name}`, () => {
    test("binds parameters instead of splicing them into the text", () =>
      run(Effect.gen(function*() {
        const db = yield* SqlDatabase
        const table = fresh("params")
        yield* createTable(table)
        const tricky = `it's "quoted"; drop table ${table}; -- $2 \\ ü`
        yield* db.query(`insert into ${table} (id, note) values ($1, $2)`, [1, tricky])
        expect(yield* db.query(`select id, note from ${table} where note = $1`, [tricky])).toEqual([{ id: 1, note: tricky }])
        expect(yield* db.query("select $1::text as v, $2::text as n", [tricky, null])).toEqual([{ v: tricky, n: null }])
      })))

    test("runs several statements sent without parameters and returns the last one's rows", () =>
      run(Effect.gen(function*() {
        const db = yield* SqlDatabase
        const table = fresh("multi")
        const rows = yield* db.query(
          `create table ${table} (id int); insert into ${table} values (1), (2); select count(*)::int as n from ${table}`
        )
        expect(rows).toEqual([{ n: 2 }])
      })))

    test("carries the SQLSTATE code of a unique violation, inside a transaction too", () =>
      run(Effect.gen(function*() {
        const db = yield* SqlDatabase
        const table = fresh("unique")
        yield* createTable(table)
        yield* db.query(`insert into ${table} (id) values (1)`)
        const plain = yield* db.query(`insert into ${table} (id) values (1)`).pipe(Effect.flip)
        expect(plain).toBeInstanceOf(SqlError)
        expect(plain.code).toBe("23505")
        const inTx = yield* db.transaction((tx) =>
          tx.query(`insert into ${table} (id) values (2)`).pipe(Effect.andThen(tx.query(`insert into ${table} (id) values (1)`)))
        ).pipe(Effect.flip)
        expect(inTx).toBeInstanceOf(SqlError)
        expect((inTx as SqlError).code).toBe("23505")
        expect(yield* count(table)).toBe(1)
      })))

    test("commits a transaction whose body succeeds and returns its value", () =>
      run(Effect.gen(function*() {
        const db = yield* SqlDatabase
        const table = fresh("commit")
        yield* createTable(table)
        const value = yield* db.transaction((tx) =>
          tx.query(`insert into ${table} (id) values (1), (2)`).pipe(Effect.as("done"))
        )
        expect(value).toBe("done")
        expect(yield* count(table)).toBe(2)
      })))

    test("rolls back a transaction whose body fails, and returns the body's typed error", () =>
      run(Effect.gen(function*() {
        const db = yield* SqlDatabase
        const table = fresh("rollback")
        yield* createTable(table)
        const error = yield* db.transaction((tx) =>
          tx.query(`insert into ${table} (id) values (1)`).pipe(Effect.andThen(Effect.fail(new Boom())))
        ).pipe(Effect.flip)
        expect(error).toBeInstanceOf(Boom)
        expect(yield* count(table)).toBe(0)
      })))

    test("rolls back a transaction whose body dies", () =>
      run(Effect.gen(function*() {
        const db = yield* SqlDatabase
        const table = fresh("defect")
        yield* createTable(table)
        const exit = yield* db.transaction((tx) =>
          tx.query(`insert into ${table} (id) values (1)`).pipe(Effect.andThen(Effect.die("bug")))
        ).pipe(Effect.exit)
        expect(Exit.hasDies(exit)).toBe(true)
        expect(yield* count(table)).toBe(0)
      })))

    test("fails the commit of a transaction whose body swallowed a statement error", () =>
      run(Effect.gen(function*() {
        const db = yield* SqlDatabase
        const table = fresh("aborted")
        yield* createTable(table)
        const error = yield* db.transaction((tx) =>
          Effect.gen(function*() {
            yield* tx.query(`insert into ${table} (id) values (1)`)
            yield* tx.query("select 1 / 0").pipe(Effect.ignore)
          })
        ).pipe(Effect.flip)
        expect(error).toBeInstanceOf(SqlError)
        expect((error as SqlError).operation).toBe("commit")
        expect(yield* count(table)).toBe(0)
      })))

    test("rolls back a transaction interrupted while it is open", () =>
      run(Effect.gen(function*() {
        const db = yield* SqlDatabase
        const table = fresh("interrupt")
        yield* createTable(table)
        const inserted = yield* Deferred.make<void>()
        const fiber = yield* db.transaction((tx) =>
          tx.query(`insert into ${table} (id) values (1)`).pipe(
            Effect.andThen(Deferred.succeed(inserted, undefined)),
            Effect.andThen(Effect.never)
          )
        ).pipe(Effect.forkChild)
        yield* Deferred.await(inserted)
        yield* Fiber.interrupt(fiber)
        expect(Exit.hasInterrupts(yield* Fiber.await(fiber))).toBe(true)
        expect(yield* count(table)).toBe(0)
        // The connection (or PGlite's session) came back usable.
        yield* db.transaction((tx) => tx.query(`insert into ${table} (id) values (2)`))
        expect(yield* count(table)).toBe(1)
      })))

    test("never shows a transaction's uncommitted rows to a statement from another fiber", () =>
      run(Effect.gen(function*() {
        const db = yield* SqlDatabase
        const table = fresh("isolation")
        yield* createTable(table)
        const inserted = yield* Deferred.make<void>()
        const release = yield* Deferred.make<void>()
        const released = yield* Ref.make(false)
        const writer = yield* db.transaction((tx) =>
          tx.query(`insert into ${table} (id) values (1)`).pipe(
            Effect.andThen(Deferred.succeed(inserted, undefined)),
            Effect.andThen(Deferred.await(release))
          )
        ).pipe(Effect.forkChild)
        yield* Deferred.await(inserted)
        const reader = yield* count(table).pipe(
          Effect.flatMap((n) => Ref.get(released).pipe(Effect.map((afterRelease) => ({ n, afterRelease })))),
          Effect.forkChild
        )
        if (features.readersWaitForTransactions) {
          // Nothing signals "the reader is queued", so give it a window in which it must not answer.
          expect(Option.isNone(yield* Fiber.await(reader).pipe(Effect.timeoutOption("300 millis")))).toBe(true)
        } else {
          expect(yield* Fiber.join(reader).pipe(Effect.timeout("10 seconds"))).toEqual({ n: 0, afterRelease: false })
        }
        yield* Ref.set(released, true)
        yield* Deferred.succeed(release, undefined)
        yield* Fiber.join(writer)
        if (features.readersWaitForTransactions) {
          expect(yield* Fiber.join(reader)).toEqual({ n: 1, afterRelease: true })
        }
        expect(yield* count(table)).toBe(1)
      })))

    test("delivers notifications on a channel in the order they were sent", () =>
      run(Effect.gen(function*() {
        const db = yield* SqlDatabase
        const channel = fresh("Chan") // mixed case: LISTEN must not fold it
        const ready = yield* Deferred.make<void>()
        const received = yield* db.listen(channel).pipe(
          Stream.tap((payload) => payload === "ready" ? Deferred.succeed(ready, undefined) : Effect.void),
          Stream.filter((payload) => payload !== "ready"),
          Stream.take(5),
          Stream.runCollect,
          Effect.forkChild
        )
        // The subscription starts in the background; ping until it hears one instead of guessing a delay.
        const pinger = yield* db.notify(channel, "ready").pipe(
          Effect.andThen(Effect.sleep("25 millis")),
          Effect.forever,
          Effect.forkChild
        )
        yield* Deferred.await(ready).pipe(Effect.timeout("10 seconds"))
        yield* Fiber.interrupt(pinger)
        yield* db.notify(fresh("other"), "not for us")
        for (const i of [1, 2, 3, 4, 5]) yield* db.notify(channel, `m${i}`)
        expect(yield* Fiber.join(received).pipe(Effect.timeout("10 seconds"))).toEqual(["m1", "m2", "m3", "m4", "m5"])
      })))

    describe("migrations", () => {
      test("up applies every pending migration in version order, then finds nothing to do", () =>
        run(Effect.gen(function*() {
          const prefix = fresh("up")
          const table = `${prefix}_migrations`
          const [one, two, three] = migrationsFor(prefix)
          const applied = yield* migrate([three!, one!, two!], { direction: "up", table })
          expect(applied).toEqual([
            { version: 1, name: "create-items" },
            { version: 2, name: "items-quantity" },
            { version: 3, name: "create-extras" }
          ])
          expect(yield* logged(prefix)).toEqual([1, 2, 3])
          expect(yield* migrate(migrationsFor(prefix), { direction: "up", table })).toEqual([])
          expect(yield* logged(prefix)).toEqual([1, 2, 3])
          const rows = yield* SqlDatabase.use((db) => db.query(`select version, name from ${table} order by version`))
          expect(rows).toEqual([
            { version: 1, name: "create-items" },
            { version: 2, name: "items-quantity" },
            { version: 3, name: "create-extras" }
          ])
        })))

      test("uses schema_migrations when no table is named", () =>
        run(Effect.gen(function*() {
          const prefix = fresh("default")
          // Version numbers no other case uses, since cases may share the table on a server.
          const migration = { ...migrationsFor(prefix)[0]!, version: 1_000_000 + Math.floor(Math.random() * 1_000_000) }
          expect(yield* migrate([migration], { direction: "up" })).toEqual([{ version: migration.version, name: "create-items" }])
          const rows = yield* SqlDatabase.use((db) =>
            db.query("select name from schema_migrations where version = $1", [migration.version])
          )
          expect(rows).toEqual([{ name: "create-items" }])
        })))

      test("down reverts only the latest applied migration by default", () =>
        run(Effect.gen(function*() {
          const prefix = fresh("down")
          const table = `${prefix}_migrations`
          const migrations = migrationsFor(prefix)
          yield* migrate(migrations, { direction: "up", table })
          expect(yield* migrate(migrations, { direction: "down", table })).toEqual([{ version: 3, name: "create-extras" }])
          expect(yield* relationExists(`${prefix}_extras`)).toBe(false)
          expect(yield* relationExists(`${prefix}_items`)).toBe(true)
          const versions = yield* SqlDatabase.use((db) => db.query(`select version from ${table} order by version`))
          expect(versions).toEqual([{ version: 1 }, { version: 2 }])
          expect(yield* migrate(migrations, { direction: "down", table, steps: 5 })).toEqual([
            { version: 2, name: "items-quantity" },
            { version: 1, name: "create-items" }
          ])
          expect(yield* relationExists(`${prefix}_items`)).toBe(false)
        })))

      test("two runners migrating up at once apply each migration exactly once", async () => {
        const prefix = fresh("race")
        const table = `${prefix}_migrations`
        const up = migrate(migrationsFor(prefix), { direction: "up", table })
        const race = Effect.all([up, up], { concurrency: "unbounded" }).pipe(
          Effect.flatMap(([first, second]) => logged(prefix).pipe(Effect.map((log) => ({ first, second, log }))))
        )
        const { first, second, log } = features.sharedDatabase
          // Two pools: the race happens between server sessions, as between replicas.
          ? await Promise.all([run(up), run(up)]).then(async ([first, second]) => ({ first, second, log: await run(logged(prefix)) }))
          : await run(race)
        expect([...first, ...second].map((step) => step.version).sort((a, b) => a - b)).toEqual([1, 2, 3])
        expect(log).toEqual([1, 2, 3])
      })

      test("refuses duplicate versions before touching the database", () =>
        run(Effect.gen(function*() {
          const prefix = fresh("dup")
          const table = `${prefix}_migrations`
          const [one, two] = migrationsFor(prefix)
          const error = yield* migrate([one!, { ...two!, version: 1 }], { direction: "up", table }).pipe(Effect.flip)
          expect(error).toBeInstanceOf(MigrationError)
          expect(error.message).toContain("duplicate migration version 1")
          expect(yield* relationExists(table)).toBe(false)
        })))

      test("refuses to run when an applied migration has another name in the code", () =>
        run(Effect.gen(function*() {
          const prefix = fresh("renamed")
          const table = `${prefix}_migrations`
          const [one, two] = migrationsFor(prefix)
          yield* migrate([one!], { direction: "up", table })
          const error = yield* migrate([{ ...one!, name: "make-items" }, two!], { direction: "up", table }).pipe(Effect.flip)
          expect(error).toBeInstanceOf(MigrationError)
          expect(error.message).toContain(`"create-items"`)
          expect(error.message).toContain(`"make-items"`)
          expect(yield* logged(prefix)).toEqual([1])
        })))
    })
  })
}
