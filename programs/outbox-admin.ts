/**
 * The outbox admin: list and requeue failed events, purge published ones, expire idempotency
 * keys (src/outbox/admin.ts). `--help` lists the commands.
 *
 *   bun run programs/outbox-admin.ts failed [--aggregate ID] [--limit N] [--json]
 *   bun run programs/outbox-admin.ts requeue <event-id> | --aggregate ID | --all-failed
 *   bun run programs/outbox-admin.ts purge [--retention 7d] [--batch-size 1000]
 *   bun run programs/outbox-admin.ts expire-keys [--retention 24h]
 *
 * Database: DATABASE_URL or DB_* → PostgreSQL, else embedded PGlite (PGLITE_DATA_DIR). The
 * orders migrations run first, as in the API and the relay.
 */
import process from "node:process"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Database from "../layers/database.ts"
import { runMain } from "../layers/platform/runMain.ts"
import * as Admin from "../src/outbox/admin.ts"
import { type Command, parseArgs, renderDeleted, renderFailed, renderRequeued, usage } from "../src/outbox/adminCli.ts"
import { keyRetention, outboxRetention } from "../src/outbox/adminConfig.ts"
import * as Orders from "../src/orders/sql.ts"
import { load } from "../src/runtime/config.ts"
import { migrate } from "../src/sql/migrations.ts"

const run = (command: Command) => {
  switch (command._tag) {
    case "Failed":
      return Effect.map(Admin.listFailed(command), (listing) => renderFailed(listing, command.json))
    case "Requeue":
      return Effect.map(Admin.requeue(command.target), (events) => renderRequeued(events, command.json))
    case "Purge":
      return Effect.gen(function*() {
        const retention = command.retention ?? (yield* load(outboxRetention))
        const result = yield* Admin.purgePublished({ retention, batchSize: command.batchSize })
        return renderDeleted("published outbox events", retention, result, command.json)
      })
    case "ExpireKeys":
      return Effect.gen(function*() {
        const retention = command.retention ?? (yield* load(keyRetention))
        const result = yield* Admin.expireKeys({ retention, batchSize: command.batchSize })
        return renderDeleted("idempotency keys", retention, result, command.json)
      })
  }
}

const parsed = parseArgs(process.argv.slice(2))
if (parsed._tag === "Help") {
  process.stdout.write(`${usage}\n`)
} else if (parsed._tag === "Usage") {
  process.stderr.write(`outbox-admin: ${parsed.message}\nRun outbox-admin --help for the commands and their options.\n`)
  process.exitCode = 2
} else {
  runMain(
    Effect.gen(function*() {
      const database = yield* load(Database.config)
      yield* Effect.gen(function*() {
        yield* migrate(Orders.migrations, { direction: "up", table: Orders.migrationsTable })
        yield* Console.log(yield* run(parsed.command))
      }).pipe(Effect.provide(Database.layer(database)))
    }),
    { name: "outbox-admin" }
  )
}
