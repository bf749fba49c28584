import { afterAll } from "bun:test"
import * as PostgresSql from "../../layers/postgres/sql.ts"
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
}
