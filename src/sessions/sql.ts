/**
 * The PostgreSQL session queue's tables and statements (SPEC §1), used by `sqlQueue.ts`.
 *
 * Tables:
 * - `session_queue_sessions`: one row per (queue, session) that has messages, a holder or state.
 *   A holder owns the session while `lock_token` is its token and `locked_until` is in the
 *   future: a lease, so a holder that died stops owning the session once its lease ends, without
 *   anyone having to notice it died.
 * - `session_queue_messages`: the messages not yet completed or dead-lettered. `sequence_number`
 *   (identity) is the queue's order; a message is handed out while `delivery_token` is set (to
 *   the holder's lock token), and `attempts` counts its deliveries.
 * - `session_queue_dead_letters`: the dead-letter queue, with reason and description.
 *
 * Locking rules that make the order and the leases hold across processes:
 * - Every statement of a holder first locks its session row and checks its token and lease
 *   (`held` below) in the same statement. A takeover changes the token under the same row lock,
 *   so a stale holder's statement either runs wholly before the takeover or sees the new token
 *   and does nothing: it never settles a message a new holder was handed.
 * - A settlement names the delivery (`delivery_token` and `attempts`), so a second settlement of
 *   one delivery, or a late one of an earlier delivery, matches no row and changes nothing.
 * - `send` locks the rows of the sessions it writes (upsert) before inserting messages, so two
 *   senders to one session take turns and a session's sequence numbers are in commit order: a
 *   receiver never sees message 11 of a session while message 10 is still uncommitted.
 * - A lease that ended is reclaimed (`reclaim`) before its session is handed out again (a
 *   session is picked only while no token is on it): unsettled messages go back, or to the
 *   dead-letter queue once out of deliveries.
 *
 * Time: `$now` parameters are the caller's `Clock`, as in the outbox relay, so lock expiry is
 * testable with `TestClock`; processes sharing a queue need clocks that agree to well within a
 * lock duration.
 *
 * Wake-ups: `send` and a `release` that leaves messages behind NOTIFY `session_queue` naming the
 * queue and the sessions, so waiting acceptors and receivers query again instead of polling.
 */
import type { Migration } from "../sql/migrations.ts"
import { maxDeliveryCountExceeded } from "../capabilities/SessionQueue.ts"

export const migrationsTable = "sessions_migrations"

/** The channel `send` and `release` notify; the payload names the queue and sessions (`sqlQueue.ts`). */
export const channel = "session_queue"

export const migrations: ReadonlyArray<Migration> = [
  {
    version: 5001,
    name: "session-queue-tables",
    up: `
      create table session_queue_sessions (
        queue text not null,
        session_id text not null,
        lock_token uuid,
        locked_until timestamptz,
        accepted_at timestamptz,
        state bytea,
        primary key (queue, session_id)
      );
      create index session_queue_sessions_turn on session_queue_sessions (queue, accepted_at nulls first);
      create index session_queue_sessions_leases on session_queue_sessions (queue, locked_until) where lock_token is not null;
      create table session_queue_messages (
        queue text not null,
        session_id text not null,
        sequence_number bigint generated always as identity,
        message_id text not null,
        headers jsonb not null default '{}'::jsonb,
        body bytea not null,
        enqueued_at timestamptz not null,
        attempts int not null default 0 check (attempts >= 0),
        delivery_token uuid,
        primary key (queue, session_id, sequence_number)
      );
      create table session_queue_dead_letters (
        queue text not null,
        sequence_number bigint not null,
        session_id text not null,
        message_id text not null,
        headers jsonb not null,
        body bytea not null,
        enqueued_at timestamptz not null,
        attempts int not null,
        reason text not null,
        description text,
        dead_lettered_at timestamptz not null default now(),
        primary key (queue, sequence_number)
      );`,
    down: `
      drop table if exists session_queue_dead_letters;
      drop table if exists session_queue_messages;
      drop table if exists session_queue_sessions;`
  }
]

