/**
 * Per-key serialisation: work submitted under one key is processed in order, one batch at a
 * time; work under different keys runs concurrently.
 *
 * - Each key gets its own queue and worker fiber on first use (keys need not be known up front,
 *   and are kept in a `Map`, so any value, `"__proto__"` included, is a key).
 * - A worker takes what queued up under its key, up to `maxBatch` items, and hands them to
 *   `process` in one call, in submission order; items that arrive meanwhile form the next batch.
 *   A per-batch cost (a database round trip) is then paid once for everything that waited.
 * - `submit` returns once its item is processed, with the outcome of its batch. Interrupting a
 *   `submit` stops only the wait: a queued item is still processed.
 * - Error policy: a batch that fails (typed error or defect) fails every `submit` of that batch
 *   with its cause, and the worker goes on with the next batch. Retrying belongs to `process`
 *   (a store that retries internally) or to the submitter (a message handed back to the broker).
 * - `close` (and closing the scope `make` ran in) ends intake and waits until everything already
 *   submitted is processed; a `submit` after that fails with `KeyedQueueClosedError`.
 */
import * as Cause from "effect/Cause"
import * as Data from "effect/Data"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import type * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Queue from "effect/Queue"
import * as Scope from "effect/Scope"
import * as Semaphore from "effect/Semaphore"

export class KeyedQueueClosedError extends Data.TaggedError("KeyedQueueClosedError")<{ readonly key: unknown }> {
  override get message() {
    return `work submitted under ${String(this.key)} after the keyed queue was closed`
  }
}

export interface KeyedQueue<K, A, E> {
  /** Queues `item` under `key` and waits until its batch is processed. */
  readonly submit: (key: K, item: A) => Effect.Effect<void, E | KeyedQueueClosedError>
  /** Ends intake and waits until everything submitted so far is processed. Idempotent. */
  readonly close: Effect.Effect<void>
}

export interface KeyedQueueOptions<K, A, E, R> {
  /** Processes a batch (at least one) of the items queued under `key`, in submission order. */
  readonly process: (key: K, items: ReadonlyArray<A>) => Effect.Effect<void, E, R>
  /** Most items handed to one `process` call [1]. */
  readonly maxBatch?: number | undefined
}

interface Job<A, E> {
  readonly item: A
  readonly done: Deferred.Deferred<void, E>
}

interface Worker<A, E> {
  readonly queue: Queue.Queue<Job<A, E>, Cause.Done>
  readonly fiber: Fiber.Fiber<void>
}

/**
 * Makes a keyed queue whose workers live in the current scope; closing it drains them.
 *
 * @example
 * ```ts
 * const byAccount = yield* KeyedQueue.make({
 *   process: (account, postings: ReadonlyArray<Posting>) => ledger.apply(account, postings),
 *   maxBatch: 100
 * })
 * yield* byAccount.submit(posting.account, posting)
 * ```
 */
export const make = <K, A, E = never, R = never>(
  options: KeyedQueueOptions<K, A, E, R>
): Effect.Effect<KeyedQueue<K, A, E>, never, Scope.Scope | R> =>
  Effect.gen(function*() {
    const maxBatch = Math.max(1, Math.floor(options.maxBatch ?? 1))
    // Workers are started by whichever fiber submits first under a key; they run with the
    // services of the fiber that made the queue, not the span and annotations of that submitter.
    const context = yield* Effect.context<R>()
    const workers = new Map<K, Worker<A, E>>()
    // Starting a worker and closing are serialised, so close sees every worker there will be.
    const lock = Semaphore.makeUnsafe(1)
    let closed = false

    // The drain finalizer is added after this scope's: it runs first, and the workers are
    // interrupted only after they ran out of work.
    const workersScope = yield* Scope.fork(yield* Effect.scope)

    const work = (key: K, queue: Queue.Queue<Job<A, E>, Cause.Done>): Effect.Effect<void> =>
      Effect.forever(Effect.flatMap(Queue.takeBetween(queue, 1, maxBatch), (jobs) =>
        Effect.exit(Effect.onExit(
          options.process(key, jobs.map((job) => job.item)),
          (exit: Exit.Exit<void, E>) =>
            Effect.sync(() => {
              for (const job of jobs) Deferred.doneUnsafe(job.done, exit)
            })
        )))).pipe(
          Effect.catchIf(Cause.isDone, () => Effect.void),
          Effect.updateContext(() => context)
        )

    const start = (key: K): Effect.Effect<Worker<A, E>, KeyedQueueClosedError> =>
      lock.withPermit(Effect.uninterruptible(Effect.suspend(() => {
        const raced = workers.get(key)
        if (raced !== undefined) return Effect.succeed(raced)
        if (closed) return Effect.fail(new KeyedQueueClosedError({ key }))
        return Effect.gen(function*() {
          const queue = yield* Queue.unbounded<Job<A, E>, Cause.Done>()
          const fiber = yield* Effect.forkIn(work(key, queue), workersScope)
          const worker = { queue, fiber }
          workers.set(key, worker)
          return worker
        })
      })))

    const submit = (key: K, item: A): Effect.Effect<void, E | KeyedQueueClosedError> =>
      Effect.suspend(() => {
        const worker = workers.get(key)
        return worker === undefined ? Effect.flatMap(start(key), (started) => enqueue(started, key, item)) : enqueue(worker, key, item)
      })

    const enqueue = (worker: Worker<A, E>, key: K, item: A): Effect.Effect<void, E | KeyedQueueClosedError> => {
      const done = Deferred.makeUnsafe<void, E>()
      return Queue.offerUnsafe(worker.queue, { item, done })
        ? Deferred.await(done)
        : Effect.fail(new KeyedQueueClosedError({ key }))
    }

    const close = lock.withPermit(Effect.sync(() => {
      closed = true
      return [...workers.values()]
    })).pipe(
      Effect.flatMap((all) => {
        for (const worker of all) Queue.endUnsafe(worker.queue)
        return Fiber.awaitAll(all.map((worker) => worker.fiber))
      }),
      Effect.asVoid
    )

    yield* Effect.addFinalizer(() => close)
    return { submit, close }
  })
