/**
 * The outbox relay against a raw kafkajs producer, and its commit-to-ack latency, in one run.
 *
 *   bun run bench/outbox.ts [--rows 100000] [--aggregates 25000] [--rounds 3]
 *                           [--batch-size 1000] [--pool-size 3]
 *                           [--rate 2000] [--seconds 10] [--durable-inserts] [--json]
 *
 * Each round, on a fresh database and fresh topics (3 partitions):
 * 1. `--rows` committed outbox rows, round-robin over `--aggregates` aggregates (so most have
 *    several events, in seq order), shaped like the orders API's `OrderCreated` rows (order JSON
 *    payload, a stored `traceparent`), inserted and analyzed before anything is timed.
 * 2. raw: one kafkajs producer configured like ours (idempotent, one request in flight,
 *    acks=all) sends the same records (same keys, values and headers, read back from the rows)
 *    in batches of `--batch-size`, from `--pool-size` concurrent senders; rate = rows / time
 *    from the first send to the last ack.
 * 3. raw relay, the relay's own baseline: the relay's statements (claim, settings, mark), producer
 *    settings and wake-up rule written directly on postgres.js and kafkajs, with none of the
 *    toolkit (`startRawRelay`), `--pool-size` workers, over a second table filled the same way;
 *    rate = rows / time from its start until Kafka acknowledged every row. What PostgreSQL's
 *    claims and marks cost on this machine, next to the raw producer that needs no database.
 * 4. relay: `makeRelay` in this process with `WORKER_BATCH_SIZE=--batch-size` and
 *    `WORKER_POOL_SIZE=--pool-size` on the real Kafka publisher layer and PostgreSQL; rate = rows
 *    / time from starting `relay.run` (layers already connected) until every row is marked
 *    published.
 * 5. latency (skipped with `--seconds 0`): on another fresh database and topic, with the relay
 *    running here (same settings), a child process (`outboxInserter.ts`, so inserting takes no
 *    CPU time from the relay's process) inserts `--rate` events a second for `--seconds`
 *    seconds, open loop, each by the orders API's statement as a transaction of its own (its
 *    trigger NOTIFYs the relay). Its sessions commit with `synchronous_commit=off` unless
 *    `--durable-inserts`: the inserts are the load, not what is measured (the relay sees a row
 *    when its commit is visible, flushed or not), and a shared development disk may flush far
 *    fewer than 2 000 commits a second (about 700 small ones a second from 8 connections,
 *    measured here). Latency = when the Publisher call that carried the event returned (Kafka
 *    acknowledged it, acks=all) minus when the insert's commit was answered, both wall-clock
 *    with sub-millisecond precision, into an HDR histogram (µs). Also counted: the relay's claim
 *    transactions, other statements and publish calls meanwhile, with how long the calls took,
 *    this process's CPU time per event, and each event's latency in two: from its commit to the
 *    answer of the claim that took it (waiting for a worker, the wake-up, the claim itself), and
 *    from there to the ack (publish, and waiting for the other workers' publishes), and how long
 *    each phase of a claim took: the claim (from asking for the transaction to the claim's
 *    answer), the publish call, the mark with its COMMIT. The raw relay runs the same load first,
 *    on a database and topic of its own, measured the same way: its latency is the baseline.
 * Each throughput run also reports this process's CPU time per event (user + system, µs): the
 * raw producer's is kafkajs alone, the relay's adds its claims, marks and Effect; it moves less
 * than the rates when other work competes for the cores. Where PostgreSQL and the Kafka broker run
 * on this machine, their CPU time per event is added (`serverCpu.ts`), with how busy the cores
 * were: the sum is what an event costs the machine, so the cores' time over it bounds the rate
 * that work can reach here however it is scheduled; the medians are followed by that bound for
 * the raw producer, the raw relay and the relay. In the latency runs the servers' figures include
 * the inserts' work.
 * The machine may be shared and noisy, so rounds alternate the raw and relay runs and medians
 * are reported, as in `counter.ts`: median rates, the median of per-round ratios with their
 * spread, the ratio of medians; latency per round and over all rounds' events. `--json` also
 * prints the summary as one JSON line.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as hdr from "hdr-histogram-js"
import { Kafka, logLevel, Partitioners } from "kafkajs"
import { join } from "node:path"
import postgres from "postgres"
import * as KafkaLayer from "../layers/kafka/index.ts"
import * as PostgresSql from "../layers/postgres/sql.ts"
import { Publisher } from "../src/capabilities/Publisher.ts"
import { SqlDatabase, type SqlDatabaseShape, type SqlTransaction } from "../src/capabilities/SqlDatabase.ts"
import { relayDefaults, type RelayConfig } from "../src/outbox/config.ts"
import { EventHeaders, makeRelay } from "../src/outbox/relay.ts"
import * as Orders from "../src/orders/sql.ts"
import * as OutboxSql from "../src/outbox/sql.ts"
import { migrate } from "../src/sql/migrations.ts"
import { now, orderEvent, traceparent } from "./outboxEvents.ts"
import { serverCpu, type Used } from "./serverCpu.ts"
import { median } from "./summary.ts"

const text = (name: string, fallback: string) => {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 ? process.argv[i + 1]! : fallback
}
const arg = (name: string, fallback: number) => {
  const value = Number(text(name, String(fallback)))
  if (!Number.isFinite(value) || value < 0) throw new Error(`--${name}: not a number >= 0`)
  return value
}
const rows = arg("rows", 100_000)
const aggregates = arg("aggregates", Math.max(1, Math.floor(rows / 4)))
const rounds = arg("rounds", 3)
const batchSize = arg("batch-size", 1000)
const poolSize = arg("pool-size", 3)
const rate = arg("rate", 2000)
const seconds = arg("seconds", 10)
const asJson = process.argv.includes("--json")
const durableInserts = process.argv.includes("--durable-inserts")
const adminUrl = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test"
const brokers = (process.env.KAFKA_BROKERS ?? "127.0.0.1:9092").split(",").map((b) => b.trim())
const tag = Date.now().toString(36)
const goals = { perSecond: 20_000, ratio: 0.7, p99Ms: 50 }

const servers = serverCpu({ postgres: [new URL(adminUrl).hostname], kafka: brokers.map((b) => b.replace(/:\d+$/, "")) })
const cores = navigator.hardwareConcurrency

const admin = postgres(adminUrl, { max: 1, onnotice: () => {} })
const kafka = new Kafka({ clientId: "bench-outbox", brokers, logLevel: logLevel.NOTHING })
const kafkaAdmin = kafka.admin()
await kafkaAdmin.connect()
const databases: Array<string> = []
const topics: Array<string> = []

const freshDatabase = async (name: string) => {
  await admin.unsafe(`create database ${name}`)
  databases.push(name)
  const url = new URL(adminUrl)
  url.pathname = `/${name}`
  const dbUrl = url.toString()
  await Effect.runPromise(
    migrate(Orders.migrations, { direction: "up", table: Orders.migrationsTable }).pipe(
      Effect.provide(PostgresSql.layer({ url: dbUrl, max: 1 }))
    )
  )
  return dbUrl
}

const freshTopic = async (name: string) => {
  await kafkaAdmin.createTopics({ topics: [{ topic: name, numPartitions: 3 }], waitForLeaders: true })
  topics.push(name)
  return name
}

/** `--rows` rows round-robin over `--aggregates` aggregates, then ANALYZE (what autovacuum would have done). */
const fill = async (url: string) => {
  const sql = postgres(url, { max: 1, onnotice: () => {} })
  try {
    const ids = Array.from({ length: aggregates }, () => crypto.randomUUID())
    for (let from = 0; from < rows; from += 5000) {
      const chunk = []
      for (let i = from; i < Math.min(rows, from + 5000); i++) {
        const aggregate = ids[i % aggregates]!
        const eventId = crypto.randomUUID()
        chunk.push({
          id: eventId,
          aggregate_id: aggregate,
          aggregate_seq: Math.floor(i / aggregates) + 1,
          payload: orderEvent(eventId, aggregate, i),
          headers: { traceparent: traceparent() }
        })
      }
      await sql.unsafe(
        `insert into outbox_events (id, aggregate_type, aggregate_id, aggregate_seq, event_type, payload, headers)
         select id, 'order', aggregate_id, aggregate_seq, 'OrderCreated', payload, headers
         from jsonb_to_recordset($1::text::jsonb) as t(id uuid, aggregate_id text, aggregate_seq bigint, payload jsonb, headers jsonb)`,
        [JSON.stringify(chunk)]
      )
    }
    await sql.unsafe("analyze outbox_events")
  } finally {
    await sql.end({ timeout: 5 })
  }
}

