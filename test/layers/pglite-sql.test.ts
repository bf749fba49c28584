import { expect, test } from "bun:test"
import * as Effect from "effect/Effect"
import * as PgliteSql from "../../layers/pglite/sql.ts"
import { SqlDatabase } from "../../src/capabilities/SqlDatabase.ts"
import { sqlContract } from "../contract/sql.ts"

sqlContract("pglite", () => PgliteSql.layer(), { sharedDatabase: false, readersWaitForTransactions: true })

// Later in-memory databases are copies of a fresh one: what an earlier one wrote is in none of them.
test("every in-memory database starts empty, however many the process opened before", async () => {
  const tablesAfterWriting = Effect.gen(function*() {
    const db = yield* SqlDatabase
    const before = yield* db.query<{ n: number }>("select count(*)::int as n from pg_tables where schemaname = 'public'")
    yield* db.query("create table written_here (id int)")
    yield* db.query("insert into written_here values (1)")
    return before[0]!.n
  }).pipe(Effect.provide(PgliteSql.layer()))
  const seen: Array<number> = []
  for (let i = 0; i < 4; i++) seen.push(await Effect.runPromise(tablesAfterWriting))
  expect(seen).toEqual([0, 0, 0, 0])
}, 60_000)
