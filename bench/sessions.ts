/**
 * Session worker throughput with strict per-session order, on the PostgreSQL and memory
 * backends, each next to a baseline in the same run.
 *
 *   bun run bench/sessions.ts [--sessions 100] [--messages 200] [--memory-messages 1000]
 *                             [--concurrency 20] [--batch 100] [--pool 25] [--rounds 5]
 *                             [--backends postgres,memory] [--warmup 1]
 *
 * Each round fills fresh queues with `sessions` × `messages` session messages (sent seq by seq
 * across the sessions, as live traffic interleaves them), then drains them:
 * - PostgreSQL, the session worker (`makeWorker` + the ordered handler, `concurrency` slots,
 *   receive batch `batch`): rate = messages / (start → last completion counted). The handler's
 *   out-of-order and duplicate counters must stay 0, and a check of its own in the downstream
 *   fails the run unless every session's seqs arrive as 1, 2, 3, ….
 * - PostgreSQL baseline: `concurrency` bare loops over the same table and the same kind of rows
 *   (`SELECT … ORDER BY sequence_number LIMIT batch FOR UPDATE SKIP LOCKED` + `DELETE` in one
 *   transaction), no sessions, no order, on the same pool.
 * - memory, the session worker as above over the memory queue (`memory-messages` per session).
 * - memory baseline: one plain loop over the same messages in arrays, with the same order check.
 * `warmup` uncounted rounds of each, of the same size, come first, so the counted rounds do not
 * pay for the JIT: the optimizing compiler was still at work on the worker's path well after a
 * warm-up of 10 messages per session (the bare loops are little code and were ready sooner).
 * Each round line also shows the process's CPU time per message of the worker's run (all
 * threads, JIT and GC included; on PostgreSQL the client side only): on a shared machine it
 * moves less than the rate. Baseline and worker alternate which goes first from round to
 * round; the medians, the ratio of
 * the medians and the median of the per-round ratios are printed (see `summary.ts`), then one
 * JSON line.
 *
 * The worker is configured to drain, not to wait: RECEIVE_WAIT 0, IDLE_THRESHOLD 1 (every message
 * is in the queue before it starts, so an empty receive means the session is done).
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Scope from "effect/Scope"
import postgres from "postgres"
import * as MemorySessionQueue from "../layers/memory/sessionQueue.ts"
import * as PostgresSql from "../layers/postgres/sql.ts"
import { SessionQueue } from "../src/capabilities/SessionQueue.ts"
import { SqlDatabase } from "../src/capabilities/SqlDatabase.ts"
import { CircuitBreaker } from "../src/resilience/circuitBreaker.ts"
import { type WorkerConfig, workerDefaults } from "../src/sessions/config.ts"
import { sessionMessage } from "../src/sessions/messages.ts"
import * as Metrics from "../src/sessions/metrics.ts"
import { orderedHandler } from "../src/sessions/orderedHandler.ts"
import * as SqlSessionQueue from "../src/sessions/sqlQueue.ts"
import { makeWorker } from "../src/sessions/worker.ts"
import { median } from "./summary.ts"

const text = (name: string, fallback: string) => {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 ? process.argv[i + 1]! : fallback
}
const arg = (name: string, fallback: number) => Number(text(name, String(fallback)))
const sessions = arg("sessions", 100)
const perSession = arg("messages", 200)
const memoryPerSession = arg("memory-messages", 1000)
const concurrency = arg("concurrency", 20)
const batch = arg("batch", 100)
const pool = arg("pool", 25)
const rounds = arg("rounds", 5)
const backends = text("backends", "postgres,memory").split(",")
const warmups = arg("warmup", 1)
const url = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test"
const tag = Date.now().toString(36)
const schema = `bench_sessions_${tag}`

const workerConfig = (queue: string): WorkerConfig => ({
  ...workerDefaults,
  queue,
  workerCount: concurrency,
  receiveTimeout: Duration.millis(200),
  retryDelay: Duration.millis(10),
  idleThreshold: 1,
  receiveWait: Duration.zero,
  receiveBatch: batch,
  depthInterval: Duration.minutes(10)
})

const fill = (queue: string, per: number) =>
  SessionQueue.use((q) =>
    Effect.gen(function*() {
      let chunk: Array<ReturnType<typeof sessionMessage>> = []
      for (let seq = 1; seq <= per; seq++) {
        for (let s = 0; s < sessions; s++) {
          chunk.push(sessionMessage(`s${s}`, seq))
          if (chunk.length === 2_000) {
            yield* q.send(queue, chunk)
            chunk = []
          }
        }
      }
      if (chunk.length > 0) yield* q.send(queue, chunk)
    })
  )

const count = (counter: typeof Metrics.outOfOrder) => Effect.map(Metric.value(counter), (s) => s.count)

/** The session worker drains `queue`; its rate in msg/s. Fails unless every session came in order. */
const workerRun = (queue: string, total: number) =>
  Effect.gen(function*() {
    const last = new Map<string, number>()
    let misordered = 0
    const downstream = (body: { readonly sessionId: string; readonly seq: number }) =>
      Effect.sync(() => {
        if (body.seq !== (last.get(body.sessionId) ?? 0) + 1) misordered++
        last.set(body.sessionId, body.seq)
      })
    const breaker = yield* CircuitBreaker.make({ name: "bench", failureThreshold: 1_000, resetTimeout: "1 second", successThreshold: 1 })
    const worker = yield* makeWorker({ config: workerConfig(queue), handler: orderedHandler({ downstream, breaker }) })
    const completed = count(Metrics.messagesBy("completed"))
    const before = { completed: yield* completed, outOfOrder: yield* count(Metrics.outOfOrder), duplicates: yield* count(Metrics.duplicates) }
    const started = performance.now()
    const fiber = yield* Effect.forkChild(worker.run)
    while ((yield* completed) - before.completed < total) yield* Effect.sleep("2 millis")
    const elapsed = performance.now() - started
    yield* Fiber.interrupt(fiber)
    const outOfOrder = (yield* count(Metrics.outOfOrder)) - before.outOfOrder
    const duplicates = (yield* count(Metrics.duplicates)) - before.duplicates
    const depth = yield* SessionQueue.use((q) => q.depth(queue))
    const inSeq = [...last.values()].every((seq) => seq === total / sessions)
    if (misordered > 0 || outOfOrder > 0 || duplicates > 0 || depth.active > 0 || last.size !== sessions || !inSeq) {
      return yield* Effect.die(
        new Error(`order check failed: ${misordered} misordered, ${outOfOrder} out of order, ${duplicates} duplicates, ${depth.active} left`)
      )
    }
    return total / (elapsed / 1000)
  })

