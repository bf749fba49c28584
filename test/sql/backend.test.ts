import { describe, expect, test } from "bun:test"
import * as Effect from "effect/Effect"
import { SqlError } from "../../src/capabilities/SqlDatabase.ts"
import { checkCommitted, quoteIdent, sqlError } from "../../src/sql/backend.ts"

describe("sql backend helpers", () => {
  test("quoteIdent keeps case and doubles quotes", () => {
    expect(quoteIdent("Mixed")).toBe(`"Mixed"`)
    expect(quoteIdent(`a"b; drop`)).toBe(`"a""b; drop"`)
  })

  test("sqlError keeps a server's SQLSTATE and never takes a socket error's code for one", () => {
    const server = sqlError("insert")({ code: "23505", severity: "ERROR", message: "duplicate key" })
    expect(server).toBeInstanceOf(SqlError)
    expect(server.operation).toBe("insert")
    expect(server.code).toBe("23505")
    // Five capitals, like a SQLSTATE, but from the socket: no severity.
    expect(sqlError("query")(Object.assign(new Error("broken pipe"), { code: "EPIPE" })).code).toBeUndefined()
    expect(sqlError("query")(Object.assign(new Error("refused"), { code: "ECONNREFUSED" })).code).toBeUndefined()
    expect(sqlError("query")("text").message).toBe("query failed: text")
  })

  test("checkCommitted refuses a COMMIT that answered ROLLBACK", async () => {
    const failed = await Effect.runPromise(Effect.flip(checkCommitted("ROLLBACK")))
    expect(failed.operation).toBe("commit")
    expect(failed.code).toBe("25P02")
    expect(await Effect.runPromise(checkCommitted("COMMIT"))).toBeUndefined()
  })
})
