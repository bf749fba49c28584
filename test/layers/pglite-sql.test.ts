import * as PgliteSql from "../../layers/pglite/sql.ts"
import { sqlContract } from "../contract/sql.ts"

sqlContract("pglite", () => PgliteSql.layer(), { sharedDatabase: false, readersWaitForTransactions: true })