interface RawRecord {
  readonly key: string
  readonly value: string
  readonly headers: Record<string, string>
}

/** The rows as the relay sends them: key, the payload as stored, its three headers and our message id. */
const recordsOf = async (url: string): Promise<Array<RawRecord>> => {
  const sql = postgres(url, { max: 1, onnotice: () => {} })
  try {
    const found = await sql.unsafe<Array<{ id: string; aggregate_id: string; event_type: string; payload: string; traceparent: string }>>(
      `select id::text as id, aggregate_id, event_type, payload::text as payload, headers->>'traceparent' as traceparent
       from outbox_events order by position`
    )
    return found.map((row) => ({
      key: row.aggregate_id,
      value: row.payload,
      headers: {
        [EventHeaders.eventId]: row.id,
        [EventHeaders.eventType]: row.event_type,
        traceparent: row.traceparent,
        "message-id": row.id
      }
    }))
  } finally {
    await sql.end({ timeout: 5 })
  }
}

const rawRun = async (records: ReadonlyArray<RawRecord>, topic: string) => {
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, createPartitioner: Partitioners.DefaultPartitioner })
  await producer.connect()
  try {
    let next = 0
    const cost = costMeter()
    const started = performance.now()
    await Promise.all(Array.from({ length: poolSize }, async () => {
      while (next < records.length) {
        const batch = records.slice(next, next + batchSize)
        next += batch.length
        await producer.send({ topic, acks: -1, messages: batch.map((r) => ({ key: r.key, value: r.value, headers: r.headers })) })
      }
    }))
    const elapsed = performance.now() - started
    return { perSecond: records.length / (elapsed / 1000), ...cost(records.length) }
  } finally {
    await producer.disconnect()
  }
}

/** This process's CPU time (user + system) per event, µs: what the machine's noise changes least. */
const cpuPerEvent = (used: NodeJS.CpuUsage, events: number) => Math.round((used.user + used.system) / events)

