/**
 * The SQLite driver under Deno and Node (22.13+): `node:sqlite`. It creates a missing file even
 * when asked not to, so a missing file is refused here first.
 */
import { existsSync } from "node:fs"
import { DatabaseSync, type StatementSync } from "node:sqlite"
import {
  makeDriver,
  type SqliteDriverShape,
  type SqliteOpenOptions,
  type SqliteParam,
  type SqliteStatements
} from "../../src/capabilities/SqliteDatabase.ts"

const connect = (options: SqliteOpenOptions): SqliteStatements => {
  if (options.path !== ":memory:" && options.create !== true && !existsSync(options.path)) {
    throw new Error(`${options.path} does not exist`)
  }
  const db = new DatabaseSync(options.path, { readOnly: options.readOnly === true })
  const cache = new Map<string, StatementSync>()
  const prepared = (text: string) => {
    let statement = cache.get(text)
    if (statement === undefined) cache.set(text, statement = db.prepare(text))
    return statement
  }
  const args = (params: ReadonlyArray<SqliteParam>) => params as Array<Exclude<SqliteParam, boolean>>
  return {
    all: (text, params) => prepared(text).all(...args(params)),
    run: (text, params) => Number(prepared(text).run(...args(params)).changes),
    exec: (script) => db.exec(script),
    close: () => {
      cache.clear()
      db.close()
    }
  }
}

export const driver: SqliteDriverShape = makeDriver("node:sqlite", connect)
