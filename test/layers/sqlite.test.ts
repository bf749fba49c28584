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

test("a read waits for the lock another process holds instead of failing with SQLITE_BUSY", async () => {
  const dir = mkdtempSync(join(tmpdir(), "sqlite-busy-"))
  const file = join(dir, "busy.db")
  await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
    const driver = yield* Sqlite.loadDriver
    const db = yield* driver.open({ path: file, create: true })
    // A rollback journal: a writer's exclusive lock keeps readers out (WAL would let them read).
    yield* db.exec("PRAGMA journal_mode=DELETE; CREATE TABLE t (n INTEGER); INSERT INTO t VALUES (1)")
  })))
  // Another process takes the exclusive lock and holds it for a second.
  const holder = Bun.spawn([process.execPath, "-e", `
    const { Database } = require("bun:sqlite")
    const db = new Database(${JSON.stringify(file)})
    db.run("BEGIN EXCLUSIVE")
    db.run("INSERT INTO t VALUES (2)")
    console.log("locked")
    setTimeout(() => { db.run("COMMIT"); db.close() }, 1000)
  `], { stdout: "pipe", stderr: "inherit" })
  const reader = holder.stdout.getReader()
  expect(new TextDecoder().decode((await reader.read()).value)).toContain("locked")
  const rows = await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
    const db = yield* (yield* Sqlite.loadDriver).open({ path: file, readOnly: true })
    return yield* db.query<{ n: number }>("SELECT count(*) AS n FROM t")
  })))
  // It waited for the commit: it sees the holder's row.
  expect(rows).toEqual([{ n: 2 }])
  expect(await holder.exited).toBe(0)
})

const sqliteContractCases = [
  "missing file refused",
  "values round-trip",
  "queryAs decodes",
  "queryAs names the bad column",
  "transaction commits",
  "transaction rolls back",
  "read-only refuses writes",
  "read-only reads",
  "waits for locks"
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