/** The local servers' CPU µs per event, and how busy the cores were (bench/serverCpu.ts). */
const perEvent = (used: Used, events: number) => ({
  postgres: used.postgres === undefined ? undefined : Math.round(used.postgres / events),
  kafka: used.kafka === undefined ? undefined : Math.round(used.kafka / events),
  machine: used.machine
})
type ServersPerEvent = ReturnType<typeof perEvent>

/** Starts measuring what a run costs: called with its events, this process's and the local servers' CPU per event since. */
const costMeter = () => {
  const cpu = process.cpuUsage()
  const serversCpu = servers.start()
  return (events: number) => ({ cpuMicros: cpuPerEvent(process.cpuUsage(cpu), events), servers: perEvent(serversCpu.stop(), events) })
}

/** This process's CPU µs per event and the local servers': what the machine spent on each event. */
const machineCpu = (own: number, servers: ServersPerEvent) => own + (servers.postgres ?? 0) + (servers.kafka ?? 0)

const cpuText = (own: number, servers: ServersPerEvent) =>
  (servers.postgres === undefined && servers.kafka === undefined
    ? `${own} µs CPU/event in this process`
    : `${own} here` + (servers.postgres === undefined ? "" : ` + ${servers.postgres} PostgreSQL`) +
      (servers.kafka === undefined ? "" : ` + ${servers.kafka} Kafka broker`) + ` = ${machineCpu(own, servers)} µs CPU/event`) +
  busyText(servers)

const busyText = (servers: ServersPerEvent) =>
  servers.machine === undefined
    ? ""
    : `; the ${cores} cores ${Math.round(servers.machine.busy * 100)} % busy` +
      (servers.machine.steal >= 0.005 ? `, ${Math.round(servers.machine.steal * 100)} % stolen` : "")

const relayConfig = (topic: string): RelayConfig => ({ ...relayDefaults, topic, batchSize, poolSize })

/** The Kafka publisher layer, telling `acked` the ids of every call Kafka acknowledged, as it returns, and `took` how long the call took (ms). */
const observedPublisher = (clientId: string, acked: (ids: ReadonlyArray<string>) => void, took: (ms: number) => void = () => {}) =>
  Layer.effect(
    Publisher,
    Effect.gen(function*() {
      const inner = yield* Publisher
      return Publisher.of({
        healthy: inner.healthy,
        publish: (topic, messages) =>
          Effect.suspend(() => {
            const started = performance.now()
            return inner.publish(topic, messages).pipe(
              Effect.tap(() =>
                Effect.sync(() => {
                  took(performance.now() - started)
                  acked(messages.map((m) => m.id ?? ""))
                })
              )
            )
          })
      })
    })
  ).pipe(Layer.provide(KafkaLayer.publisherLayer({ brokers, clientId, logLevel: "warn" })))

/**
 * Statements the relay sends, counted: transactions (one per claim) and statements outside them;
 * and when each event's claim answered (wall clock, ms), which splits its latency in two.
 */
interface Work {
  transactions: number
  statements: number
  readonly claimedAt: Map<string, number>
  /** How long each claim statement took (µs; with BEGIN and the settings it goes out with). */
  readonly claims: hdr.Histogram
  /** How long each mark took with its COMMIT (µs). */
  readonly marks: hdr.Histogram
}

const countedDatabase = (url: string, work: Work) =>
  Layer.effect(
    SqlDatabase,
    Effect.gen(function*() {
      const db = yield* SqlDatabase
      const counted: SqlDatabaseShape = {
        ...db,
        query: (text, params) => Effect.suspend(() => (work.statements++, db.query(text, params))),
        queryAs: (schema, text, params) => Effect.suspend(() => (work.statements++, db.queryAs(schema, text, params))),
        transaction: (body) =>
          Effect.suspend(() => {
            work.transactions++
            // As the raw relay's: from asking for the transaction to the claim's answer.
            const started = now()
            const claim = <R extends object>(tx: SqlTransaction, text: string, params?: ReadonlyArray<unknown>) =>
              Effect.tap(tx.query<R>(text, params), (rows) =>
                Effect.sync(() => {
                  const at = now()
                  work.claims.recordValue(Math.round((at - started) * 1000))
                  for (const row of rows) {
                    const id = (row as { id?: string }).id
                    if (id !== undefined && !work.claimedAt.has(id)) work.claimedAt.set(id, at)
                  }
                }))
            const mark = <R extends object>(tx: SqlTransaction, text: string, params?: ReadonlyArray<unknown>) =>
              Effect.suspend(() => {
                const marking = now()
                return Effect.tap(tx.commitAfter<R>(text, params), () =>
                  Effect.sync(() => work.marks.recordValue(Math.round((now() - marking) * 1000))))
              })
            return db.transaction((tx) =>
              body({
                ...tx,
                query: <R extends object>(text: string, params?: ReadonlyArray<unknown>) =>
                  text === OutboxSql.claimBatch ? claim<R>(tx, text, params) : tx.query<R>(text, params),
                commitAfter: <R extends object>(text: string, params?: ReadonlyArray<unknown>) =>
                  text === OutboxSql.markPublished ? mark<R>(tx, text, params) : tx.commitAfter<R>(text, params)
              })
            )
          })
      }
      return counted
    })
  ).pipe(Layer.provide(PostgresSql.layer({ url, max: poolSize + 2 })))

