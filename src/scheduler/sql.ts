/**
 * The scheduler's tables and statements (SPEC §3), one statement per state change of a run:
 * `claim` (or `skip`) → `renew`… → `complete` | `expire`; then, while a retry is due,
 * `claimRetry` → the next attempt's row.
 *
 * Exactly once across replicas. `scheduler_runs` is unique on (job, scheduled_at, trigger,
 * attempt): every replica computes the same occurrence instants (see schedule.ts), and the one
 * whose insert lands first runs it. A claim's few statements (is it taken? is the job still
 * running elsewhere?) run under a per-job transaction-scoped advisory lock, so two occurrences
 * of one job claimed at once by two replicas still see each other for the overlap check.
 * A batch (the occurrences due at one instant) takes its jobs' locks in key order and runs the
 * same steps once for all of them: a handful of statements for 200 jobs instead of 200 times.
 *
 * Leases instead of held row locks (unlike the outbox relay): a job may run for minutes, and a
 * lock would hold a connection per running job for that long. A replica that dies stops
 * renewing; once its lease has passed, another replica marks the run interrupted (`expire`) and,
 * if the job's retry policy allows, claims the next attempt (`claimRetry`). The retry claim
 * clears `retry_at` under the row lock, so it too is won by one replica only.
 *
 * Time: every `$now` is the scheduler's Clock, never the database's `now()`, so the store
 * follows TestClock in tests and one clock decides both when a lease ends and when it is read.
 */
import type { Migration } from "../sql/migrations.ts"

export const migrationsTable = "scheduler_migrations"

export const migrations: ReadonlyArray<Migration> = [
  {
    version: 4001,
    name: "scheduler-runs",
    up: `
      create table scheduler_runs (
        id bigint generated always as identity primary key,
        job text not null,
        scheduled_at timestamptz not null,
        trigger text not null check (trigger in ('schedule', 'manual')),
        attempt int not null check (attempt >= 1),
        instance text not null,
        started_at timestamptz not null,
        ended_at timestamptz,
        lease_until timestamptz,
        outcome text not null check (outcome in ('running', 'succeeded', 'failed', 'timed_out', 'skipped', 'interrupted')),
        error text,
        error_stack text,
        retry_at timestamptz,
        unique (job, scheduled_at, trigger, attempt),
        check ((outcome = 'running') = (lease_until is not null and ended_at is null))
      );
      create index scheduler_runs_running on scheduler_runs (lease_until) where outcome = 'running';
      create index scheduler_runs_retry on scheduler_runs (retry_at) where retry_at is not null;
      create index scheduler_runs_recent on scheduler_runs (job, started_at desc);
      create index scheduler_runs_ended on scheduler_runs (ended_at) where outcome <> 'running';
      create table scheduler_jobs (
        job text primary key,
        paused boolean not null default false,
        updated_at timestamptz not null
      );`,
    down: `drop table if exists scheduler_jobs; drop table if exists scheduler_runs;`
  }
]

const runColumns = `id::text as id, job, scheduled_at, trigger, attempt, instance, started_at, ended_at, lease_until,
  outcome, error, error_stack, retry_at`

/** $1 job. Serializes the claims of one job for the rest of the transaction. */
export const lockJob = `select pg_advisory_xact_lock(hashtext('queueworks/scheduler/' || $1::text))`

/** $1 job, $2 scheduled_at, $3 trigger. Whether the occurrence's first attempt exists. */
export const occurrenceTaken = `
  select 1 as taken from scheduler_runs
  where job = $1 and scheduled_at = $2::timestamptz and trigger = $3 and attempt = 1`

/**
 * $1 jobs (text[], distinct). The per-job locks of `lockJob` for a batch of claims, taken in
 * one order (the keys sorted) so two batches, or a batch and a single claim, cannot deadlock.
 * The subquery's DISTINCT keeps it from being flattened, so the locks follow its order.
 */
export const lockJobs = `
  select count(pg_advisory_xact_lock(k))::int4 as locked
  from (select distinct hashtext('queueworks/scheduler/' || job) as k from unnest($1::text[]) as job order by k) as keys`

/** $1 jobs, $2 scheduled_at (text[] of ISO times), $3 triggers. The 1-based positions whose first attempt exists. */
export const occurrencesTaken = `
  select t.i::int4 as i
  from unnest($1::text[], $2::text[]::timestamptz[], $3::text[]) with ordinality as t(job, scheduled_at, trigger, i)
  where exists (
    select 1 from scheduler_runs r
    where r.job = t.job and r.scheduled_at = t.scheduled_at and r.trigger = t.trigger and r.attempt = 1
  )`

/** $1 jobs (text[]), $2 now. Per job, its earliest run whose lease is still good. */
export const runningOfJobs = `
  select distinct on (job) ${runColumns} from scheduler_runs
  where job = any($1::text[]) and outcome = 'running' and lease_until > $2::timestamptz
  order by job, started_at`

/**
 * $1 jobs, $2 scheduled_at (text[] of ISO times), $3 triggers, $4 instance, $5 now,
 * $6 lease_until. `insertClaim` for many: a row for each occurrence not taken meanwhile.
 */
export const insertClaims = `
  insert into scheduler_runs (job, scheduled_at, trigger, attempt, instance, started_at, lease_until, outcome)
  select job, scheduled_at, trigger, 1, $4, $5::timestamptz, $6::timestamptz, 'running'
  from unnest($1::text[], $2::text[]::timestamptz[], $3::text[]) as t(job, scheduled_at, trigger)
  on conflict (job, scheduled_at, trigger, attempt) do nothing
  returning ${runColumns}`

