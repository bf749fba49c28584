/**
 * The outbox relay's statements (SPEC §2), one per state change, in the order a claim lives:
 * `claimBatch` → `markPublished` | `markRetry` | `markFailed`.
 *
 * Per-aggregate order. A claim takes, per aggregate, only its lowest unpublished row, and only
 * if that row is pending, due, and not locked by another worker; the row lock is held in the
 * claiming transaction until the publish is acknowledged and the row marked. So:
 * - a second worker (or relay process) sees the same lowest row, finds it locked and skips the
 *   whole aggregate: seq 2 cannot be claimed while seq 1 is in flight;
 * - an earlier row that is backing off (`next_attempt_at` later than now) holds its aggregate back;
 * - a worker whose snapshot still showed seq 1 pending when another committed it published
 *   re-checks the row under the lock (READ COMMITTED re-evaluates the WHERE on the new version)
 *   and drops it, so it never publishes seq 1 twice nor seq 2 early.
 *
 * A `failed` row blocks the later rows of its aggregate: they stay pending, unclaimed, until the
 * failed row is requeued (set back to pending) or discarded (deleted). Order is never violated,
 * at the cost of one stuck aggregate, which `txstream_events_in_queue{status="failed"}` shows.
 *
 * Holding the lock rather than leasing (`in_flight` + expiry) costs one connection per busy
 * worker, but a crashed relay releases its claims the moment its connection drops; a lease
 * would hold them until it expires.
 *
 * Cost: a claim reads about as many rows as it returns, however many are pending (migration
 * 2004's two partial indexes). It walks pending rows in `position` order
 * (`outbox_events_claim`; `claimSettings` keeps the planner from choosing otherwise) and, per
 * candidate past its aggregate's first event, probes its aggregate's unpublished rows for an
 * earlier one (`outbox_events_unpublished`), stopping at `limit` locked rows.
 * The first version picked each aggregate's lowest unpublished row with `distinct on` over every
 * unpublished row, then sorted: with 100 000 pending rows that was a sort of all of them per
 * claim (1.3 s measured), so a backlog made every claim slower just when speed mattered.
 * What it costs instead: rows skipped on the walk (locked by other workers, or held back behind
 * an earlier row of their aggregate) are read again by every claim until they move, so a claim
 * behind many held-back rows (one aggregate with a long backlog behind a failed row) reads them
 * all; and the two indexes are written on insert (`outbox_events_claim` also on a requeue).
 * Published rows leave both indexes as far as a claim is concerned: their old entries stay in
 * `outbox_events_claim` until VACUUM, but the first scan to pass them marks them dead, and
 * later claims skip them without reading the table (measured: with 90 000 rows just marked
 * published, one claim of 1 000 took 185 ms killing their entries, the next 7 ms, 18 ms after
 * VACUUM, on the loaded development machine).
 *
 * Time: `$now` parameters are the relay's `Clock`, so backoff is testable with `TestClock`.
 */
/**
 * An aggregate's first event (seq 1; migration 2005 checks seqs start there) has no earlier row
 * to look for, so it skips the probe: most orders have only their first event, and skipping
 * also spares the probe of rows other workers hold. Written as `or not exists`, the probe is a
 * subplan that reads the partial index alone; measured on 50 000 rows, a claim of 1 000 first
 * events took 1.4 ms instead of 31 ms, and of 1 000 second events 4.5–6.5 ms instead of 23–38 ms
 * (the same buffers read).
 *
 * $1 now (timestamptz), $2 batch size. The claimed rows, locked until the transaction ends, at
 * most one per aggregate, oldest first. Every column has a fixed type (text, or int4 for
 * `aggregate_seq` and `attempts`; `traceparent` text or null), so the relay reads them
 * without decoding. `row_ref` is the locked row version's `ctid`, for `markPublished`; of the
 * stored headers only a string `traceparent` is sent on.
 */
