/**
 * The durable counter's SQL: one statement per state change.
 */
import type { Migration } from "../sql/migrations.ts"

/** Each system keeps its own migrations table, so systems deploy and roll back independently. */
export const migrationsTable = "counter_migrations"

export const migrations: ReadonlyArray<Migration> = [
  {
    version: 1001,
    name: "counter-tables",
    up: `
      create table if not exists counter_seen (
        id text primary key,
        user_id text not null,
        type text not null,
        counted_at timestamptz not null default now()
      );
      create table if not exists counter_counts (
        type text not null,
        user_id text not null,
        count bigint not null,
        primary key (type, user_id)
      );`,
    down: `drop table if exists counter_counts; drop table if exists counter_seen;`
  }
]

/**
 * De-duplicates and counts a batch in one statement, so a crash leaves either all of it or none.
 * Ids are inserted in sorted order so concurrent batches with shared ids cannot deadlock.
 * $1: JSON array of {id, user_id, type}. Returns the number newly counted.
 */
export const record = `
  with input as (
    select distinct on (id) id, user_id, type
    from jsonb_to_recordset($1::text::jsonb) as t(id text, user_id text, type text)
    order by id
  ),
  fresh as (
    insert into counter_seen (id, user_id, type)
    select id, user_id, type from input order by id
    on conflict (id) do nothing
    returning user_id, type
  ),
  counted as (
    insert into counter_counts (type, user_id, count)
    select type, user_id, count(*) from fresh group by type, user_id
    on conflict (type, user_id) do update set count = counter_counts.count + excluded.count
  )
  select count(*)::int as counted from fresh`

export const snapshot = `select type, user_id, count from counter_counts order by type, user_id`