/** $1 jobs, $2 scheduled_at (text[] of ISO times), $3 triggers, $4 instance, $5 now, $6 reasons. `insertSkip` for many. */
export const insertSkips = `
  insert into scheduler_runs (job, scheduled_at, trigger, attempt, instance, started_at, ended_at, outcome, error)
  select job, scheduled_at, trigger, 1, $4, $5::timestamptz, $5::timestamptz, 'skipped', reason
  from unnest($1::text[], $2::text[]::timestamptz[], $3::text[], $6::text[]) as t(job, scheduled_at, trigger, reason)
  on conflict (job, scheduled_at, trigger, attempt) do nothing`

/** $1 job, $2 now. A run of the job whose lease is still good. */
export const runningOf = `
  select ${runColumns} from scheduler_runs
  where job = $1 and outcome = 'running' and lease_until > $2::timestamptz
  order by started_at limit 1`

/**
 * $1 job, $2 scheduled_at, $3 trigger, $4 instance, $5 now, $6 lease_until. The first attempt,
 * running; no row when the occurrence was taken.
 */
export const insertClaim = `
  insert into scheduler_runs (job, scheduled_at, trigger, attempt, instance, started_at, lease_until, outcome)
  values ($1, $2::timestamptz, $3, 1, $4, $5::timestamptz, $6::timestamptz, 'running')
  on conflict (job, scheduled_at, trigger, attempt) do nothing
  returning ${runColumns}`

/** $1 job, $2 scheduled_at, $3 trigger, $4 instance, $5 now, $6 reason. No row when taken. */
export const insertSkip = `
  insert into scheduler_runs (job, scheduled_at, trigger, attempt, instance, started_at, ended_at, outcome, error)
  values ($1, $2::timestamptz, $3, 1, $4, $5::timestamptz, $5::timestamptz, 'skipped', $6)
  on conflict (job, scheduled_at, trigger, attempt) do nothing
  returning id`

/** $1 ids (text[]), $2 instance, $3 lease_until. One statement for all of a replica's runs. */
export const renew = `
  update scheduler_runs set lease_until = $3::timestamptz
  where id = any($1::text[]::int8[]) and instance = $2 and outcome = 'running'
  returning id::text as id`

/** $1 id, $2 instance, $3 outcome, $4 now, $5 error, $6 error_stack, $7 retry_at. */
export const complete = `
  update scheduler_runs
  set outcome = $3, ended_at = $4::timestamptz, lease_until = null, error = $5, error_stack = $6, retry_at = $7::timestamptz
  where id = $1::int8 and instance = $2 and outcome = 'running'
  returning id`

/** $1 now, $2 limit. */
export const expiredLeases = `
  select ${runColumns} from scheduler_runs
  where outcome = 'running' and lease_until < $1::timestamptz
  order by lease_until limit $2::int4`

/** $1 id, $2 now, $3 retry_at. Re-checked under the row lock: one caller wins. */
export const expire = `
  update scheduler_runs
  set outcome = 'interrupted', ended_at = $2::timestamptz,
      error = 'lease expired at ' || to_char(lease_until at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
        || ': instance ' || instance || ' stopped renewing it',
      lease_until = null, retry_at = $3::timestamptz
  where id = $1::int8 and outcome = 'running' and lease_until < $2::timestamptz
  returning id`

/** $1 now, $2 limit. */
export const dueRetries = `
  select ${runColumns} from scheduler_runs
  where retry_at is not null and retry_at <= $1::timestamptz
  order by retry_at limit $2::int4`

/** $1 id, $2 now. Takes the due retry off the previous attempt; one caller gets the row. */
export const takeRetry = `
  update scheduler_runs set retry_at = null
  where id = $1::int8 and retry_at is not null and retry_at <= $2::timestamptz
  returning job, scheduled_at, trigger, attempt`

/** $1 job, $2 scheduled_at, $3 trigger, $4 attempt, $5 instance, $6 now, $7 lease_until. */
export const insertAttempt = `
  insert into scheduler_runs (job, scheduled_at, trigger, attempt, instance, started_at, lease_until, outcome)
  values ($1, $2::timestamptz, $3, $4::int4, $5, $6::timestamptz, $7::timestamptz, 'running')
  on conflict (job, scheduled_at, trigger, attempt) do nothing
  returning ${runColumns}`

/** $1 job. */
export const lastOccurrence = `
  select max(scheduled_at) as last from scheduler_runs where job = $1 and trigger = 'schedule'`

/** $1 job, $2 limit. */
export const recentRuns = `
  select ${runColumns} from scheduler_runs where job = $1 order by started_at desc, id desc limit $2::int4`

/** $1 cut-off. A run whose retry is still due stays: it is the only record the retry is owed. */
export const prune = `
  with deleted as (
    delete from scheduler_runs where outcome <> 'running' and ended_at < $1::timestamptz and retry_at is null returning 1
  )
  select count(*)::int4 as deleted from deleted`

/** $1 job, $2 paused, $3 now. */
export const setPaused = `
  insert into scheduler_jobs (job, paused, updated_at) values ($1, $2::boolean, $3::timestamptz)
  on conflict (job) do update set paused = excluded.paused, updated_at = excluded.updated_at`

export const paused = `select job from scheduler_jobs where paused`