export const claimBatch = `
  select e.ctid::text as row_ref, e.id::text as id, e.aggregate_type, e.aggregate_id, e.aggregate_seq::int4 as aggregate_seq,
         e.event_type, e.payload::text as payload,
         case when jsonb_typeof(e.headers -> 'traceparent') = 'string' then e.headers ->> 'traceparent' end as traceparent,
         e.attempts
  from outbox_events e
  where e.status = 'pending' and e.next_attempt_at <= $1::timestamptz
    and (e.aggregate_seq = 1 or not exists (
      select 1 from outbox_events earlier
      where earlier.aggregate_type = e.aggregate_type and earlier.aggregate_id = e.aggregate_id
        and earlier.aggregate_seq < e.aggregate_seq and earlier.status <> 'published'
    ))
  order by e.position
  limit $2::int4
  for update of e skip locked`

/**
 * $1 the claimed rows' `row_ref`s (text[]), $2 now. By `ctid`, not id: a row this transaction
 * has locked cannot be updated, deleted or moved by anyone else until it ends (VACUUM leaves
 * live row versions where they are; VACUUM FULL and CLUSTER wait for the lock), so its ctid
 * still names it, and the update reads each row directly instead of probing the primary key
 * for it (measured: about a third less time for a batch of 1 000).
 */
export const markPublished = `
  update outbox_events set status = 'published', published_at = $2::timestamptz, last_error = null
  where ctid = any($1::text[]::tid[])`

/** $1 ids, $2 next attempt time, $3 error. Counts the failed attempt. */
export const markRetry = `
  update outbox_events set attempts = attempts + 1, next_attempt_at = $2::timestamptz, last_error = $3
  where id = any($1::text[]::uuid[])`

/**
 * $1 ids, $2 next attempt time, $3 error. A publish Kafka could not take (unreachable, no answer
 * in time): tried again later without counting an attempt, since the event is not at fault.
 */
export const markDeferred = `
  update outbox_events set next_attempt_at = $2::timestamptz, last_error = $3
  where id = any($1::text[]::uuid[])`

/** $1 ids, $2 error. Counts the last failed attempt; later rows of the aggregate now wait. */
export const markFailed = `
  update outbox_events set status = 'failed', attempts = attempts + 1, last_error = $2
  where id = any($1::text[]::uuid[])`

/** Rows by status, for the `txstream_events_in_queue` gauge. */
export const countByStatus = `select status, count(*)::int4 as count from outbox_events group by status`

/**
 * $1 now. When the earliest backing-off row falls due, so an idle worker wakes for it instead
 * of waiting out the whole poll interval.
 */
export const nextDue = `
  select min(next_attempt_at) as due from outbox_events where status = 'pending' and next_attempt_at > $1::timestamptz`

/**
 * Sent first in every claiming transaction, so the claim walks `outbox_events_claim` in
 * `position` order, whatever the statistics say (the relay sends it together with the claim:
 * statements of one transaction run in the order issued, so it costs no round trip).
 * When the statistics say few rows are pending, as they do for an outbox that keeps up, the
 * planner prefers a bitmap scan of `outbox_events_pending` and a sort. A bitmap scan cannot mark
 * index entries dead, so it reads every row that passed through the table since the last
 * VACUUM: measured in the latency benchmark at 2 000 events/s, 12 s in, a claim fetched 24 700
 * index entries and 2 650 heap pages and sorted them, to return 300 rows (26–130 ms on the loaded
 * development machine), growing until autovacuum ran; the walk, 13 ms, and it stops at `limit`.
 * Both settings are local to the transaction. `outbox_events_claim` always exists (migration
 * 2004), so the walk is always a plan the planner can take.
 */
export const claimSettings = `select set_config('enable_bitmapscan', 'off', true), set_config('enable_sort', 'off', true)`

/**
 * `claimSettings`, and this transaction's COMMIT answers without waiting for the WAL flush
 * (`RelayConfig.asyncCommit`).
 */
export const claimSettingsCommitWithoutFlush = `${claimSettings}, set_config('synchronous_commit', 'off', true)`
