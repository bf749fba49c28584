/**
 * The orders system's tables and statements (SPEC §2).
 *
 * Money is integer cents (`bigint`): sums are exact in SQL and in JavaScript (a safe integer),
 * and the API turns cents into a number only when it answers, so 0.1 × 3 + 0.2 is 0.5, never
 * 0.5000000000000001.
 *
 * The outbox is read by the relay (a later slice); its shape is fixed here:
 * - `position` (identity) is the global write order, `aggregate_seq` the order within one
 *   aggregate (unique with the aggregate), so a relay can hold back an event while an earlier
 *   one of the same aggregate is unpublished.
 * - `outbox_events_pending` holds pending rows by `next_attempt_at` (the relay's next backoff to
 *   wake for); the claim's indexes came with migration 2004.
 * - A row trigger NOTIFYs `outbox_events` when a row becomes pending (insert, or a requeue that
 *   sets status back): every writer wakes the relay, not only this API. The payload is constant
 *   so PostgreSQL folds the notifications of one transaction into one, sent at commit.
 */
import type { Migration } from "../sql/migrations.ts"

export const migrationsTable = "orders_migrations"

/** The channel the outbox trigger notifies. */
export const outboxChannel = "outbox_events"

export const migrations: ReadonlyArray<Migration> = [
  {
    version: 2001,
    name: "orders-tables",
    up: `
      create table orders (
        id uuid primary key,
        customer_id text not null,
        total_cents bigint not null check (total_cents >= 0),
        created_at timestamptz not null default now()
      );
      create index orders_customer on orders (customer_id, created_at);
      create table order_items (
        order_id uuid not null references orders (id) on delete cascade,
        line int not null,
        sku text not null,
        quantity int not null check (quantity > 0),
        unit_price_cents bigint not null check (unit_price_cents >= 0),
        primary key (order_id, line)
      );
      create table idempotency_keys (
        key text primary key,
        request_hash text not null,
        response_status int not null,
        response_body text not null,
        created_at timestamptz not null default now()
      );`,
    down: `drop table if exists idempotency_keys; drop table if exists order_items; drop table if exists orders;`
  },
  {
    version: 2002,
    name: "outbox-events",
    up: `
      create table outbox_events (
        id uuid primary key default gen_random_uuid(),
        position bigint generated always as identity unique,
        aggregate_type text not null,
        aggregate_id text not null,
        aggregate_seq bigint not null,
        event_type text not null,
        payload jsonb not null,
        headers jsonb not null default '{}'::jsonb,
        status text not null default 'pending' check (status in ('pending', 'published', 'failed')),
        attempts int not null default 0 check (attempts >= 0),
        next_attempt_at timestamptz not null default now(),
        last_error text,
        created_at timestamptz not null default now(),
        published_at timestamptz,
        unique (aggregate_type, aggregate_id, aggregate_seq)
      );
      create index outbox_events_pending on outbox_events (next_attempt_at, position) where status = 'pending';
      create index outbox_events_failed on outbox_events (created_at) where status = 'failed';
      create index outbox_events_published on outbox_events (published_at) where status = 'published';
      create function outbox_events_notify() returns trigger language plpgsql as $$
      begin
        perform pg_notify('${outboxChannel}', '');
        return null;
      end $$;
      create trigger outbox_events_notify after insert or update of status on outbox_events
        for each row when (new.status = 'pending') execute function outbox_events_notify();`,
    down: `drop table if exists outbox_events; drop function if exists outbox_events_notify();`
  },
  {
    // For the admin's retention (src/outbox/admin.ts). Purging an aggregate's published rows
    // must not let its next event start again at seq 1: `outbox_aggregate_seqs` keeps the
    // highest seq purged per aggregate, and `insertEvent` counts on from it. Expiring
    // idempotency keys by age needs their `created_at` indexed.
    version: 2003,
    name: "outbox-retention",
    up: `
      create table outbox_aggregate_seqs (
        aggregate_type text not null,
        aggregate_id text not null,
        last_seq bigint not null,
        primary key (aggregate_type, aggregate_id)
      );
      create index idempotency_keys_created on idempotency_keys (created_at);`,
    down: `drop index if exists idempotency_keys_created; drop table if exists outbox_aggregate_seqs;`
  },
  {
    // The relay's claim (src/outbox/sql.ts): walk pending rows in write order, and find an
    // aggregate's earlier unpublished row without reading its published history. Both partial,
    // so they hold only the backlog. Plain CREATE INDEX, as migrations run in a transaction: it
    // blocks writes to the table while it builds, which on a large existing outbox is worth
    // doing by hand first with CREATE INDEX CONCURRENTLY under the same names (IF NOT EXISTS
    // then skips them here).
    version: 2004,
    name: "outbox-claim-indexes",
    up: `
      create index if not exists outbox_events_claim on outbox_events (position) where status = 'pending';
      create index if not exists outbox_events_unpublished on outbox_events (aggregate_type, aggregate_id, aggregate_seq)
        where status <> 'published';`,
    down: `drop index if exists outbox_events_unpublished; drop index if exists outbox_events_claim;`
  },
  {
    // `position` is an identity column (`generated always`): the sequence already makes it
    // unique, and since 2004 `outbox_events_claim` is the index claims walk. Its unique index
    // only cost an entry on every insert and on every status change (an update that moves a
    // row out of the claim index is never HOT): about a sixth of the WAL records of marking a
    // batch published.
    // An aggregate's sequence starts at 1 (`insertEvent`), now checked: the claim takes a seq 1
    // row without looking for earlier ones (src/outbox/sql.ts), which is only sound if none can
    // exist. Adding the check reads the table once.
    version: 2005,
    name: "outbox-position-unindexed",
    up: `
      alter table outbox_events drop constraint if exists outbox_events_position_key;
      alter table outbox_events add constraint outbox_events_aggregate_seq_check check (aggregate_seq >= 1);`,
    down: `
      alter table outbox_events drop constraint if exists outbox_events_aggregate_seq_check;
      alter table outbox_events add constraint outbox_events_position_key unique (position);`
  }
]

