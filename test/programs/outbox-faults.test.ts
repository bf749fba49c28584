/**
 * The outbox's fault proofs, on real PostgreSQL and real Kafka, with every program a process:
 *
 * 1. Kafka stopped (a private broker's process, test/support/kafkaBroker.ts; the shared one is
 *    never touched): the relay's breaker opens, `/readyz` reports `kafka` and `breaker` false,
 *    the events written meanwhile stay pending and none fails; with the broker back every one of
 *    them is in the topic, the breaker is closed, its trips are counted, and `/readyz` is ready.
 * 2. The relay killed with SIGKILL while it publishes, then started again: every event is in the
 *    topic (duplicates allowed, counted), each aggregate's events in order, and the
 *    order-events consumer's read model is exact anyway.
 * 3. One trace from `POST /orders` through the outbox row and the relay's publish to the
 *    consumer's handling, exported by the three programs to one OTLP receiver.
 */
import { afterAll, describe, expect, test } from "bun:test"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Scope from "effect/Scope"
import { Kafka as KafkaClient, logLevel } from "kafkajs"
import postgres from "postgres"
import * as Kafka from "../../layers/kafka/index.ts"
import { Subscriber } from "../../src/capabilities/Subscriber.ts"
import { createTopic, deleteTopic } from "../outbox/kafka.ts"
import { freshDatabases } from "../support/databases.ts"
import { type KafkaBroker, probeKafkaJars, startKafkaBroker } from "../support/kafkaBroker.ts"
import * as OtlpReceiver from "../support/otlpReceiver.ts"
import { opsUrl, type RunningProgram, startProgram } from "../support/program.ts"
import { findSamples, parsePrometheus } from "../support/prometheus.ts"
import { freshName, kafkaBrokers, postgresUrl, probeKafka, probePostgres, requireServer } from "../support/servers.ts"
import { until } from "../support/until.ts"

const url = postgresUrl()
const sharedBrokers = kafkaBrokers()

// The condition, not a fixed sleep, is what the test waits on; polled often, as the faults are brief.
const waitUntil = (what: string, check: () => Promise<boolean>, within = 60_000, every = 50) => until(what, check, within, every)

interface Inserted {
  readonly id: string
  readonly aggregate: string
  readonly seq: number
  readonly customer: string
  readonly cents: number
}

/**
 * Writes `OrderCreated` events straight into the outbox, as another writer than the API would:
 * `count` events spread over `aggregates` (so each has several, numbered by `aggregate_seq`)
 * and the customers, each with a total in cents.
 */
const insertEvents = async (
  sql: postgres.Sql,
  count: number,
  options: { readonly aggregates: ReadonlyArray<string>; readonly customers: ReadonlyArray<string>; readonly seqs: Map<string, number> }
): Promise<Array<Inserted>> => {
  const events: Array<Inserted> = []
  for (let i = 0; i < count; i++) {
    const aggregate = options.aggregates[i % options.aggregates.length]!
    const seq = (options.seqs.get(aggregate) ?? 0) + 1
    options.seqs.set(aggregate, seq)
    events.push({
      id: crypto.randomUUID(),
      aggregate,
      seq,
      customer: options.customers[(i * 7 + seq) % options.customers.length]!,
      cents: 100 + ((i * 137) % 9_900)
    })
  }
  // Chunks keep each statement under PostgreSQL's 65535 parameters.
  for (let at = 0; at < events.length; at += 1_000) {
    const rows = events.slice(at, at + 1_000).map((e) => ({
      id: e.id,
      aggregate_type: "order",
      aggregate_id: e.aggregate,
      aggregate_seq: e.seq,
      event_type: "OrderCreated",
      payload: JSON.stringify({
        id: e.id,
        type: "OrderCreated",
        aggregateId: e.aggregate,
        occurredAt: new Date().toISOString(),
        data: { id: e.aggregate, customerId: e.customer, total: e.cents / 100 }
      })
    }))
    await sql`
      insert into outbox_events (id, aggregate_type, aggregate_id, aggregate_seq, event_type, payload)
      select id::uuid, aggregate_type, aggregate_id, aggregate_seq, event_type, payload::jsonb
      from json_to_recordset(${JSON.stringify(rows)}::text::json)
        as t(id text, aggregate_type text, aggregate_id text, aggregate_seq int8, event_type text, payload text)`
  }
  return events
}