/** The bare PostgreSQL loop: take-and-delete batches with SKIP LOCKED, `concurrency` at once. */
const bareLoop = (queue: string, total: number) =>
  Effect.gen(function*() {
    const db = yield* SqlDatabase
    let deleted = 0
    const started = performance.now()
    const loop = Effect.gen(function*() {
      while (deleted < total) {
        const n = yield* db.transaction((tx) =>
          Effect.gen(function*() {
            const rows = yield* tx.query(
              `select sequence_number from session_queue_messages where queue = $1
               order by sequence_number limit $2 for update skip locked`,
              [queue, batch]
            )
            if (rows.length === 0) return 0
            yield* tx.query(`delete from session_queue_messages where queue = $1 and sequence_number = any($2::int8[])`, [
              queue,
              rows.map((r) => String(r.sequence_number))
            ])
            return rows.length
          })
        )
        deleted += n
      }
    })
    yield* Effect.forEach(Array.from({ length: concurrency }), () => loop, { concurrency: "unbounded", discard: true })
    return total / ((performance.now() - started) / 1000)
  })

/** The bare memory loop: each session's messages from an array, parsed and checked in order. */
const bareMemory = (per: number) =>
  Effect.sync(() => {
    const bySession = new Map<string, Array<ReturnType<typeof sessionMessage>>>()
    for (let seq = 1; seq <= per; seq++) {
      for (let s = 0; s < sessions; s++) {
        const m = sessionMessage(`s${s}`, seq)
        let list = bySession.get(m.key)
        if (list === undefined) bySession.set(m.key, list = [])
        list.push(m)
      }
    }
    const started = performance.now()
    let misordered = 0
    let total = 0
    for (const list of bySession.values()) {
      let last = 0
      for (const m of list) {
        const body = JSON.parse(m.body as string) as { seq: number }
        if (body.seq !== last + 1) misordered++
        last = body.seq
        total++
      }
      list.length = 0
    }
    const elapsed = performance.now() - started
    if (misordered > 0) throw new Error(`bare memory loop: ${misordered} misordered`)
    return total / (elapsed / 1000)
  })

interface Pair {
  readonly baseline: number
  readonly worker: number
}

const report = (label: string, baselineLabel: string, pairs: ReadonlyArray<Pair>) => {
  const baseline = median(pairs.map((p) => p.baseline))
  const worker = median(pairs.map((p) => p.worker))
  const ratios = pairs.map((p) => p.worker / p.baseline)
  const summary = {
    workerPerSecond: Math.round(worker),
    baselinePerSecond: Math.round(baseline),
    ratioOfMedians: Number((worker / baseline).toFixed(2)),
    medianOfRatios: Number(median(ratios).toFixed(2)),
    ratioMin: Number(Math.min(...ratios).toFixed(2)),
    ratioMax: Number(Math.max(...ratios).toFixed(2))
  }
  console.log(
    `median: ${label} ${summary.workerPerSecond} msg/s; ${baselineLabel} ${summary.baselinePerSecond} msg/s; ` +
      `ratio of medians ${summary.ratioOfMedians.toFixed(2)}, median of per-round ratios ${summary.medianOfRatios.toFixed(2)} ` +
      `(spread ${summary.ratioMin.toFixed(2)}–${summary.ratioMax.toFixed(2)})`
  )
  return summary
}

