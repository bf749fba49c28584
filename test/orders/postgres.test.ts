/**
 * The orders migrations and API on a real PostgreSQL, each case in a schema of its own; and what
 * only a server can show: two requests with one Idempotency-Key racing on two connections.
 */
import { afterAll, describe, expect, test } from "bun:test"
import * as PostgresSql from "../../layers/postgres/sql.ts"
import { dropPostgresSchema, freshSchema, postgresUrl, probePostgres, requireServer } from "../support/servers.ts"
import { migrationsSuite } from "./migrations.ts"
import { happyPath, harness, validOrder } from "./suite.ts"

const url = postgresUrl()

if (await requireServer("PostgreSQL", probePostgres(url))) {
  const schemas: Array<string> = []
  const schema = () => {
    const name = freshSchema()
    schemas.push(name)
    return name
  }
  afterAll(() => Promise.all(schemas.map((name) => dropPostgresSchema(url, name))))

  describe("orders migrations on PostgreSQL", () => {
    const name = schema()
    migrationsSuite(() => PostgresSql.layer({ url, schema: name, max: 2 }))
  })

  describe("orders API on PostgreSQL", () => {
    happyPath(() => harness(PostgresSql.layer({ url, schema: schema(), max: 4 })))
  })

  describe("orders API on PostgreSQL: one Idempotency-Key, concurrent requests", () => {
    test("many requests racing with one key create one order and all get its response", async () => {
      const h = await harness(PostgresSql.layer({ url, schema: schema(), max: 8 }))
      try {
        const key = crypto.randomUUID()
        const responses = await Promise.all(Array.from({ length: 8 }, () => h.post(validOrder, { "idempotency-key": key })))
        const bodies = await Promise.all(responses.map((response) => response.text()))
        expect(responses.map((response) => response.status)).toEqual(Array(8).fill(201))
        expect(new Set(bodies).size).toBe(1)
        expect(await h.counts()).toEqual({ orders: 1, items: 2, events: 1, keys: 1 })
        // Exactly one of them did the work: the others say they are replays.
        expect(responses.filter((response) => response.headers.get("idempotent-replayed") === null).length).toBe(1)
      } finally {
        await h.close()
      }
    }, 30_000)
  })
}