const statusCounts = async (sql: postgres.Sql): Promise<{ pending: number; published: number; failed: number }> => {
  const counts = { pending: 0, published: 0, failed: 0 }
  for (const row of await sql`select status, count(*)::int as n from outbox_events group by status`) {
    counts[row.status as keyof typeof counts] = row.n as number
  }
  return counts
}

const metricsOf = async (ops: string) => parsePrometheus(await (await fetch(`${ops}/metrics`)).text())

/** The value of the one sample of `name` with `labels`, 0 when absent (a counter never incremented). */
const metric = async (ops: string, name: string, labels: Record<string, string> = {}) => {
  const found = findSamples(await metricsOf(ops), name, labels)
  if (found.length > 1) throw new Error(`more than one sample ${name}${JSON.stringify(labels)}`)
  return found[0]?.value ?? 0
}

const readiness = async (ops: string) => {
  const response = await fetch(`${ops}/readyz`)
  return { status: response.status, checks: ((await response.json()) as { checks: Record<string, boolean> }).checks }
}

interface Record_ {
  readonly key: string
  readonly eventId: string
  readonly partition: number
  readonly traceparent: string | undefined
}

/**
 * Every record of `topic`, in each partition's order: reads from the beginning until each
 * partition's end offset as it was when called, so nothing written before the call is missed
 * however many duplicates there are.
 */
const readTopic = async (brokers: ReadonlyArray<string>, topic: string, within = 60_000): Promise<Array<Record_>> => {
  const kafka = new KafkaClient({ clientId: "outbox-faults-reader", brokers: [...brokers], logLevel: logLevel.NOTHING })
  const admin = kafka.admin()
  await admin.connect()
  const ends = new Map<number, bigint>()
  try {
    for (const { partition, high } of await admin.fetchTopicOffsets(topic)) ends.set(partition, BigInt(high))
  } finally {
    await admin.disconnect()
  }
  const next = new Map<number, bigint>([...ends.keys()].map((p) => [p, 0n]))
  const done = () => [...ends].every(([p, end]) => next.get(p)! >= end)
  const records: Array<Record_> = []
  if (done()) return records
  const consumer = kafka.consumer({ groupId: freshName("outbox-faults-reader"), maxWaitTimeInMs: 200 })
  await consumer.connect()
  try {
    await consumer.subscribe({ topic, fromBeginning: true })
    let finished: () => void = () => {}
    const all = new Promise<void>((resolve) => {
      finished = resolve
    })
    await consumer.run({
      eachMessage: async ({ partition, message }) => {
        if (BigInt(message.offset) >= (ends.get(partition) ?? 0n)) return
        records.push({
          key: message.key?.toString() ?? "",
          eventId: message.headers?.["event-id"]?.toString() ?? "",
          partition,
          traceparent: message.headers?.["traceparent"]?.toString()
        })
        next.set(partition, BigInt(message.offset) + 1n)
        if (done()) finished()
      }
    })
    let timer: ReturnType<typeof setTimeout> | undefined
    await Promise.race([
      all,
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`read ${records.length} records of ${topic} within ${within} ms, not all`)), within)
      })
    ]).finally(() => clearTimeout(timer))
  } finally {
    await consumer.disconnect()
  }
  return records
}

/**
 * What a bug would change in what was read back: every event present, nothing unknown, and each
 * aggregate's events first seen in seq order. A duplicate normally repeats the event just sent
 * (a batch published again after a crash); one that comes after a later event of its aggregate
 * is "late": a publish that timed out while kafkajs kept retrying it, landing after the relay
 * published the event again and moved on. `late` says whether that may happen in the scenario.
 */