const untilPublished = (sql: postgres.Sql) =>
  Effect.promise(async () => {
    for (;;) {
      const [row] = await sql.unsafe<Array<{ n: number }>>("select count(*)::int4 as n from outbox_events where status <> 'published'")
      if (row!.n === 0) return
      await Bun.sleep(5)
    }
  })

const relayRun = async (url: string, topic: string) => {
  const seen = new Set<string>()
  const all = Promise.withResolvers<void>()
  const probe = postgres(url, { max: 1, onnotice: () => {} })
  try {
    return await Effect.runPromise(Effect.gen(function*() {
      const relay = yield* makeRelay(relayConfig(topic))
      const cost = costMeter()
      const started = performance.now()
      const fiber = yield* Effect.forkChild(relay.run)
      yield* Effect.promise(() => all.promise)
      yield* untilPublished(probe)
      const elapsed = performance.now() - started
      const used = cost(rows)
      yield* Fiber.interrupt(fiber)
      return { perSecond: rows / (elapsed / 1000), ...used, published: seen.size }
    }).pipe(Effect.provide(Layer.mergeAll(
      PostgresSql.layer({ url, max: poolSize + 2 }),
      observedPublisher(`bench-relay-${tag}`, (ids) => {
        for (const id of ids) seen.add(id)
        if (seen.size >= rows) all.resolve()
      })
    ))))
  } finally {
    await probe.end({ timeout: 5 })
  }
}

interface Latency {
  readonly events: number
  /** Inserts per second achieved by the open-loop schedule. */
  readonly insertRate: number
  readonly p50Ms: number
  readonly p99Ms: number
  readonly maxMs: number
  /** The relay's claim transactions and other statements while the events were inserted and published. */
  readonly relayTransactions?: number
  readonly relayStatements?: number
  /** The relay's publish calls meanwhile, and how long they took. */
  readonly publishCalls?: number
  readonly publishP50Ms?: number
  readonly publishP99Ms?: number
  /** This process's CPU time per event meanwhile (µs): the relay's, and at this rate mostly per batch and per NOTIFY. */
  readonly cpuMicros?: number
  readonly servers?: ServersPerEvent
  /** Commit to the answer of the claim that took the event, and from there to Kafka's ack. */
  readonly toClaimP50Ms?: number
  readonly toClaimP99Ms?: number
  readonly claimToAckP50Ms?: number
  readonly claimToAckP99Ms?: number
  /** The claims', publish calls' and marks' durations, p50/p99. */
  readonly phases?: string
}

const histogram = () => hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 120_000_000, numberOfSignificantValueDigits: 3 })
const allLatencies = histogram()

/** The `p`th percentile of a histogram of µs, in ms to 0.1. */
const ms = (h: hdr.Histogram, p: number) => Number((h.getValueAtPercentile(p) / 1000).toFixed(1))

/** p50, p99 and max of a histogram of µs, in ms. */
const percentiles = (h: hdr.Histogram) => ({ p50Ms: ms(h, 50), p99Ms: ms(h, 99), maxMs: Number((h.maxValue / 1000).toFixed(1)) })

/** Records `ids` in `times` at the first moment each is heard of (a redelivery keeps the first). */
const firstTime = (times: Map<string, number>) => (ids: ReadonlyArray<string>) => {
  const at = now()
  for (const id of ids) if (!times.has(id)) times.set(id, at)
}

const summaryOf = (h: hdr.Histogram, events: number, insertRate: number): Latency => ({
  events,
  insertRate: Math.round(insertRate),
  ...percentiles(h)
})

/** Runs the inserter child: `eventsPerSecond` for `forSeconds`; when each event's commit was answered. */
const load = async (url: string, eventsPerSecond: number, forSeconds: number) => {
  const child = Bun.spawn(
    [process.execPath, "run", join(import.meta.dir, "outboxInserter.ts"), url, String(eventsPerSecond), String(forSeconds), String(durableInserts)],
    { stdout: "pipe", stderr: "inherit" }
  )
  const out = await new Response(child.stdout).text()
  if ((await child.exited) !== 0) throw new Error("bench/outboxInserter.ts failed")
  return JSON.parse(out) as { insertRate: number; committed: Array<[string, number]> }
}

/** Commit-to-ack latencies of `committed` (µs, into `h` and the all-rounds histogram of `all`). */
const record = (committed: ReadonlyArray<readonly [string, number]>, ackedAt: ReadonlyMap<string, number>, h: hdr.Histogram, all: hdr.Histogram) => {
  for (const [id, at] of committed) {
    const acked = ackedAt.get(id)
    if (acked === undefined) throw new Error(`event ${id} was never acknowledged`)
    // The relay can see a row before its inserter hears the commit's answer: that counts as 0.
    const micros = Math.max(0, Math.round((acked - at) * 1000))
    h.recordValue(micros)
    all.recordValue(micros)
  }
}

/** How long the phases of a claim took (µs). */
interface Phases {
  readonly claims: hdr.Histogram
  readonly sends: hdr.Histogram
  readonly marks: hdr.Histogram
}

