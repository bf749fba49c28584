/**
 * The SqliteDatabase contract on the runtime's driver (bun:sqlite here), and the same checks
 * under Deno (node:sqlite) by running `test/fixtures/sqlite-contract.ts` there.
 */
import { describe, expect, test } from "bun:test"
import { existsSync, mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as Effect from "effect/Effect"
import * as Sqlite from "../../layers/sqlite/index.ts"
import { sqliteContract } from "../fixtures/sqlite-contract.ts"
import { requireServer } from "../support/servers.ts"

const root = join(import.meta.dir, "..", "..")

describe("SqliteDatabase on Bun", () => {
  test("the runtime's driver is bun:sqlite", async () => {
    expect((await Effect.runPromise(Sqlite.loadDriver)).name).toBe("bun:sqlite")
  })

  test("passes the contract", async () => {
    const dir = mkdtempSync(join(tmpdir(), "sqlite-contract-"))
    const checked = await Effect.runPromise(sqliteContract(join(dir, "contract.db")))
    expect(checked).toEqual({ driver: "bun:sqlite", checked: sqliteContractCases })
  })
})

const sqliteContractCases = [
  "missing file refused",
  "values round-trip",
  "queryAs decodes",
  "queryAs names the bad column",
  "transaction commits",
  "transaction rolls back",
  "read-only refuses writes",
  "read-only reads"
]

const deno = join(root, ".services", "deno", "node_modules", ".bin", "deno")
const denoInstalled = await requireServer("Deno (install it with scripts/deno.sh)", async () => {
  if (!existsSync(deno)) throw new Error(`${deno} does not exist`)
})

describe.if(denoInstalled)("SqliteDatabase under Deno", () => {
  test("node:sqlite passes the same contract", async () => {
    const dir = mkdtempSync(join(tmpdir(), "sqlite-deno-"))
    const proc = Bun.spawn(
      [deno, "run", "-A", "--node-modules-dir=manual", join(root, "test", "fixtures", "sqlite-contract.ts"), join(dir, "contract.db")],
      { cwd: root, stdout: "pipe", stderr: "pipe" }
    )
    const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited])
    expect({ code, stderr }).toEqual({ code: 0, stderr: "" })
    expect(JSON.parse(stdout)).toEqual({ driver: "node:sqlite", checked: sqliteContractCases })
  }, 60_000)
})
