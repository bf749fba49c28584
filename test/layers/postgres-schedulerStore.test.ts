import { afterAll } from "bun:test"
import * as Effect from "effect/Effect"
import * as PostgresSql from "../../layers/postgres/sql.ts"
import { SqlDatabase } from "../../src/capabilities/SqlDatabase.ts"
import * as SqlStore from "../../src/scheduler/sqlStore.ts"
import { schedulerStoreContract } from "../contract/schedulerStore.ts"
import { dropPostgresSchema, freshSchema, postgresUrl, probePostgres, requireServer } from "../support/servers.ts"

const url = postgresUrl()

if (await requireServer("PostgreSQL", probePostgres(url))) {
  const schemas: Array<string> = []
  afterAll(() => Promise.all(schemas.map((schema) => dropPostgresSchema(url, schema))))
  // A schema per case; each client is a pool of its own on it, as a replica would be.
  schedulerStoreContract(
    "postgres",
    Effect.sync(() => {
      const schema = freshSchema()
      schemas.push(schema)
      return () =>
        Effect.flatMap(PostgresSql.make({ url, schema, max: 3 }), (db) => SqlStore.make.pipe(Effect.provideService(SqlDatabase, db)))
    })
  )
}
