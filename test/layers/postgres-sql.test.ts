import { afterAll, describe, expect, test } from "bun:test"
import * as Effect from "effect/Effect"
import * as PostgresSql from "../../layers/postgres/sql.ts"
import { SqlDatabase } from "../../src/capabilities/SqlDatabase.ts"
import { sqlContract } from "../contract/sql.ts"
import { dropPostgresSchema, freshSchema, postgresUrl, probePostgres, requireServer } from "../support/servers.ts"

const url = postgresUrl()

if (await requireServer("PostgreSQL", probePostgres(url))) {
  // One schema per run: cases share it (their names never collide) and it goes away at the end.
  const schema = freshSchema()
  afterAll(() => dropPostgresSchema(url, schema))
  sqlContract("postgres", () => PostgresSql.layer({ url, schema, max: 4 }), {
    sharedDatabase: true,
    readersWaitForTransactions: false
  })

  describe("postgres SqlDatabase: statements", () => {
    test("a statement with parameters is prepared once per connection and planned for its values every time", async () => {
      const table = `prepared_${crypto.randomUUID().replaceAll("-", "").slice(0, 10)}`
      // PostgreSQL gives this one a generic plan from its sixth execution on, when allowed to.
      const lookup = `select note from ${table} where id = $1`
      const prepared = await Effect.runPromise(Effect.gen(function*() {
        const db = yield* SqlDatabase
        yield* db.query(`create table ${table} (id int primary key, note text)`)
        // One connection: a transaction's statements all run on the one it reserved.
        return yield* db.transaction((tx) =>
          Effect.gen(function*() {
            for (let i = 0; i < 10; i++) yield* tx.query(lookup, [i])
            return yield* tx.query<{ generic_plans: string; custom_plans: string }>(
              "select generic_plans::text, custom_plans::text from pg_prepared_statements where statement = $1",
              [lookup]
            )
          })
        )
      }).pipe(Effect.provide(PostgresSql.layer({ url, schema, max: 2 }))))
      // Prepared (one statement, executed ten times), and never given a generic plan: one made
      // for a table as it was then (the outbox's mark, first run on an empty table, kept a
      // sequential scan) is kept however the table grows.
      expect(prepared).toEqual([{ generic_plans: "0", custom_plans: "10" }])
    })
  })
}
