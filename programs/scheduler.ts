/**
 * The cron scheduler (SPEC §3): runs the registered jobs at their occurrences, each once across
 * every replica sharing its PostgreSQL, with per-job timeouts, retries, at most
 * WORKER_MAX_CONCURRENT_JOBS [10] at once, and run history. Settings: src/scheduler/config.ts.
 *
 * Store: DATABASE_URL or DB_* → PostgreSQL (replicas), PGLITE_DATA_DIR → embedded PGlite, else in
 * memory. SIGTERM stops triggering, lets running jobs finish within SHUTDOWN_TIMEOUT [30s] (less a
 * tenth), then interrupts them and records them as interrupted.
 *
 *   bun run programs/scheduler.ts
 */
import { schedulerProgram } from "../layers/platform/schedulerProgram.ts"
import { runMain } from "../layers/platform/runMain.ts"
import { examples } from "../src/scheduler/jobs/examples.ts"

runMain(schedulerProgram(examples), { name: "scheduler" })