/**
 * $1 queue, $2 session ids (text[], sorted, distinct). Creates missing session rows and locks
 * all of them until the sending transaction ends (sorted, so two senders cannot deadlock).
 * DO UPDATE rather than DO NOTHING: it locks the row atomically with finding it, also when a
 * release deletes it meanwhile.
 */
export const lockSessionsForSend = `
  insert into session_queue_sessions (queue, session_id)
  select $1, id from unnest($2::text[]) as ids (id) order by id
  on conflict (queue, session_id) do update set accepted_at = session_queue_sessions.accepted_at`

/**
 * $1 queue, $2 session ids, $3 message ids, $4 headers (JSON text), $5 bodies (hex), all text[]
 * of one length, $6 now. Sequence numbers follow the arrays' order.
 */
export const insertMessages = `
  insert into session_queue_messages (queue, session_id, message_id, headers, body, enqueued_at)
  select $1, s, i, h::jsonb, decode(b, 'hex'), $6::timestamptz
  from unnest($2::text[], $3::text[], $4::text[], $5::text[]) with ordinality as m (s, i, h, b, n)
  order by n`

/** $1 payload. */
export const notify = `select pg_notify('${channel}', $1)`

/**
 * CTE `moved`: the rows of CTE `dead` into the dead-letter queue, with `reason` and `description`
 * (SQL expressions over those rows).
 */
const moved = (reason: string, description: string) => `moved as (
    insert into session_queue_dead_letters
      (queue, sequence_number, session_id, message_id, headers, body, enqueued_at, attempts, reason, description)
    select queue, sequence_number, session_id, message_id, headers, body, enqueued_at, attempts, ${reason}, ${description}
    from dead
  )`

const movedAfterMaxDeliveries = moved(`'${maxDeliveryCountExceeded}'`, `'Message could not be consumed after ' || attempts || ' delivery attempts.'`)

/**
 * CTEs `dead`, `moved`, `back`: the handed-out messages of the sessions in CTE `sessions` go back
 * to their places, or to the dead-letter queue once delivered `max` times (an SQL expression).
 */
const handBack = (sessions: string, max: string) => `dead as (
    delete from session_queue_messages m using ${sessions} h
    where m.queue = h.queue and m.session_id = h.session_id and m.delivery_token is not null and m.attempts >= ${max}
    returning m.*
  ),
  ${movedAfterMaxDeliveries},
  back as (
    update session_queue_messages m set delivery_token = null from ${sessions} h
    where m.queue = h.queue and m.session_id = h.session_id and m.delivery_token is not null and m.attempts < ${max}
  )`

/**
 * $1 queue, $2 now, $3 max delivery count, $4 one session id or null for every session. Ends
 * every lease of the queue (or of that session) that ran out: its handed-out messages go back,
 * or to the dead-letter queue when they were delivered $3 times. Sessions in someone's statement
 * right now are skipped; the next reclaim gets them. The ids of the sessions freed.
 */
export const reclaim = `
  with expired as (
    select queue, session_id from session_queue_sessions
    where queue = $1 and lock_token is not null and locked_until <= $2::timestamptz
      and ($4::text is null or session_id = $4::text)
    for no key update skip locked
  ),
  ${handBack("expired", "$3::int4")}
  update session_queue_sessions s set lock_token = null, locked_until = null from expired e
  where s.queue = e.queue and s.session_id = e.session_id
  returning s.session_id`

/**
 * $1 queue. The free session with messages whose turn it is (never taken, else taken longest
 * ago), locked until the accepting transaction ends; sessions others are locking are skipped.
 */
export const pickSession = `
  select s.session_id from session_queue_sessions s
  where s.queue = $1 and s.lock_token is null
    and exists (select 1 from session_queue_messages m where m.queue = s.queue and m.session_id = s.session_id)
  order by s.accepted_at nulls first
  limit 1
  for no key update of s skip locked`

/**
 * $1 queue, $2 new token, $3 locked until, $4 now. Locks the free session with messages whose
 * turn it is (as `pickSession`) for a new holder, in one statement; its id and state, or no row.
 */
export const pickAndLockSession = `
  with picked as (${pickSession})
  update session_queue_sessions s set lock_token = $2::uuid, locked_until = $3::timestamptz, accepted_at = $4::timestamptz
  from picked
  where s.queue = $1 and s.session_id = picked.session_id
  returning s.session_id, s.state`

