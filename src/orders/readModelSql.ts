/**
 * The order-events consumer's tables, a migrations system of its own (`order-events`): the
 * consumer's database need not be the orders API's.
 *
 * `inbox` holds the id of every event applied; `customer_orders` is the read model. Both are
 * written in one transaction, so an event id is in the inbox exactly when its effect is in the
 * read model.
 */
import type { Migration } from "../sql/migrations.ts"

export const migrationsTable = "order_events_migrations"

export const migrations: ReadonlyArray<Migration> = [
  {
    version: 3001,
    name: "inbox-and-customer-orders",
    up: `
      create table inbox (
        event_id text primary key,
        received_at timestamptz not null default now()
      );
      create table customer_orders (
        customer_id text primary key,
        orders bigint not null default 0 check (orders >= 0),
        total_cents bigint not null default 0 check (total_cents >= 0),
        updated_at timestamptz not null default now()
      );`,
    down: `drop table if exists customer_orders; drop table if exists inbox;`
  }
]

/** $1 event id; a row back means the event is new. */
export const recordEvent = `insert into inbox (event_id) values ($1) on conflict (event_id) do nothing returning event_id`

/** $1 customer id, $2 order total in cents. */
export const addOrder = `
  insert into customer_orders (customer_id, orders, total_cents) values ($1, 1, $2::int8)
  on conflict (customer_id) do update set
    orders = customer_orders.orders + 1,
    total_cents = customer_orders.total_cents + excluded.total_cents,
    updated_at = now()`

export const customerOrders = `select customer_id, orders::int as orders, total_cents::text as total_cents from customer_orders order by customer_id`

/** Events applied so far. */
export const countInbox = `select count(*)::int4 as n from inbox`
