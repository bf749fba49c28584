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
import * as Schema from "effect/Schema"
import * as Scope from "effect/Scope"
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

/**
 * Three migrations that record each application in a log, so a double apply shows. `slow` holds
 * the first one open a while before it creates anything, so two runners started together are
 * both inside it at once unless something makes one wait.
 */
const migrationsFor = (prefix: string, options: { readonly slow?: boolean } = {}): Array<Migration> => [
  {
    version: 1,
    name: "create-items",
    up: `${options.slow ? "select pg_sleep(0.3);" : ""}
         create table ${prefix}_log (seq serial primary key, version int not null);
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

    test("reads int8, numeric, timestamptz, jsonb, bytea and the common types as the same JS values", () =>
      run(Effect.gen(function*() {
        const db = yield* SqlDatabase
        const columns = `9007199254740993::int8 as big, 5::int8 as small_big, count(*) as counted, 12.50::numeric as amount,
          1.5::float8 as ratio, 2.5::float4 as half, 3::int2 as tiny, 'v'::varchar(4) as code, '2024-01-02T03:04:05.678+02'::timestamptz as at,
          '{"a": 1, "b": [true, null], "s": "x"}'::jsonb as doc, '"just text"'::jsonb as doc_string, '[1, 2]'::json as list,
          '\\x00ff10'::bytea as bytes, 42::int4 as small, 'ü'::text as word, true as yes, false as no,
          'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11'::uuid as id, null::text as nothing,
          array['a', 'b,c', null, 'NULL', '', 'q"\\']::text[] as words, '{}'::text[] as no_words`
        const expected = {
          big: 9007199254740993n,
          small_big: 5n,
          counted: 1n,
          amount: "12.50",
          ratio: 1.5,
          half: 2.5,
          tiny: 3,
          code: "v",
          at: new Date("2024-01-02T01:04:05.678Z"),
          doc: { a: 1, b: [true, null], s: "x" },
          doc_string: "just text",
          list: [1, 2],
          bytes: new Uint8Array([0, 255, 16]),
          small: 42,
          word: "ü",
          yes: true,
          no: false,
          id: "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
          nothing: null,
          words: ["a", "b,c", null, "NULL", "", "q\"\\"],
          no_words: []
        }
        // Without parameters the text goes over the simple protocol, with them the extended one.
        const [simple] = yield* db.query(`select ${columns}`)
        const [extended] = yield* db.query(`select ${columns} where $1::int4 = 1`, [1])
        const [inTx] = yield* db.transaction((tx) => tx.query(`select ${columns} where $1::int4 = 1`, [1]))
        for (const row of [simple, extended, inTx]) {
          expect(row).toEqual(expected)
          // toEqual alone would let a Buffer pass for a Uint8Array.
          expect(Object.getPrototypeOf(row!["bytes"])).toBe(Uint8Array.prototype)
          expect(row!["at"]).toBeInstanceOf(Date)
        }
      })))

    test("binds bigint, Date, Uint8Array, JSON values and text[] parameters the same way", () =>
      run(Effect.gen(function*() {
        const db = yield* SqlDatabase
        const table = fresh("values")
        yield* db.query(
          `create table ${table} (n int primary key, big int8, amount numeric, at timestamptz, doc jsonb, bytes bytea, words text[], id uuid, yes boolean)`
        )
        const at = new Date("2024-02-29T23:59:59.999Z")
        const insert = `insert into ${table} (n, big, amount, at, doc, bytes, words, id, yes) values ($1, $2, $3, $4, $5, $6, $7, $8, $9)`
        yield* db.query(insert, [
          1,
          -9007199254740993n,
          "12345678901234567890.123456789",
          at,
          { nested: { list: [1, "two", null] }, "quote\"": "ü" },
          new Uint8Array([0, 1, 254, 255]),
          ["a", null, "b,c", "NULL"],
          "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
          true
        ])
        // A string is sent as its text: bound to jsonb it must be JSON, and it is parsed, not wrapped.
        yield* db.query(insert, [2, 7, 0.5, at.toISOString(), JSON.stringify({ from: "text" }), new Uint8Array(), [], null, false])
        yield* db.transaction((tx) => tx.query(insert, [3, 0n, "1", at, [1, { two: 2 }], null, null, null, null]))
        const rows = yield* db.query(`select big, amount, at, doc, bytes, words, id, yes from ${table} order by n`)
        expect(rows).toEqual([
          {
            big: -9007199254740993n,
            amount: "12345678901234567890.123456789",
            at,
            doc: { nested: { list: [1, "two", null] }, "quote\"": "ü" },
            bytes: new Uint8Array([0, 1, 254, 255]),
            words: ["a", null, "b,c", "NULL"],
            id: "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
            yes: true
          },
          { big: 7n, amount: "0.5", at, doc: { from: "text" }, bytes: new Uint8Array(), words: [], id: null, yes: false },
          { big: 0n, amount: "1", at, doc: [1, { two: 2 }], bytes: null, words: null, id: null, yes: null }
        ])
        // The server compares the bound values with the stored ones, not JS.
        const matched = yield* db.query<{ n: number }>(
          `select n from ${table} where big = $1 and at = $2 and bytes = $3 and doc = $4 order by n`,
          [-9007199254740993n, at, new Uint8Array([0, 1, 254, 255]), { "quote\"": "ü", nested: { list: [1, "two", null] } }]
        )
        expect(matched).toEqual([{ n: 1 }])
      })))

    test("queryAs decodes rows with a schema, and a row that does not match names its column", () =>
      run(Effect.gen(function*() {
        const db = yield* SqlDatabase
        const table = fresh("decode")
        yield* db.query(`create table ${table} (id int primary key, note text, amount numeric not null, seen int8 not null)`)
        yield* db.query(`insert into ${table} values (1, 'one', 1.25, 10), (2, 'two', 2, 20)`)
        const Item = Schema.Struct({
          id: Schema.Number,
          note: Schema.String,
          amount: Schema.NumberFromString,
          seen: Schema.BigInt
        })
        const select = `select id, note, amount, seen from ${table} where id >= $1 order by id`
        const expected = [{ id: 1, note: "one", amount: 1.25, seen: 10n }, { id: 2, note: "two", amount: 2, seen: 20n }]
        expect(yield* db.queryAs(Item, select, [1])).toEqual(expected)
        expect(yield* db.transaction((tx) => tx.queryAs(Item, select, [1]))).toEqual(expected)

        yield* db.query(`update ${table} set note = null where id = 2`)
        const error = yield* db.queryAs(Item, select, [1]).pipe(Effect.flip)
        expect(error).toBeInstanceOf(SqlError)
        expect(error.operation).toBe("decode rows")
        expect(error.cause).toBeInstanceOf(Schema.SchemaError)
        // Row 1 (the second), column note: the message says where and why.
        expect(error.message).toContain(`[1]["note"]`)
        expect(error.message).toContain("Expected string")
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

    test("commitAfter commits with its statement and returns its rows; the transaction is over after it", () =>
      run(Effect.gen(function*() {
        const db = yield* SqlDatabase
        const table = fresh("commitafter")
        yield* createTable(table)
        const [rows, after] = yield* db.transaction((tx) =>
          Effect.gen(function*() {
            yield* tx.query(`insert into ${table} (id) values (1)`)
            const rows = yield* tx.commitAfter<{ id: number }>(`insert into ${table} (id) values (2) returning id`)
            const after = yield* tx.query(`insert into ${table} (id) values (3)`).pipe(Effect.flip)
            return [rows, after] as const
          })
        )
        expect(rows).toEqual([{ id: 2 }])
        expect(after).toBeInstanceOf(SqlError)
        expect(yield* count(table)).toBe(2)
        // The connection (or PGlite's session) came back usable, outside any transaction.
        yield* db.transaction((tx) => tx.query(`insert into ${table} (id) values (4)`))
        expect(yield* count(table)).toBe(3)
      })))

    test("commitAfter whose statement fails rolls back the whole transaction and fails with the statement's error", () =>
      run(Effect.gen(function*() {
        const db = yield* SqlDatabase
        const table = fresh("commitafterfail")
        yield* createTable(table)
        const error = yield* db.transaction((tx) =>
          Effect.andThen(
            tx.query(`insert into ${table} (id) values (1)`),
            tx.commitAfter(`insert into ${table} (id) values (1)`)
          )
        ).pipe(Effect.flip)
        expect(error).toBeInstanceOf(SqlError)
        expect((error as SqlError).code).toBe("23505")
        expect(yield* count(table)).toBe(0)
        yield* db.transaction((tx) => tx.commitAfter(`insert into ${table} (id) values (5)`))
        expect(yield* count(table)).toBe(1)
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

    test("subscribe succeeds once listening: a NOTIFY sent right after it is heard, and closing one subscription leaves the others", () =>
      run(Effect.gen(function*() {
        const db = yield* SqlDatabase
        const channel = fresh("Sub")
        const first = yield* Scope.make()
        const second = yield* Scope.make()
        const one = yield* db.subscribe(channel).pipe(Scope.provide(first))
        // No pinging: subscribe answered, so the session listens now.
        yield* db.notify(channel, "a")
        expect(yield* one.pipe(Stream.take(1), Stream.runCollect, Effect.timeout("10 seconds"))).toEqual(["a"])
        const two = yield* db.subscribe(channel).pipe(Scope.provide(second))
        yield* Scope.close(first, Exit.void)
        yield* db.notify(channel, "b")
        expect(yield* two.pipe(Stream.take(1), Stream.runCollect, Effect.timeout("10 seconds"))).toEqual(["b"])
        yield* Scope.close(second, Exit.void)
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

      test(
        features.sharedDatabase
          ? "two runners on separate connection pools migrating up at once apply each migration exactly once"
          : "two runners on one database migrating up at once apply each migration exactly once (its single session serialises them)",
        () =>
          Effect.runPromise(Effect.scoped(Effect.gen(function*() {
            const prefix = fresh("race")
            const table = `${prefix}_migrations`
            // On a server, two pools are two replicas: only the advisory lock keeps them apart.
            const first = yield* Layer.build(makeLayer())
            const second = features.sharedDatabase ? yield* Layer.build(makeLayer()) : first
            const up = migrate(migrationsFor(prefix, { slow: true }), { direction: "up", table })
            const [a, b] = yield* Effect.all([Effect.provide(up, first), Effect.provide(up, second)], { concurrency: "unbounded" })
            expect([...a, ...b].map((step) => step.version).sort((x, y) => x - y)).toEqual([1, 2, 3])
            expect(yield* logged(prefix).pipe(Effect.provide(first))).toEqual([1, 2, 3])
          })))
      )

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
