/**
 * Every system's migrations, by name, for `programs/migrate.ts`.
 */
import * as Counter from "../counter/sql.ts"
import * as Orders from "../orders/sql.ts"
import * as OrderEvents from "../orders/readModelSql.ts"
import * as Scheduler from "../scheduler/sql.ts"
import * as Sessions from "../sessions/sql.ts"
import type { Migration } from "./migrations.ts"

export interface SystemMigrations {
  readonly table: string
  readonly migrations: ReadonlyArray<Migration>
}

export const systems: Readonly<Record<string, SystemMigrations>> = {
  counter: { table: Counter.migrationsTable, migrations: Counter.migrations },
  orders: { table: Orders.migrationsTable, migrations: Orders.migrations },
  "order-events": { table: OrderEvents.migrationsTable, migrations: OrderEvents.migrations },
  scheduler: { table: Scheduler.migrationsTable, migrations: Scheduler.migrations },
  sessions: { table: Sessions.migrationsTable, migrations: Sessions.migrations }
}