/** "p50/p99 ms" of a histogram of µs. */
const p50p99 = (h: hdr.Histogram) => `${ms(h, 50).toFixed(1)}/${ms(h, 99).toFixed(1)}`

/** Each event's latency in two, p50 and p99 of each: commit to the answer of the claim that took it, and from there to the ack. */
const split = (
  committed: ReadonlyArray<readonly [string, number]>,
  claimedAt: ReadonlyMap<string, number>,
  ackedAt: ReadonlyMap<string, number>
) => {
  const toClaim = histogram()
  const claimToAck = histogram()
  for (const [id, at] of committed) {
    const acked = ackedAt.get(id)
    const claimed = claimedAt.get(id)
    if (acked === undefined || claimed === undefined) continue
    toClaim.recordValue(Math.max(0, Math.round((claimed - at) * 1000)))
    claimToAck.recordValue(Math.max(0, Math.round((acked - claimed) * 1000)))
  }
  const figures = {
    toClaimP50Ms: ms(toClaim, 50),
    toClaimP99Ms: ms(toClaim, 99),
    claimToAckP50Ms: ms(claimToAck, 50),
    claimToAckP99Ms: ms(claimToAck, 99)
  }
  toClaim.destroy()
  claimToAck.destroy()
  return figures
}

interface RawLatency {
  readonly p50Ms: number
  readonly p99Ms: number
  readonly maxMs: number
  readonly claims: number
  readonly cpuMicros: number
  /** The local servers' CPU per event meanwhile (with the inserts' work) and the cores' use. */
  readonly servers: ServersPerEvent
  /** Commit to the answer of the claim that took the event, and from there to Kafka's ack, as for the relay. */
  readonly toClaimP50Ms: number
  readonly toClaimP99Ms: number
  readonly claimToAckP50Ms: number
  readonly claimToAckP99Ms: number
  /** Its claims', sends' and marks' durations, p50/p99. */
  readonly phases: string
}

const allRawLatencies = histogram()

/**
 * The relay's baseline: a relay written directly on postgres.js and kafkajs, with the relay's
 * statements (the same claim, settings and mark), producer settings and wake-up rule (a NOTIFY
 * wakes one waiting worker; a worker that was busy when one came claims again before it waits),
 * and none of the toolkit: no Effect, breaker, backoff, spans, metrics or failure handling.
 * `acked` hears the ids of each batch Kafka acknowledged, as the relay's Publisher does, and
 * `claimed` those of each claim as it answers; `phases` gets how long each claim (with BEGIN
 * and the settings), send and mark with its COMMIT took (µs).
 */
const startRawRelay = async (
  url: string,
  topic: string,
  acked: (ids: ReadonlyArray<string>) => void,
  claimed: (ids: ReadonlyArray<string>) => void = () => {},
  phases?: Phases
) => {
  const sql = postgres(url, { max: poolSize + 1, onnotice: () => {}, connection: { plan_cache_mode: "force_custom_plan" } })
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, createPartitioner: Partitioners.DefaultPartitioner })
  await producer.connect()
  const missed = Array.from({ length: poolSize }, () => false)
  const waiters: Array<() => void> = []
  const counts = { claims: 0 }
  let stopped = false
  const subscription = await sql.listen(Orders.outboxChannel, () => {
    const waiter = waiters.shift()
    if (waiter !== undefined) waiter()
    else missed.fill(true)
  })
  type Row = { row_ref: string; id: string; aggregate_id: string; event_type: string; payload: string; traceparent: string | null }
  const claimOnce = async () => {
    const began = now()
    let marking: number | undefined
    const count = await sql.begin(async (tx) => {
      counts.claims++
      const [, rows] = await Promise.all([
        tx.unsafe(OutboxSql.claimSettingsCommitWithoutFlush),
        tx.unsafe<Array<Row>>(OutboxSql.claimBatch, [new Date(), batchSize], { prepare: true })
      ])
      const sending = now()
      phases?.claims.recordValue(Math.round((sending - began) * 1000))
      if (rows.length === 0) return 0
      claimed(rows.map((r) => r.id))
      await producer.send({
        topic,
        acks: -1,
        messages: rows.map((r) => ({
          key: r.aggregate_id,
          value: r.payload,
          headers: {
            [EventHeaders.eventId]: r.id,
            [EventHeaders.eventType]: r.event_type,
            ...(r.traceparent === null ? {} : { traceparent: r.traceparent })
          }
        }))
      })
      marking = now()
      phases?.sends.recordValue(Math.round((marking - sending) * 1000))
      acked(rows.map((r) => r.id))
      await tx.unsafe(OutboxSql.markPublished, [rows.map((r) => r.row_ref), new Date()], { prepare: true })
      return rows.length
    })
    if (marking !== undefined) phases?.marks.recordValue(Math.round((now() - marking) * 1000))
    return count
  }
  const worker = async (i: number) => {
    while (!stopped) {
      missed[i] = false
      const claimed = await claimOnce()
      if (claimed > 0 || missed[i]) continue
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Duration.toMillis(relayDefaults.pollInterval))
        waiters.push(() => (clearTimeout(timer), resolve()))
      })
    }
  }
  const workers = Array.from({ length: poolSize }, (_, i) => worker(i))
  return {
    counts,
    stop: async () => {
      stopped = true
      for (const waiter of waiters.splice(0)) waiter()
      await Promise.allSettled(workers)
      await subscription.unlisten()
      await producer.disconnect()
      await sql.end({ timeout: 5 })
    }
  }
}

