/**
 * The SQLite driver under Bun: `bun:sqlite`. Statements are prepared once per text and cached
 * for the life of the connection (the query runs the same few statements again and again).
 */
import { Database, type Statement } from "bun:sqlite"
import {
  makeDriver,
  type SqliteDriverShape,
  type SqliteOpenOptions,
  type SqliteParam,
  type SqliteStatements
} from "../../src/capabilities/SqliteDatabase.ts"

const connect = (options: SqliteOpenOptions): SqliteStatements => {
  const db = options.readOnly === true
    ? new Database(options.path, { readonly: true })
    : new Database(options.path, { readwrite: true, create: options.create === true })
  const cache = new Map<string, Statement>()
  const prepared = (text: string) => {
    let statement = cache.get(text)
    if (statement === undefined) cache.set(text, statement = db.prepare(text))
    return statement
  }
  const args = (params: ReadonlyArray<SqliteParam>) => params as Array<Exclude<SqliteParam, boolean>>
  return {
    all: (text, params) => prepared(text).all(...args(params)),
    run: (text, params) => prepared(text).run(...args(params)).changes,
    exec: (script) => db.run(script),
    close: () => {
      for (const statement of cache.values()) statement.finalize()
      cache.clear()
      db.close()
    }
  }
}

export const driver: SqliteDriverShape = makeDriver("bun:sqlite", connect)
