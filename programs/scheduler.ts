/**
 * The cron scheduler (SPEC §3): runs the registered jobs at their occurrences, each once across
 * every replica sharing its PostgreSQL, with per-job timeouts, retries, at most
 * WORKER_MAX_CONCURRENT_JOBS [10] at once, and run history. Settings: src/scheduler/config.ts;
 * the jobs and what they need: layers/schedulerJobs.ts.
 *
 * Store: DATABASE_URL or DB_* → PostgreSQL (replicas), PGLITE_DATA_DIR → embedded PGlite, else in
 * memory. SIGTERM stops triggering, lets running jobs finish within SHUTDOWN_TIMEOUT [30s] (less a
 * tenth), then interrupts them and records them as interrupted. The ops server adds GET /jobs,
 * the jobs page on GET /, and POST /jobs/:name/{trigger,pause,resume} behind OPS_TOKEN.
 *
 *   bun run programs/scheduler.ts
 */
import { runMain } from "../layers/platform/runMain.ts"
import { schedulerProgram } from "../layers/platform/schedulerProgram.ts"
import { schedulerJobs } from "../layers/schedulerJobs.ts"

runMain(schedulerProgram(schedulerJobs), { name: "scheduler" })