/** $1 order id, $2 customer id, $3 total cents. */
export const insertOrder = `
  insert into orders (id, customer_id, total_cents) values ($1::uuid, $2, $3::int8) returning created_at`

/** $1 order id, $2 JSON array of {line, sku, quantity, unit_price_cents}. */
export const insertItems = `
  insert into order_items (order_id, line, sku, quantity, unit_price_cents)
  select $1::uuid, line, sku, quantity, unit_price_cents
  from jsonb_to_recordset($2::text::jsonb) as t(line int, sku text, quantity int, unit_price_cents bigint)`

/**
 * $1 event id, $2 aggregate type, $3 aggregate id, $4 event type, $5 payload, $6 headers. The
 * sequence is the aggregate's next, counting the rows the admin purged (`outbox_aggregate_seqs`),
 * so it never repeats: the unique constraint turns a concurrent writer of the same aggregate
 * into an error instead of a duplicate.
 */
export const insertEvent = `
  insert into outbox_events (id, aggregate_type, aggregate_id, aggregate_seq, event_type, payload, headers)
  select $1::uuid, $2, $3, greatest(
           coalesce(max(aggregate_seq), 0),
           coalesce((select last_seq from outbox_aggregate_seqs where aggregate_type = $2 and aggregate_id = $3), 0)
         ) + 1,
         $4, $5::text::jsonb, $6::text::jsonb
  from outbox_events where aggregate_type = $2 and aggregate_id = $3`

export const selectOrder = `select id::text as id, customer_id, total_cents::text as total_cents, created_at from orders where id = $1::uuid`

export const selectItems = `
  select sku, quantity, unit_price_cents::text as unit_price_cents from order_items where order_id = $1::uuid order by line`

/**
 * Serialises requests carrying one key for the rest of the transaction. The two-int form keeps
 * these locks out of the single-bigint keyspace the migration runner uses.
 */
export const lockKey = `select pg_advisory_xact_lock(2001, hashtext($1))`

export const selectKey = `select request_hash, response_status, response_body from idempotency_keys where key = $1`

/** $1 key, $2 the request's canonical JSON (hashed here), $3 status, $4 body. */
export const insertKey = `
  insert into idempotency_keys (key, request_hash, response_status, response_body)
  values ($1, encode(sha256(convert_to($2, 'UTF8')), 'hex'), $3, $4)`

export const hashOf = `select encode(sha256(convert_to($1, 'UTF8')), 'hex') as hash`
