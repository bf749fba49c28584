import { describe } from "bun:test"
import * as PgliteSql from "../../layers/pglite/sql.ts"
import { migrationsSuite } from "./migrations.ts"

describe("orders migrations on PGlite", () => migrationsSuite(() => PgliteSql.layer()))