/** The raw relay over the filled table: rows / time from its start until Kafka acknowledged them all. */
const rawRelayRun = async (url: string, topic: string) => {
  let seen = 0
  const all = Promise.withResolvers<void>()
  const cost = costMeter()
  const started = performance.now()
  const relay = await startRawRelay(url, topic, (ids) => {
    seen += ids.length
    if (seen >= rows) all.resolve()
  })
  try {
    await all.promise
    const elapsed = performance.now() - started
    return { perSecond: rows / (elapsed / 1000), ...cost(rows) }
  } finally {
    await relay.stop()
  }
}

/** The raw relay's commit-to-ack latency under the same load as `latencyRun`'s. */
const rawLatencyRun = async (url: string, topic: string): Promise<RawLatency> => {
  const ackedAt = new Map<string, number>()
  const claimedAt = new Map<string, number>()
  const phases: Phases = { claims: histogram(), sends: histogram(), marks: histogram() }
  const relay = await startRawRelay(url, topic, firstTime(ackedAt), firstTime(claimedAt), phases)
  try {
    await load(url, 20, 1)
    for (const hist of Object.values(phases)) hist.reset()
    const claimsBefore = relay.counts.claims
    const cost = costMeter()
    const { committed } = await load(url, rate, seconds)
    const deadline = Date.now() + 60_000
    while (ackedAt.size < committed.length + 20 && Date.now() < deadline) await Bun.sleep(5)
    const used = cost(committed.length)
    const h = histogram()
    record(committed, ackedAt, h, allRawLatencies)
    const result = {
      ...percentiles(h),
      claims: relay.counts.claims - claimsBefore,
      ...used,
      ...split(committed, claimedAt, ackedAt),
      phases: `claim ${p50p99(phases.claims)} ms, send ${p50p99(phases.sends)} ms, mark and commit ${p50p99(phases.marks)} ms`
    }
    h.destroy()
    return result
  } finally {
    for (const hist of Object.values(phases)) hist.destroy()
    await relay.stop()
  }
}

const latencyRun = async (url: string, topic: string): Promise<Latency> => {
  const work: Work = { transactions: 0, statements: 0, claimedAt: new Map(), claims: histogram(), marks: histogram() }
  const calls = histogram()
  const ackedAt = new Map<string, number>()
  let waiting: { readonly count: number; readonly done: ReturnType<typeof Promise.withResolvers<void>> } | undefined
  return await Effect.runPromise(Effect.gen(function*() {
    const relay = yield* makeRelay(relayConfig(topic))
    const fiber = yield* Effect.forkChild(relay.run)
    const acks = (count: number) =>
      Effect.promise(() => {
        if (ackedAt.size >= count) return Promise.resolve()
        waiting = { count, done: Promise.withResolvers<void>() }
        return waiting.done.promise
      })
    const loaded = (eventsPerSecond: number, forSeconds: number) => Effect.promise(() => load(url, eventsPerSecond, forSeconds))
    // Warm-up: connections, the producer's first metadata fetch, the LISTEN.
    yield* loaded(20, 1)
    yield* acks(20)
    ackedAt.clear()
    calls.reset()
    work.transactions = 0
    work.statements = 0
    work.claimedAt.clear()
    work.claims.reset()
    work.marks.reset()
    const cost = costMeter()
    const { insertRate, committed } = yield* loaded(rate, seconds)
    yield* acks(committed.length).pipe(Effect.timeout("60 seconds"))
    const used = cost(committed.length)
    yield* Fiber.interrupt(fiber)
    const h = histogram()
    record(committed, ackedAt, h, allLatencies)
    const result = {
      ...summaryOf(h, committed.length, insertRate),
      relayTransactions: work.transactions,
      relayStatements: work.statements,
      publishCalls: calls.totalCount,
      publishP50Ms: ms(calls, 50),
      publishP99Ms: ms(calls, 99),
      ...used,
      ...split(committed, work.claimedAt, ackedAt),
      phases: `claim ${p50p99(work.claims)} ms, publish ${p50p99(calls)} ms, mark and commit ${p50p99(work.marks)} ms`
    }
    h.destroy()
    calls.destroy()
    work.claims.destroy()
    work.marks.destroy()
    return result
  }).pipe(Effect.provide(Layer.mergeAll(
    countedDatabase(url, work),
    observedPublisher(`bench-latency-${tag}`, (ids) => {
      firstTime(ackedAt)(ids)
      if (waiting !== undefined && ackedAt.size >= waiting.count) waiting.done.resolve()
    }, (took) => calls.recordValue(Math.round(took * 1000)))
  ))))
}

const cleanup = async () => {
  await kafkaAdmin.deleteTopics({ topics }).catch(() => {})
  await kafkaAdmin.disconnect()
  for (const name of databases) await admin.unsafe(`drop database if exists ${name} with (force)`)
  await admin.end({ timeout: 5 })
}

const goal = (met: boolean) => (met ? "met" : "NOT met")
const say = (line: string) => console.log(line)