const checkDelivery = (records: ReadonlyArray<Record_>, events: ReadonlyArray<Inserted>, late: "allowed" | "none") => {
  const byId = new Map(events.map((e) => [e.id, e]))
  const unknown = records.filter((r) => !byId.has(r.eventId))
  expect(unknown).toEqual([])
  const seen = new Set(records.map((r) => r.eventId))
  const missing = events.filter((e) => !seen.has(e.id))
  expect(missing).toEqual([])
  const last = new Map<string, number>()
  const outOfOrder: Array<string> = []
  const lateOnes: Array<string> = []
  for (const record of records) {
    const event = byId.get(record.eventId)!
    expect(record.key).toBe(event.aggregate)
    const before = last.get(event.aggregate) ?? 0
    if (event.seq === before + 1) last.set(event.aggregate, event.seq)
    else if (event.seq < before) lateOnes.push(`${event.aggregate}: ${event.seq} after ${before}`)
    else if (event.seq !== before) outOfOrder.push(`${event.aggregate}: ${event.seq} after ${before}`)
  }
  expect(outOfOrder).toEqual([])
  if (late === "none") expect(lateOnes).toEqual([])
  return { duplicates: records.length - seen.size, late: lateOnes.length }
}

const relayEnv = (databaseUrl: string, brokers: ReadonlyArray<string>, topic: string, extra: Record<string, string> = {}) => ({
  DATABASE_URL: databaseUrl,
  BROKER: "kafka",
  KAFKA_BROKERS: brokers.join(","),
  KAFKA_TOPIC_EVENTS: topic,
  KAFKA_CLIENT_ID: freshName("relay"),
  ...extra
})

const stop = async (program: RunningProgram) => {
  program.kill("SIGTERM")
  return program.exited
}

