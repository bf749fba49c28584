/**
 * The outbox admin's statements (src/outbox/admin.ts), one per operation.
 *
 * - Failed rows are listed with how many later rows of their aggregate they hold back (the
 *   relay claims an aggregate's lowest unpublished row only, src/outbox/sql.ts).
 * - A requeue only ever moves `failed` → `pending`; the NOTIFY trigger of the outbox table
 *   wakes the relays, so the admin needs no channel of its own.
 * - Purge and expiry delete in batches, each its own short transaction, oldest first through
 *   the partial `outbox_events_published` index and `idempotency_keys_created`; `skip locked`
 *   keeps them off rows another transaction holds.
 */

/** $1 aggregate id or null (any), $2 limit. Oldest first. */
export const listFailed = `
  select e.id::text as id, e.aggregate_type, e.aggregate_id, e.aggregate_seq::float8 as aggregate_seq,
         e.event_type, e.attempts, e.last_error, e.created_at,
         (select count(*)::int4 from outbox_events l
          where l.aggregate_type = e.aggregate_type and l.aggregate_id = e.aggregate_id
            and l.aggregate_seq > e.aggregate_seq and l.status <> 'published') as held_back
  from outbox_events e
  where e.status = 'failed' and ($1::text is null or e.aggregate_id = $1::text)
  order by e.created_at, e.position
  limit $2::int4`

/** $1 aggregate id or null (any). */
export const countFailed = `
  select count(*)::int4 as count from outbox_events
  where status = 'failed' and ($1::text is null or aggregate_id = $1::text)`

/**
 * The requeue. Attempts start again from 0, so the event gets its full retries; `last_error`
 * is kept so the listing still says why it failed until the relay publishes it (which clears
 * it) or records a new error.
 */
const requeue = (where: string) => `
  update outbox_events set status = 'pending', attempts = 0, next_attempt_at = $1::timestamptz
  where status = 'failed' and ${where}
  returning id::text as id, aggregate_type, aggregate_id, aggregate_seq::float8 as aggregate_seq`

/** $1 now, $2 event id. */
export const requeueById = requeue(`id = $2::uuid`)

/** $1 now, $2 aggregate id. */
export const requeueByAggregate = requeue(`aggregate_id = $2::text`)

/** $1 now. */
export const requeueAll = requeue(`true`)

/** $1 event id: its status, to explain a requeue that matched nothing. */
export const statusOf = `select status from outbox_events where id = $1::uuid`

/**
 * $1 cutoff (published before it goes), $2 batch size. Deletes one batch of published rows and
 * raises each touched aggregate's `last_seq` to the highest seq deleted, in the same statement,
 * so `insertEvent` never hands out a purged seq again. `greatest` keeps `last_seq` from moving
 * back when purges overlap. Returns how many rows went.
 */
export const purgePublished = `
  with doomed as (
    select id from outbox_events
    where status = 'published' and published_at < $1::timestamptz
    order by published_at
    limit $2::int4
    for update skip locked
  ), gone as (
    delete from outbox_events e using doomed d where e.id = d.id
    returning e.aggregate_type, e.aggregate_id, e.aggregate_seq
  ), marked as (
    insert into outbox_aggregate_seqs (aggregate_type, aggregate_id, last_seq)
    select aggregate_type, aggregate_id, max(aggregate_seq) from gone group by aggregate_type, aggregate_id
    on conflict (aggregate_type, aggregate_id)
      do update set last_seq = greatest(outbox_aggregate_seqs.last_seq, excluded.last_seq)
    returning 1
  )
  select count(*)::int4 as count from gone`

/** $1 cutoff (created before it goes), $2 batch size. Returns how many keys went. */
export const expireKeys = `
  with doomed as (
    select key from idempotency_keys
    where created_at < $1::timestamptz
    order by created_at
    limit $2::int4
    for update skip locked
  ), gone as (
    delete from idempotency_keys k using doomed d where k.key = d.key returning 1
  )
  select count(*)::int4 as count from gone`