say(
  `bench/outbox: ${rows} rows over ${aggregates} aggregates, ${rounds} rounds, relay WORKER_BATCH_SIZE=${batchSize} ` +
    `WORKER_POOL_SIZE=${poolSize}; latency at ${rate} events/s for ${seconds} s ` +
    `(inserts ${durableInserts ? "durable" : "with synchronous_commit=off"}); ` +
    `${adminUrl.replace(/:[^:@/]*@/, ":***@")}, Kafka ${brokers.join(",")}`
)
try {
  const results: Array<{
    raw: number
    relay: number
    ratio: number
    rawCpu: number
    relayCpu: number
    rawRelay: number
    rawRelayCpu: number
    servers: { readonly raw: ServersPerEvent; readonly rawRelay: ServersPerEvent; readonly relay: ServersPerEvent } | undefined
    latency: Latency | undefined
    rawLatency: RawLatency | undefined
  }> = []
  for (let round = 1; round <= rounds; round++) {
    let raw = Number.NaN
    let relay = Number.NaN
    let rawCpu = Number.NaN
    let relayCpu = Number.NaN
    let rawRelay = Number.NaN
    let rawRelayCpu = Number.NaN
    let serversPerEvent: (typeof results)[number]["servers"]
    if (rows > 0) {
      const url = await freshDatabase(`bench_outbox_${tag}_${round}`)
      await fill(url)
      const records = await recordsOf(url)
      const baseline = await rawRun(records, await freshTopic(`bench-outbox-raw-${tag}-${round}`))
      const rawRelayUrl = await freshDatabase(`bench_outbox_rawrelay_${tag}_${round}`)
      await fill(rawRelayUrl)
      const rawRelayResult = await rawRelayRun(rawRelayUrl, await freshTopic(`bench-outbox-rawrelay-${tag}-${round}`))
      const run = await relayRun(url, await freshTopic(`bench-outbox-relay-${tag}-${round}`))
      if (run.published !== rows) throw new Error(`the relay published ${run.published} of ${rows}`)
      raw = baseline.perSecond
      rawCpu = baseline.cpuMicros
      rawRelay = rawRelayResult.perSecond
      rawRelayCpu = rawRelayResult.cpuMicros
      relay = run.perSecond
      relayCpu = run.cpuMicros
      serversPerEvent = { raw: baseline.servers, rawRelay: rawRelayResult.servers, relay: run.servers }
    }
    const measureLatency = seconds > 0 && rate > 0
    const rawLatency = measureLatency
      ? await rawLatencyRun(await freshDatabase(`bench_outbox_rawlatency_${tag}_${round}`), await freshTopic(`bench-outbox-rawlatency-${tag}-${round}`))
      : undefined
    const latency = measureLatency
      ? await latencyRun(await freshDatabase(`bench_outbox_latency_${tag}_${round}`), await freshTopic(`bench-outbox-latency-${tag}-${round}`))
      : undefined
    results.push({ raw, relay, ratio: relay / raw, rawCpu, relayCpu, rawRelay, rawRelayCpu, servers: serversPerEvent, latency, rawLatency })
    say(
      `round ${round}: ` +
        (rows > 0
          ? `raw kafkajs producer ${Math.round(raw)} events/s (${cpuText(rawCpu, serversPerEvent!.raw)}) | ` +
            `raw relay ${Math.round(rawRelay)} events/s (${cpuText(rawRelayCpu, serversPerEvent!.rawRelay)}) | ` +
            `relay ${Math.round(relay)} events/s = ${(relay / raw).toFixed(2)} of raw, ${(relay / rawRelay).toFixed(2)} of the raw relay ` +
            `(${cpuText(relayCpu, serversPerEvent!.relay)})`
          : "") +
        (latency === undefined
          ? ""
          : `${rows > 0 ? " | " : ""}latency ${latency.events} events inserted at ${latency.insertRate}/s: p50 ${latency.p50Ms} ms, p99 ${latency.p99Ms} ms, max ${latency.maxMs} ms ` +
            `(relay: ${latency.relayTransactions} claim transactions, ${latency.relayStatements} other statements, ` +
            `${latency.publishCalls} publish calls taking p50 ${latency.publishP50Ms} ms, p99 ${latency.publishP99Ms} ms; ${cpuText(latency.cpuMicros!, latency.servers!)}; ` +
            `commit to claim p50 ${latency.toClaimP50Ms} ms, p99 ${latency.toClaimP99Ms} ms, claim to ack p50 ${latency.claimToAckP50Ms} ms, p99 ${latency.claimToAckP99Ms} ms; ` +
            `p50/p99: ${latency.phases})`) +
        (rawLatency === undefined
          ? ""
          : ` | raw relay at the same rate: p50 ${rawLatency.p50Ms} ms, p99 ${rawLatency.p99Ms} ms, max ${rawLatency.maxMs} ms ` +
            `(${rawLatency.claims} claim transactions; ${cpuText(rawLatency.cpuMicros, rawLatency.servers)}; ` +
            `commit to claim p50 ${rawLatency.toClaimP50Ms} ms, p99 ${rawLatency.toClaimP99Ms} ms, ` +
            `claim to ack p50 ${rawLatency.claimToAckP50Ms} ms, p99 ${rawLatency.claimToAckP99Ms} ms; p50/p99: ${rawLatency.phases})`)
    )
  }
  const rawMedian = median(results.map((r) => r.raw))
  const relayMedian = median(results.map((r) => r.relay))
  const ratios = results.map((r) => r.ratio)
  const latencies = results.flatMap((r) => (r.latency === undefined ? [] : [r.latency]))
  const overall = latencies.length === 0
    ? undefined
    : summaryOf(allLatencies, latencies.reduce((sum, l) => sum + l.events, 0), median(latencies.map((l) => l.insertRate)))
  const summary = {
    rows,
    aggregates,
    rounds,
    batchSize,
    poolSize,
    ...(rows > 0
      ? {
        rawPerSecond: Math.round(rawMedian),
        relayPerSecond: Math.round(relayMedian),
        ratio: Number(median(ratios).toFixed(2)),
        ratioOfMedians: Number((relayMedian / rawMedian).toFixed(2)),
        ratioMin: Number(Math.min(...ratios).toFixed(2)),
        ratioMax: Number(Math.max(...ratios).toFixed(2)),
        rawCpuMicrosPerEvent: median(results.map((r) => r.rawCpu)),
        rawRelayPerSecond: Math.round(median(results.map((r) => r.rawRelay))),
        rawRelayCpuMicrosPerEvent: median(results.map((r) => r.rawRelayCpu)),
        ratioToRawRelay: Number(median(results.map((r) => r.relay / r.rawRelay)).toFixed(2)),
        relayCpuMicrosPerEvent: median(results.map((r) => r.relayCpu)),
        ...(results[0]!.servers!.rawRelay.postgres === undefined
          ? {}
          : {
            machineCpuMicrosPerEvent: {
              raw: median(results.map((r) => machineCpu(r.rawCpu, r.servers!.raw))),
              rawRelay: median(results.map((r) => machineCpu(r.rawRelayCpu, r.servers!.rawRelay))),
              relay: median(results.map((r) => machineCpu(r.relayCpu, r.servers!.relay))),
              rawRelayPostgres: median(results.map((r) => r.servers!.rawRelay.postgres!))
            }
          })
      }
      : {}),
    ...(overall === undefined
      ? {}
      : {
        rate,
        seconds,
        latency: overall,
        p99MsMedianOfRounds: median(latencies.map((l) => l.p99Ms)),
        rawRelayLatency: percentiles(allRawLatencies)
      })
  }
  if (rows > 0) {
    say(`median: raw kafkajs producer (idempotent, acks=all, batches of ${batchSize}, ${poolSize} senders) ${summary.rawPerSecond} events/s, ${summary.rawCpuMicrosPerEvent} µs CPU/event in this process`)
    say(
      `median: raw relay (the relay's statements on postgres.js and kafkajs alone, ${poolSize} workers) ${summary.rawRelayPerSecond} events/s, ` +
        `${summary.rawRelayCpuMicrosPerEvent} µs CPU/event in this process; relay / raw relay, median of per-round ratios: ${summary.ratioToRawRelay!.toFixed(2)}`
    )
    say(
      `median: relay ${summary.relayPerSecond} events/s (goal >= ${goals.perSecond}: ${goal(relayMedian >= goals.perSecond)}); ` +
        `ratio to raw: median of per-round ratios ${summary.ratio!.toFixed(2)} (spread ${summary.ratioMin!.toFixed(2)}–${summary.ratioMax!.toFixed(2)}), ` +
        `ratio of medians ${summary.ratioOfMedians!.toFixed(2)} (goal >= ${goals.ratio}: ${goal(median(ratios) >= goals.ratio)}); ` +
        `${summary.relayCpuMicrosPerEvent} µs CPU/event in this process`
    )
    const machine = summary.machineCpuMicrosPerEvent
    if (machine !== undefined) {
      // What the cores allow whatever the scheduling: every event costs this much CPU somewhere here.
      const bound = (micros: number) => Math.round((cores * 1_000_000) / micros)
      say(
        `CPU per event on this machine (this process + PostgreSQL + Kafka broker), medians: raw producer ${machine.raw} µs, ` +
          `raw relay ${machine.rawRelay} µs (PostgreSQL alone ${machine.rawRelayPostgres}), relay ${machine.relay} µs; ` +
          `${cores} cores at full use allow at most ${bound(machine.raw)} events/s of the raw producer's work, ${bound(machine.rawRelay)} of the raw relay's, ` +
          `${bound(machine.relay)} of the relay's; ${goals.perSecond} events/s leaves ${Math.round((cores * 1_000_000) / goals.perSecond)} µs per event for all of it`
      )
    }
  }
  if (overall !== undefined) {
    say(
      `latency, commit to Kafka ack, all ${overall.events} events of ${latencies.length} round(s) scheduled at ${rate} events/s ` +
        `(inserted at ${overall.insertRate}/s, median of rounds): ` +
        `p50 ${overall.p50Ms} ms, p99 ${overall.p99Ms} ms (goal < ${goals.p99Ms} ms: ${goal(overall.p99Ms < goals.p99Ms)}), max ${overall.maxMs} ms; ` +
        `raw relay (the same statements on postgres.js and kafkajs alone), all its events: ` +
        `p50 ${summary.rawRelayLatency!.p50Ms} ms, p99 ${summary.rawRelayLatency!.p99Ms} ms, max ${summary.rawRelayLatency!.maxMs} ms`
    )
  }
  if (asJson) console.log(JSON.stringify(summary))
} finally {
  await cleanup()
}
