/**
 * Builds the SQLite sales database the workers query (SPEC §5): 5 regions, PRODUCTS [100]
 * products in categories, SALES [10000] sales from FROM [2024-01-01] to TO [2024-12-31], in WAL
 * mode with the query's indexes, the same rows for the same SEED [42]. Refuses to replace an
 * existing DB_PATH [./database.db] unless --force.
 *
 *   bun run programs/sales-seed.ts [--seed 7] [--sales 1000000] [--db-path ./database.db] [--force]
 */
import { existsSync, rmSync } from "node:fs"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Sqlite from "../layers/sqlite/index.ts"
import { runMain } from "../layers/platform/runMain.ts"
import { configIssue, load, toConfigError } from "../src/runtime/config.ts"
import { dbPath, force, seedConfig } from "../src/sales/config.ts"
import { seedSales } from "../src/sales/seed.ts"

const program = Effect.gen(function*() {
  const path = yield* load(dbPath)
  const options = yield* load(seedConfig)
  if (existsSync(path)) {
    if (!(yield* load(force))) {
      return yield* Effect.fail(toConfigError(configIssue("DB_PATH", "a file that does not exist yet, or --force to replace it", `${path} exists`)))
    }
    for (const file of [path, `${path}-wal`, `${path}-shm`]) rmSync(file, { force: true })
  }
  const driver = yield* Sqlite.loadDriver
  const started = performance.now()
  // A large seed says how far it got about every tenth; the default one is over in a moment.
  let reported = 0
  const progress = (written: number, total: number) =>
    total >= 100_000 && written * 10 >= (reported + 1) * total
      ? Effect.sync(() => (reported = Math.floor((written * 10) / total))).pipe(
        Effect.andThen(Effect.log(`seeding: ${written} of ${total} sales written`))
      )
      : Effect.void
  const seeded = yield* Effect.scoped(Effect.flatMap(driver.open({ path, create: true }), (db) => seedSales(db, options, progress))).pipe(
    Effect.onError(() => Effect.sync(() => rmSync(path, { force: true })))
  )
  const seconds = ((performance.now() - started) / 1000).toFixed(2)
  yield* Console.log(
    `wrote ${path} (WAL, ${driver.name}): ${seeded.regions} regions, ${seeded.products} products, ${seeded.sales} sales ` +
      `from ${options.from} to ${options.to}, revenue ${(seeded.revenueCents / 100).toFixed(2)}, seed ${options.seed}, in ${seconds}s`
  )
})

runMain(program, { name: "sales-seed" })