if (
  await requireServer("PostgreSQL", probePostgres(url)) &&
  await requireServer("Kafka", probeKafka(sharedBrokers)) &&
  await requireServer("Kafka jars for a private broker", probeKafkaJars())
) {
  const databases = freshDatabases()
  const topics: Array<string> = []
  afterAll(async () => {
    await databases.dropAll()
    for (const topic of topics) await deleteTopic(sharedBrokers, topic)
  })

  const prepareOutbox = async (prefix: string) => {
    const databaseUrl = await databases.create(prefix)
    const sql = postgres(databaseUrl, { max: 2, onnotice: () => {} })
    return { databaseUrl, sql }
  }

  describe("outbox faults", () => {
    test("Kafka down: the breaker opens, events stay pending and none fails; Kafka back: every event is in the topic, the breaker closed, its trips counted", async () => {
      const broker: KafkaBroker = await startKafkaBroker()
      const topic = freshName("outbox_down")
      const { databaseUrl, sql } = await prepareOutbox("faults_down")
      let relay: RunningProgram | undefined
      // An idle subscriber on the same broker: its readiness must follow the cluster, not the
      // sends it never makes.
      const subscriberScope = Effect.runSync(Scope.make())
      try {
        await createTopic(broker.brokers, topic)
        const subscriber = Context.get(
          await Effect.runPromise(Layer.buildWithScope(Kafka.subscriberLayer({ brokers: broker.brokers, logLevel: "nothing" }), subscriberScope)),
          Subscriber
        )
        const subscriberHealthy = () => Effect.runPromise(subscriber.healthy)
        expect(await subscriberHealthy()).toBe(true)
        relay = startProgram("outbox-relay.ts", relayEnv(databaseUrl, broker.brokers, topic, {
          KAFKA_FAILURE_THRESHOLD: "2",
          KAFKA_SUCCESS_THRESHOLD: "1",
          KAFKA_RESET_TIMEOUT: "2s",
          KAFKA_TIMEOUT_DURATION: "1s",
          KAFKA_TIMEOUT: "1s",
          KAFKA_BASE_DELAY: "200ms",
          KAFKA_MAX_DELAY: "1s",
          // A publish Kafka cannot take costs no attempt: with a single retry allowed, counted
          // attempts (the probes, the timeouts) would fail these events within seconds.
          WORKER_MAX_RETRIES: "1",
          WORKER_INTERVAL: "500ms",
          METRICS_QUEUE_INTERVAL: "200ms"
        }))
        await relay.waitFor(/outbox relay publishing to/, 60_000)
        const ops = await opsUrl(relay)
        const seqs = new Map<string, number>()
        const customers = ["ann", "ben"]
        const aggregates = ["o1", "o2", "o3", "o4", "o5"]

        // Working: published and marked.
        const before = await insertEvents(sql, 5, { aggregates, customers, seqs })
        await waitUntil("the first events published", async () => (await statusCounts(sql)).published === 5)
        expect(await metric(ops, "txstream_circuit_breaker_state", { breaker: "kafka" })).toBe(0)
        expect((await readiness(ops)).checks).toEqual({ database: true, kafka: true, breaker: true })

        // Kafka goes away; events keep being written.
        await broker.stop("SIGTERM")
        const during = await insertEvents(sql, 20, { aggregates, customers, seqs })
        await waitUntil("the breaker open", async () => (await metric(ops, "txstream_circuit_breaker_state", { breaker: "kafka" })) === 2, 30_000)
        const down = await readiness(ops)
        expect(down.status).toBe(503)
        expect(down.checks).toEqual({ database: true, kafka: false, breaker: false })
        expect(await subscriberHealthy()).toBe(false)
        // A probe after the reset timeout fails too (Kafka is still down) and opens it again.
        await waitUntil("a failed probe re-opening the breaker", async () =>
          (await metric(ops, "txstream_circuit_breaker_trips_total", { breaker: "kafka" })) >= 2, 30_000)
        expect(await statusCounts(sql)).toEqual({ pending: 20, published: 5, failed: 0 })
        expect(await metric(ops, "txstream_events_failed_total")).toBe(0)
        expect((await sql`select max(attempts)::int as most from outbox_events`)[0]!.most).toBe(0)
        const tripsWhileDown = await metric(ops, "txstream_circuit_breaker_trips_total", { breaker: "kafka" })

        // Kafka comes back on the same port and data; readiness sees it before the breaker closes.
        await broker.restart()
        await waitUntil("readiness seeing Kafka again", async () => (await readiness(ops)).checks.kafka === true, 10_000)
        await waitUntil("the idle subscriber seeing Kafka again", subscriberHealthy, 10_000)
        const back = Date.now()
        await waitUntil("every event published", async () => (await statusCounts(sql)).published === 25, 60_000)
        expect(await statusCounts(sql)).toEqual({ pending: 0, published: 25, failed: 0 })
        const recovered = Date.now() - back
        await waitUntil("the breaker closed", async () => (await metric(ops, "txstream_circuit_breaker_state", { breaker: "kafka" })) === 0, 10_000)
        const up = await readiness(ops)
        expect(up.status).toBe(200)
        expect(up.checks).toEqual({ database: true, kafka: true, breaker: true })
        const trips = await metric(ops, "txstream_circuit_breaker_trips_total", { breaker: "kafka" })
        expect(trips).toBeGreaterThanOrEqual(tripsWhileDown)
        expect(await metric(ops, "txstream_events_failed_total")).toBe(0)
        expect(await metric(ops, "txstream_events_published_total")).toBe(25)

        const records = await readTopic(broker.brokers, topic)
        const { duplicates, late } = checkDelivery(records, [...before, ...during], "allowed")
        const attempts = (await sql`select coalesce(max(attempts), 0)::int as n from outbox_events`)[0]!.n as number
        console.log(
          `kafka down: ${records.length} records for 25 events (${duplicates} duplicates, ${late} of them late), ${trips} breaker trips, ` +
            `at most ${attempts} attempts on one event, all published ${recovered} ms after the broker served again`
        )
        expect(await stop(relay)).toBe(0)
      } finally {
        if (relay !== undefined) {
          relay.kill("SIGKILL")
          await relay.exited
        }
        await Effect.runPromise(Scope.close(subscriberScope, Exit.void))
        await sql.end()
        await broker.close()
      }
    }, 240_000)

    test("a relay killed with SIGKILL while it publishes, then restarted: every event is in the topic in each aggregate's order, and the read model is exact", async () => {
      const topic = freshName("outbox_kill")
      topics.push(topic)
      await createTopic(sharedBrokers, topic)
      const { databaseUrl, sql } = await prepareOutbox("faults_kill")
      // A worker sends its mark and the COMMIT together. Blocked on the lock below, its session
      // would run both once the lock goes, client gone or not (they are in its socket already),
      // and nothing would be published twice. PostgreSQL notices the dropped connection during a
      // statement when asked to look: then the killed relay's transactions roll back, as they
      // do when the kill comes before the mark is sent.
      await sql.unsafe(`alter database ${new URL(databaseUrl).pathname.slice(1)} set client_connection_check_interval = '50ms'`)
      const readUrl = await databases.create("faults_read")
      const read = postgres(readUrl, { max: 1, onnotice: () => {} })
      const env = relayEnv(databaseUrl, sharedBrokers, topic, { WORKER_INTERVAL: "500ms" })
      const total = 3_000
      let first: RunningProgram | undefined
      let second: RunningProgram | undefined
      let consumer: RunningProgram | undefined
      try {
        first = startProgram("outbox-relay.ts", env)
        await first.waitFor(/outbox relay publishing to/, 60_000)
        const customers = ["alice", "bob", "carol", "dave", "erin"]
        const aggregates = Array.from({ length: 60 }, (_, i) => `order-${i}`)
        // One transaction: the relay sees all of them at once and keeps its three workers busy.
        const events = await sql.begin((tx) => insertEvents(tx as unknown as postgres.Sql, total, { aggregates, customers, seqs: new Map() }))

        // Killed once a fifth is published, at the worst moment: Kafka has acknowledged each
        // worker's batch and its marking is not committed. A SHARE lock on the table lets claims
        // (row locks) through and holds every marking UPDATE until the lock is released, so each
        // of the three workers ends up waiting right after its publish; then the kill.
        await waitUntil("a fifth published", async () => (await statusCounts(sql)).published >= total / 5, 60_000, 10)
        const holder = postgres(databaseUrl, { max: 1, onnotice: () => {} })
        try {
          await holder.begin(async (tx) => {
            await tx`lock table outbox_events in share mode`
            const marksWaiting = async () =>
              (await sql`select count(*)::int as n from pg_stat_activity
                         where datname = current_database() and wait_event_type = 'Lock' and query like '%update outbox_events%'`)[0]!.n
            await waitUntil("every worker waiting to mark an acknowledged batch", async () => (await marksWaiting()) === 3)
            first!.kill("SIGKILL")
            expect(await first!.exited).not.toBe(0)
            // Released only once the server has seen the connections drop and ended the marks.
            await waitUntil("the killed relay's marks ended", async () => (await marksWaiting()) === 0)
          })
        } finally {
          await holder.end()
        }
        // Its open transactions roll back as PostgreSQL sees the connections drop.
        const atKill = await statusCounts(sql)
        expect(atKill.pending).toBeGreaterThan(0)
        expect(atKill.published).toBeGreaterThan(0)
        expect(atKill.failed).toBe(0)

        second = startProgram("outbox-relay.ts", env)
        await waitUntil("every event published", async () => (await statusCounts(sql)).published === total, 120_000)
        expect(await statusCounts(sql)).toEqual({ pending: 0, published: total, failed: 0 })
        expect(await stop(second)).toBe(0)

        const records = await readTopic(sharedBrokers, topic)
        // Nothing timed out here: a duplicate can only repeat the event last sent.
        const { duplicates } = checkDelivery(records, events, "none")
        // At least the three batches acknowledged and not marked went out twice.
        expect(duplicates).toBeGreaterThanOrEqual(3)
        expect(records.length).toBe(total + duplicates)

        // The consumer applies every record, duplicates too, and each event once.
        consumer = startProgram("order-events-consumer.ts", {
          DATABASE_URL: readUrl,
          BROKER: "kafka",
          KAFKA_BROKERS: sharedBrokers.join(","),
          KAFKA_TOPIC_EVENTS: topic,
          KAFKA_GROUP_ID: freshName("readmodel"),
          KAFKA_CLIENT_ID: freshName("consumer")
        })
        await consumer.waitFor(/order-events consumer reading/, 60_000)
        const consumerOps = await opsUrl(consumer)
        await waitUntil("every record handled", async () =>
          (await metric(consumerOps, "messages_handled_total", { outcome: "ack" })) >= records.length, 120_000, 200)
        // At least once: a group rebalance while the new consumer joins hands it again what it
        // had not committed, so it may apply a record twice; the inbox keeps the model exact.
        const applied = await metric(consumerOps, "messages_handled_total", { outcome: "ack" })
        expect(applied).toBeGreaterThanOrEqual(records.length)
        const expected = customers.map((customer) => {
          const mine = events.filter((e) => e.customer === customer)
          return { customer_id: customer, orders: mine.length, total_cents: String(mine.reduce((sum, e) => sum + e.cents, 0)) }
        })
        const model = (await read`select customer_id, orders::int as orders, total_cents::text as total_cents from customer_orders order by customer_id`)
          .map((row) => ({ ...row }))
        expect(model).toEqual(expected)
        expect((await read`select count(*)::int as n from inbox`)[0]!.n).toBe(total)
        expect(await stop(consumer)).toBe(0)
        console.log(
          `relay killed: ${atKill.published} of ${total} marked published at the kill; ${records.length} records read back, ` +
            `${duplicates} duplicates, ${applied} applied by the consumer; read model exact over ${customers.length} customers`
        )
      } finally {
        for (const program of [first, second, consumer]) {
          if (program === undefined) continue
          program.kill("SIGKILL")
          await program.exited
        }
        await read.end()
        await sql.end()
      }
    }, 360_000)

    test("one trace: POST /orders, its outbox row, the relay's publish and the consumer's handling", () =>
      Effect.runPromise(Effect.scoped(Effect.gen(function*() {
        const receiver = yield* OtlpReceiver.make
        const topic = freshName("outbox_trace")
        topics.push(topic)
        yield* Effect.promise(() => createTopic(sharedBrokers, topic))
        const { databaseUrl, sql } = yield* Effect.promise(() => prepareOutbox("faults_trace"))
        const readUrl = yield* Effect.promise(() => databases.create("faults_trace_read"))
        const otel = { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint }
        const programs: Array<RunningProgram> = []
        yield* Effect.addFinalizer(() =>
          Effect.promise(async () => {
            for (const program of programs) {
              program.kill("SIGKILL")
              await program.exited
            }
            await sql.end()
          })
        )
        const start = (program: string, env: Record<string, string>) => {
          const running = startProgram(program, { ...env, ...otel })
          programs.push(running)
          return running
        }
        const api = start("orders-api.ts", { DATABASE_URL: databaseUrl, SERVER_PORT: "0", SERVER_HOST: "127.0.0.1" })
        const apiUrl = /listening on (http:\/\/[^\s"\\]+)/.exec(yield* Effect.promise(() => api.waitFor(/orders API listening on/, 60_000)))![1]!
        // The relay after the API: the API's migrations made the outbox.
        const relay = start("outbox-relay.ts", relayEnv(databaseUrl, sharedBrokers, topic))
        const consumer = start("order-events-consumer.ts", {
          DATABASE_URL: readUrl,
          BROKER: "kafka",
          KAFKA_BROKERS: sharedBrokers.join(","),
          KAFKA_TOPIC_EVENTS: topic,
          KAFKA_GROUP_ID: freshName("trace"),
          KAFKA_CLIENT_ID: freshName("trace")
        })
        yield* Effect.promise(() => Promise.all([relay.waitFor(/outbox relay publishing to/, 60_000), consumer.waitFor(/order-events consumer reading/, 60_000)]))

        const response = yield* Effect.promise(() =>
          fetch(`${apiUrl}/orders`, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify({ customerId: "tracy", items: [{ sku: "lamp", quantity: 2, unitPrice: 19.99 }] })
          })
        )
        expect(response.status).toBe(201)
        const order = (yield* Effect.promise(() => response.json())) as { id: string }

        // The outbox row carries the API's trace context.
        const [row] = yield* Effect.promise(() => sql`select headers->>'traceparent' as traceparent from outbox_events where aggregate_id = ${order.id}`)
        const stored = /^00-([0-9a-f]{32})-([0-9a-f]{16})-01$/.exec(String(row?.traceparent))
        expect(stored).not.toBeNull()
        const traceId = stored![1]!
        const storedSpanId = stored![2]!

        const read = postgres(readUrl, { max: 1, onnotice: () => {} })
        yield* Effect.promise(() =>
          waitUntil("the order applied to the read model", async () =>
            (await read`select orders::int as n from customer_orders where customer_id = 'tracy'`.catch(() => []))[0]?.n === 1, 60_000, 100)
            .finally(() => read.end())
        )
        // The Kafka record carries it on.
        const [record] = yield* Effect.promise(() => readTopic(sharedBrokers, topic))
        expect(record!.traceparent).toBe(row!.traceparent)

        const within = { timeout: "30 seconds" } as const
        // The API: the server span of the request, and the span whose context went into the row, under it.
        const server = yield* receiver.awaitSpan((s) => s.traceId === traceId && s.name === "POST /orders", within)
        expect(server.serviceName).toBe("orders-api")
        expect(server.kind).toBe(2)
        const storedSpan = yield* receiver.awaitSpan((s) => s.spanId === storedSpanId, within)
        expect(storedSpan.traceId).toBe(traceId)
        expect(storedSpan.serviceName).toBe("orders-api")
        const spans = yield* receiver.spans
        const ancestors = (span: OtlpReceiver.ReceivedSpan): Array<string> => {
          const parent = spans.find((s) => s.spanId === span.parentSpanId)
          return parent === undefined ? [] : [parent.spanId, ...ancestors(parent)]
        }
        expect([storedSpan.spanId, ...ancestors(storedSpan)]).toContain(server.spanId)

        // The relay: its publish continues the stored context; the publisher's span is its child.
        const relayed = yield* receiver.awaitSpan((s) => s.traceId === traceId && s.name === "outbox relay publish", within)
        expect(relayed.serviceName).toBe("outbox-relay")
        expect(relayed.kind).toBe(4)
        expect(relayed.parentSpanId).toBe(storedSpanId)
        const published = yield* receiver.awaitSpan((s) => s.parentSpanId === relayed.spanId && s.name === `publish ${topic}`, within)
        expect(published.traceId).toBe(traceId)

        // The consumer: its handling is a child of the context the record carried.
        const consumed = yield* receiver.awaitSpan((s) => s.traceId === traceId && s.name === `consume ${topic}`, within)
        expect(consumed.serviceName).toBe("order-events-consumer")
        expect(consumed.kind).toBe(5)
        expect(consumed.parentSpanId).toBe(storedSpanId)

        for (const program of programs.splice(0)) {
          program.kill("SIGTERM")
          expect(yield* Effect.promise(() => program.exited)).toBe(0)
        }
      }))), 180_000)
  })
}