/**
 * $1 queue, $2 session. Creates the row of a named session to lock, and locks it (or the row
 * already there) until the accepting transaction ends. DO UPDATE rather than DO NOTHING, as in
 * `lockSessionsForSend`: DO NOTHING takes no lock, so a release could forget (delete) the row
 * before the accept locked it, and the grant would then update no row: an accept that
 * succeeded without a lock, its holder's first call failing with the lock lost.
 */
export const ensureSession = `
  insert into session_queue_sessions (queue, session_id) values ($1, $2)
  on conflict (queue, session_id) do update set accepted_at = session_queue_sessions.accepted_at`

/** $1 queue, $2 session. Its lease and state, locked until the accepting transaction ends. */
export const sessionLease = `
  select lock_token::text as lock_token, locked_until, state from session_queue_sessions
  where queue = $1 and session_id = $2
  for no key update`

/** $1 queue, $2 session, $3 new token, $4 locked until, $5 now. */
export const lockSession = `
  update session_queue_sessions set lock_token = $3::uuid, locked_until = $4::timestamptz, accepted_at = $5::timestamptz
  where queue = $1 and session_id = $2`

/** $1 queue, $2 now. When the next lease of the queue ends, if any does. */
export const nextLeaseEnd = `
  select min(locked_until) as until from session_queue_sessions
  where queue = $1 and lock_token is not null and locked_until > $2::timestamptz`

/**
 * The holder's session row, locked for the statement: $1 queue, $2 session, $3 lock token,
 * $4 now. Empty when the lock was lost.
 */
const held = `
  held as (
    select queue, session_id from session_queue_sessions
    where queue = $1 and session_id = $2 and lock_token = $3::uuid and locked_until > $4::timestamptz
    for no key update
  )`

/**
 * held ($1-$4), $5 max. Hands out the session's next $5 messages not handed out, in order.
 * One row always: `held` 0 when the lock was lost; message columns null when none came.
 */
export const receive = `
  with ${held},
  next as (
    select m.sequence_number from session_queue_messages m, held h
    where m.queue = h.queue and m.session_id = h.session_id and m.delivery_token is null
    order by m.sequence_number
    limit $5::int4
  ),
  out as (
    update session_queue_messages m set attempts = m.attempts + 1, delivery_token = $3::uuid
    from next
    where m.queue = $1 and m.session_id = $2 and m.sequence_number = next.sequence_number
    returning m.sequence_number, m.message_id, m.headers, m.body, m.enqueued_at, m.attempts
  )
  select (select count(*)::int4 from held) as held, out.sequence_number, out.message_id, out.headers, out.body,
         out.enqueued_at, out.attempts
  from (select 1) as one left join out on true`

/** held ($1-$4), $5 sequence number, $6 attempt: the delivery being settled. */
const delivery = `m.queue = $1 and m.session_id = $2 and m.sequence_number = $5::int8
    and m.delivery_token = $3::uuid and m.attempts = $6::int4 and exists (select 1 from held)`

/** held ($1-$4), delivery ($5, $6). `held` 0 when the lock was lost. */
export const complete = `
  with ${held},
  done as (delete from session_queue_messages m where ${delivery})
  select (select count(*)::int4 from held) as held`

/**
 * held ($1-$4), $5 sequence numbers (int8[]), $6 attempts (int4[]), $7 whether to set the state,
 * $8 the state (bytea or null). Completes those deliveries and sets the state in one statement.
 * `held` 0 when the lock was lost (and nothing changed).
 */
export const completeAll = `
  with ${held},
  done as (
    delete from session_queue_messages m
    using unnest($5::int8[], $6::int4[]) as d (sequence_number, attempts)
    where m.queue = $1 and m.session_id = $2 and m.sequence_number = d.sequence_number
      and m.delivery_token = $3::uuid and m.attempts = d.attempts and exists (select 1 from held)
  ),
  state as (
    update session_queue_sessions s set state = $8::bytea from held h
    where $7::bool and s.queue = h.queue and s.session_id = h.session_id
  )
  select (select count(*)::int4 from held) as held`