/** The process CPU time per message (µs) of each worker run `measured` took. */
const workerCpu: Array<number> = []
const measured = <A, E, R>(total: number, run: Effect.Effect<A, E, R>) =>
  Effect.suspend(() => {
    const before = process.cpuUsage()
    return Effect.tap(run, () =>
      Effect.sync(() => {
        const used = process.cpuUsage(before)
        workerCpu.push((used.user + used.system) / total)
      }))
  })

const alternate = async (round: number, first: () => Promise<number>, second: () => Promise<number>): Promise<[number, number]> => {
  if (round % 2 === 1) {
    const a = await first()
    return [a, await second()]
  }
  const b = await second()
  return [await first(), b]
}

console.log(
  `bench/sessions: ${sessions} sessions × ${perSession} messages (memory × ${memoryPerSession}), ${concurrency} slots, ` +
    `receive batch ${batch}, pool ${pool}, ${rounds} rounds, ${backends.join(" and ")}, ${url.replace(/:[^:@/]*@/, ":***@")}`
)
const results: Record<string, unknown> = { sessions, messages: perSession, memoryMessages: memoryPerSession, concurrency, batch, pool, rounds }

if (backends.includes("postgres")) {
  const scope = Effect.runSync(Scope.make())
  const services = await Effect.runPromise(
    Layer.buildWithScope(
      SqlSessionQueue.layer({ pollInterval: "1 second" }).pipe(Layer.provideMerge(PostgresSql.layer({ url, schema, max: pool }))),
      scope
    )
  )
  const run = <A, E>(effect: Effect.Effect<A, E, SessionQueue | SqlDatabase | Scope.Scope>) =>
    Effect.runPromise(Effect.scoped(effect).pipe(Effect.provide(services)) as Effect.Effect<A, E>)
  const total = sessions * perSession
  const pairs: Array<Pair> = []
  try {
    for (let w = 1; w <= warmups; w++) {
      await run(Effect.andThen(fill(`warm-w${w}`, perSession), fill(`warm-b${w}`, perSession)))
      await run(workerRun(`warm-w${w}`, total))
      await run(bareLoop(`warm-b${w}`, total))
    }
    for (let round = 1; round <= rounds; round++) {
      const workerQueue = `w${round}`
      const bareQueue = `b${round}`
      await run(Effect.andThen(fill(workerQueue, perSession), fill(bareQueue, perSession)))
      // The fill's writes flushed and the table analyzed before either run, so the run that goes
      // first does not pay for them (a superuser's CHECKPOINT; skipped where not allowed).
      await run(Effect.flatMap(SqlDatabase, (db) => db.query("vacuum analyze session_queue_messages")).pipe(Effect.ignore))
      await run(Effect.flatMap(SqlDatabase, (db) => db.query("checkpoint")).pipe(Effect.ignore))
      const [worker, baseline] = await alternate(
        round,
        () => run(measured(total, workerRun(workerQueue, total))),
        () => run(bareLoop(bareQueue, total))
      )
      pairs.push({ worker, baseline })
      console.log(
        `round ${round}: PostgreSQL session worker ${Math.round(worker)} msg/s (client CPU ${workerCpu.at(-1)!.toFixed(1)} µs/msg) | ` +
          `bare SKIP LOCKED + DELETE loop ${Math.round(baseline)} msg/s | ratio ${(worker / baseline).toFixed(2)}`
      )
    }
    results.postgres = report("PostgreSQL session worker (order checked)", "bare SKIP LOCKED + DELETE loop", pairs)
  } finally {
    await Effect.runPromise(Scope.close(scope, Exit.void))
    const admin = postgres(url, { max: 1, onnotice: () => {} })
    await admin.unsafe(`drop schema if exists ${schema} cascade`)
    await admin.end()
  }
}

if (backends.includes("memory")) {
  const total = sessions * memoryPerSession
  const pairs: Array<Pair> = []
  // A fresh memory queue per run, so one round's leftovers cannot slow the next.
  const run = <A, E>(effect: Effect.Effect<A, E, SessionQueue | Scope.Scope>) =>
    Effect.runPromise(Effect.scoped(effect).pipe(Effect.provide(MemorySessionQueue.layer())) as Effect.Effect<A, E>)
  for (let w = 1; w <= warmups; w++) {
    await run(Effect.andThen(fill("m", memoryPerSession), workerRun("m", total)))
    await Effect.runPromise(bareMemory(memoryPerSession))
  }
  for (let round = 1; round <= rounds; round++) {
    const [worker, baseline] = await alternate(
      round,
      () => run(Effect.andThen(fill("m", memoryPerSession), measured(total, workerRun("m", total)))),
      () => Effect.runPromise(bareMemory(memoryPerSession))
    )
    pairs.push({ worker, baseline })
    console.log(
      `round ${round}: memory session worker ${Math.round(worker)} msg/s (CPU ${workerCpu.at(-1)!.toFixed(2)} µs/msg) | bare in-memory loop ${Math.round(baseline)} msg/s | ratio ${
        (worker / baseline).toFixed(4)
      }`
    )
  }
  results.memory = report("memory session worker (order checked)", "bare in-memory loop", pairs)
}
console.log(JSON.stringify(results))