/**
 * held ($1-$4), delivery ($5, $6), $7 max delivery count. Back to its place, or to the
 * dead-letter queue when this was its last delivery.
 */
export const abandon = `
  with ${held},
  dead as (delete from session_queue_messages m where ${delivery} and m.attempts >= $7::int4 returning m.*),
  ${movedAfterMaxDeliveries},
  back as (update session_queue_messages m set delivery_token = null where ${delivery} and m.attempts < $7::int4)
  select (select count(*)::int4 from held) as held`

/** held ($1-$4), delivery ($5, $6), $7 reason, $8 description. */
export const deadLetter = `
  with ${held},
  dead as (delete from session_queue_messages m where ${delivery} returning m.*),
  ${moved("$7::text", "$8::text")}
  select (select count(*)::int4 from held) as held`

/** held ($1-$4), $5 new end. The new end; no row when the lock was lost. */
export const renew = `
  update session_queue_sessions set locked_until = $5::timestamptz
  where queue = $1 and session_id = $2 and lock_token = $3::uuid and locked_until > $4::timestamptz
  returning locked_until`

/** held ($1-$4). One row with the state (maybe null); no row when the lock was lost. */
export const getState = `
  select state from session_queue_sessions
  where queue = $1 and session_id = $2 and lock_token = $3::uuid and locked_until > $4::timestamptz`

/** held ($1-$4), $5 state (bytea or null). No row when the lock was lost. */
export const setState = `
  update session_queue_sessions set state = $5::bytea
  where queue = $1 and session_id = $2 and lock_token = $3::uuid and locked_until > $4::timestamptz
  returning 1 as ok`

/**
 * $1 queue, $2 session, $3 token, $4 max delivery count. Gives the lock up if $3 still holds it
 * (also after its lease ran out, as long as nobody reclaimed it): the handed-out messages go
 * back (or to the dead-letter queue), the row goes when nothing is left in it, and acceptors are
 * woken when messages are.
 */
export const release = `
  with mine as (
    select queue, session_id from session_queue_sessions
    where queue = $1 and session_id = $2 and lock_token = $3::uuid
    for update
  ),
  ${handBack("mine", "$4::int4")}
  update session_queue_sessions s set lock_token = null, locked_until = null from mine
  where s.queue = mine.queue and s.session_id = mine.session_id
  returning (select count(*)::int4 from session_queue_messages m where m.queue = $1 and m.session_id = $2 and m.attempts < $4::int4) as left,
    s.state is null as stateless`

/**
 * $1 queue, $2 session. Locks the row of an unlocked session, so that a `forgetIfEmpty` after it
 * in the same transaction sees every message a sender committed meanwhile.
 */
export const lockUnlockedSession = `
  select 1 from session_queue_sessions where queue = $1 and session_id = $2 and lock_token is null for update`

/**
 * $1 queue, $2 session. Deletes the row of an unlocked session with no message and no state,
 * so finished sessions do not pile up. A sender's upsert waits for it and then inserts anew.
 */
export const forgetIfEmpty = `
  delete from session_queue_sessions s
  where s.queue = $1 and s.session_id = $2 and s.lock_token is null and s.state is null
    and not exists (select 1 from session_queue_messages m where m.queue = $1 and m.session_id = $2)`

/** $1 queue. */
export const depth = `
  select (select count(*)::int4 from session_queue_messages where queue = $1) as active,
         (select count(*)::int4 from session_queue_dead_letters where queue = $1) as dead_lettered`

/** $1 queue, $2 max. The dead-letter queue's first messages. */
export const deadLettered = `
  select sequence_number, session_id, message_id, headers, body, reason, description
  from session_queue_dead_letters where queue = $1
  order by sequence_number
  limit $2::int4`

/** Test fault hook: $1 queue, $2 session. Ends the session's lease now, as if it had run out. */
export const expireLease = `
  update session_queue_sessions set locked_until = '-infinity' where queue = $1 and session_id = $2 and lock_token is not null`
