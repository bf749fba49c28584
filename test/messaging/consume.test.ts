import { describe, expect, test } from "bun:test"
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Logger from "effect/Logger"
import * as Metric from "effect/Metric"
import * as Duration from "effect/Duration"
import type * as Scope from "effect/Scope"
import { TestClock } from "effect/testing"
import * as MemoryBrokerLayer from "../../layers/memory/broker.ts"
import { MemoryBroker } from "../../layers/memory/broker.ts"
import type { Delivery, DeliverySource } from "../../src/capabilities/Delivery.ts"
import { bodyText, Headers } from "../../src/capabilities/Message.ts"
import { Publisher } from "../../src/capabilities/Publisher.ts"
import { deadLetterTopic, Subscriber } from "../../src/capabilities/Subscriber.ts"
import { consume, consumeBatches, consumeFrom, defaultHandlerTimeout } from "../../src/messaging/consume.ts"
import * as Outcome from "../../src/messaging/Outcome.ts"

const run = <A, E>(effect: Effect.Effect<A, E, Publisher | Subscriber | MemoryBroker | Scope.Scope>) =>
  Effect.runPromise(Effect.scoped(effect).pipe(Effect.provide(MemoryBrokerLayer.layer), Effect.provide(Logger.layer([]))))

const runTimed = <A, E>(effect: Effect.Effect<A, E, Publisher | Subscriber | MemoryBroker | Scope.Scope>) =>
  Effect.runPromise(
    Effect.scoped(effect).pipe(Effect.provide(MemoryBrokerLayer.layer), Effect.provide(TestClock.layer()), Effect.provide(Logger.layer([])))
  )

let n = 0
const names = () => ({ topic: `t${++n}`, group: `g${n}` })

/** A handler that tells `started` it runs, then never ends, and tells `interrupted` when interrupted. */
const hang = (started: Deferred.Deferred<void>, interrupted: Deferred.Deferred<void>) =>
  Deferred.succeed(started, undefined).pipe(
    Effect.andThen(Effect.never),
    Effect.onInterrupt(() => Deferred.succeed(interrupted, undefined))
  )

const deadLetters = (group: string, count: number) =>
  Effect.gen(function*() {
    const dlq = yield* Subscriber.use((s) => s.subscribe({ topic: deadLetterTopic(group), group: deadLetterTopic(group) }))
    return yield* Effect.forEach(Array.from({ length: count }), () => dlq.take)
  })

describe("consume runner", () => {
  test("a failing handler is retried, then dead-lettered with its last error after maxAttempts", () =>
    run(Effect.gen(function*() {
      const sub = names()
      yield* Subscriber.use((s) => s.declare(sub))
      yield* Publisher.use((p) => p.publish(sub.topic, [{ id: "m", key: "k", body: "x" }]))
      const attempts: Array<number> = []
      const fiber = yield* Effect.forkChild(consume(sub, (received) => {
        attempts.push(received.attempt)
        return Effect.fail(new Error(`down on attempt ${received.attempt}`))
      }, { maxAttempts: 3 }))
      const [dead] = yield* deadLetters(sub.group, 1)
      yield* Fiber.interrupt(fiber)
      expect(attempts).toEqual([1, 2, 3])
      expect(dead!.message.headers[Headers.deadLetterReason]).toBe("down on attempt 3 (after 3 attempts)")
    })))

  test("Outcome.deadLetter skips retries; a defect is retried like a failure", () =>
    run(Effect.gen(function*() {
      const sub = names()
      yield* Subscriber.use((s) => s.declare(sub))
      yield* Publisher.use((p) => p.publish(sub.topic, [{ id: "bad", key: "k", body: "bad" }, { id: "boom", key: "k", body: "boom" }]))
      const seen: Array<string> = []
      const fiber = yield* Effect.forkChild(consume(sub, ({ message, attempt }) => {
        seen.push(`${message.id}@${attempt}`)
        return bodyText(message) === "bad" ? Effect.succeed(Outcome.deadLetter("rejected")) : Effect.die(new Error("kaboom"))
      }, { maxAttempts: 2, concurrency: 1 }))
      const dead = yield* deadLetters(sub.group, 2)
      yield* Fiber.interrupt(fiber)
      expect(seen.filter((s) => s.startsWith("bad"))).toEqual(["bad@1"])
      expect(seen.filter((s) => s.startsWith("boom"))).toEqual(["boom@1", "boom@2"])
      const reasons = Object.fromEntries(dead.map((d) => [d.message.id, d.message.headers[Headers.deadLetterReason]]))
      expect(reasons["bad"]).toBe("rejected")
      expect(reasons["boom"]).toContain("handler died")
      expect(reasons["boom"]).toContain("kaboom")
    })))

  test("interrupting the runner lets a running handler finish and ack; nothing else is taken", () =>
    run(Effect.gen(function*() {
      const sub = { ...names(), prefetch: 5 }
      yield* Subscriber.use((s) => s.declare(sub))
      yield* Publisher.use((p) => p.publish(sub.topic, Array.from({ length: 5 }, (_, i) => ({ id: `m${i}`, key: "k", body: String(i) }))))
      const started = yield* Deferred.make<void>()
      const release = yield* Deferred.make<void>()
      const finished: Array<string> = []
      const fiber = yield* Effect.forkChild(consume(sub, ({ message }) =>
        Effect.gen(function*() {
          yield* Deferred.succeed(started, undefined)
          yield* Deferred.await(release)
          finished.push(message.id)
        }), { concurrency: 1 }))
      yield* Deferred.await(started)
      const interrupting = yield* Effect.forkChild(Fiber.interrupt(fiber))
      yield* Deferred.succeed(release, undefined)
      yield* Fiber.join(interrupting)
      const broker = yield* MemoryBroker
      expect(finished).toEqual(["m0"])
      expect(yield* broker.inFlight(sub.group)).toBe(0)
      expect(yield* broker.depth(sub.group)).toBe(4)
    })))

  test("consumeBatches settles each message of a batch by its own outcome and counts them", () =>
    run(Effect.gen(function*() {
      const sub = { ...names(), prefetch: 10 }
      yield* Subscriber.use((s) => s.declare(sub))
      yield* Publisher.use((p) => p.publish(sub.topic, Array.from({ length: 6 }, (_, i) => ({ id: `b${i}`, key: "k", body: String(i) }))))
      const sizes: Array<number> = []
      const fiber = yield* Effect.forkChild(consumeBatches(sub, (batch) => {
        sizes.push(batch.length)
        return Effect.succeed(batch.map((d) => Number(bodyText(d.message)) % 2 === 0 ? Outcome.ack : Outcome.deadLetter("odd")))
      }, { maxBatch: 4, concurrency: 1 }))
      const dead = yield* deadLetters(sub.group, 3)
      yield* Fiber.interrupt(fiber)
      expect(dead.map((d) => d.message.id).sort()).toEqual(["b1", "b3", "b5"])
      expect(Math.max(...sizes)).toBeLessThanOrEqual(4)
      expect(sizes.reduce((a, b) => a + b, 0)).toBe(6)
      const handled = yield* Metric.snapshot
      const acks = handled.find((m) => m.id === "messages_handled" && m.attributes?.["subscription"] === sub.group && m.attributes?.["outcome"] === "ack")
      expect((acks?.state as { count?: number } | undefined)?.count).toBe(3)
    })))

  test("Outcome.retry with `after` holds the message that long before handing it back", () =>
    runTimed(Effect.gen(function*() {
      const sub = names()
      yield* Subscriber.use((s) => s.declare(sub))
      yield* Publisher.use((p) => p.publish(sub.topic, [{ id: "later", key: "k", body: "x" }]))
      const first = yield* Deferred.make<void>()
      const second = yield* Deferred.make<number>()
      const fiber = yield* Effect.forkChild(consume(sub, ({ attempt }) =>
        attempt === 1
          ? Effect.as(Deferred.succeed(first, undefined), Outcome.retry("not yet", { after: "10 seconds" }))
          : Effect.as(Deferred.succeed(second, attempt), Outcome.ack)))
      yield* Deferred.await(first)
      yield* TestClock.adjust("9 seconds")
      expect(yield* Deferred.isDone(second)).toBe(false)
      expect(yield* (yield* MemoryBroker).inFlight(sub.group)).toBe(1)
      yield* TestClock.adjust("1 second")
      expect(yield* Deferred.await(second)).toBe(2)
      yield* Fiber.interrupt(fiber)
    })))

  test("a message waiting for its delayed retry does not hold up the others", () =>
    runTimed(Effect.gen(function*() {
      const sub = { ...names(), prefetch: 5 }
      yield* Subscriber.use((s) => s.declare(sub))
      yield* Publisher.use((p) => p.publish(sub.topic, [{ id: "later", key: "k", body: "x" }, { id: "now", key: "k", body: "y" }]))
      const acked = yield* Deferred.make<string>()
      const fiber = yield* Effect.forkChild(consume(sub, ({ message }) =>
        message.id === "later"
          ? Effect.succeed(Outcome.retry("not yet", { after: "1 hour" }))
          : Effect.as(Deferred.succeed(acked, message.id), Outcome.ack), { concurrency: 1 }))
      // No clock moves: the second message is handled while the first one waits.
      expect(yield* Deferred.await(acked)).toBe("now")
      yield* Fiber.interrupt(fiber)
    })))

  test("a shutdown cuts a delayed retry short: the message goes back at once, as the next attempt", () =>
    runTimed(Effect.gen(function*() {
      const sub = names()
      yield* Subscriber.use((s) => s.declare(sub))
      yield* Publisher.use((p) => p.publish(sub.topic, [{ id: "later", key: "k", body: "x" }]))
      const handled = yield* Deferred.make<void>()
      const fiber = yield* Effect.forkChild(consume(sub, () =>
        Effect.as(Deferred.succeed(handled, undefined), Outcome.retry("not yet", { after: "1 hour" }))))
      yield* Deferred.await(handled)
      yield* Fiber.interrupt(fiber)
      const broker = yield* MemoryBroker
      expect(yield* broker.inFlight(sub.group)).toBe(0)
      expect(yield* broker.depth(sub.group)).toBe(1)
      const back = yield* (yield* Subscriber).subscribe(sub).pipe(Effect.flatMap((c) => c.take))
      expect([back.message.id, back.attempt]).toEqual(["later", 2])
    })))

  test("a handler that hangs is interrupted after the default timeout and its message retried", () =>
    runTimed(Effect.gen(function*() {
      const sub = names()
      yield* Subscriber.use((s) => s.declare(sub))
      yield* Publisher.use((p) => p.publish(sub.topic, [{ id: "hang", key: "k", body: "x" }]))
      const started = yield* Deferred.make<void>()
      const interrupted = yield* Deferred.make<void>()
      const retried = yield* Deferred.make<number>()
      const fiber = yield* Effect.forkChild(consume(sub, ({ attempt }) =>
        attempt === 1
          ? hang(started, interrupted)
          : Effect.as(Deferred.succeed(retried, attempt), Outcome.ack)))
      yield* Deferred.await(started)
      yield* TestClock.adjust(Duration.subtract(defaultHandlerTimeout, Duration.millis(1)))
      expect(yield* Deferred.isDone(interrupted)).toBe(false)
      yield* TestClock.adjust("1 millis")
      yield* Deferred.await(interrupted)
      expect(yield* Deferred.await(retried)).toBe(2)
      yield* Fiber.interrupt(fiber)
    })))

  test("a batch handler that hangs is interrupted at its timeout and its messages retried", () =>
    runTimed(Effect.gen(function*() {
      const sub = names()
      yield* Subscriber.use((s) => s.declare(sub))
      yield* Publisher.use((p) => p.publish(sub.topic, [{ id: "hang", key: "k", body: "x" }]))
      const started = yield* Deferred.make<void>()
      const interrupted = yield* Deferred.make<void>()
      const retried = yield* Deferred.make<number>()
      const fiber = yield* Effect.forkChild(consumeBatches(sub, (batch) =>
        batch[0]!.attempt === 1
          ? hang(started, interrupted)
          : Effect.as(Deferred.succeed(retried, batch[0]!.attempt), batch.map(() => Outcome.ack)), { timeout: "5 seconds" }))
      yield* Deferred.await(started)
      yield* TestClock.adjust("4999 millis")
      expect(yield* Deferred.isDone(interrupted)).toBe(false)
      yield* TestClock.adjust("1 millis")
      yield* Deferred.await(interrupted)
      expect(yield* Deferred.await(retried)).toBe(2)
      yield* Fiber.interrupt(fiber)
    })))

  test("a shutdown does not lift the timeout: a handler hung during it is interrupted at its deadline, its message retried, and the runner ends", () =>
    runTimed(Effect.gen(function*() {
      const sub = names()
      yield* Subscriber.use((s) => s.declare(sub))
      yield* Publisher.use((p) => p.publish(sub.topic, [{ id: "hang", key: "k", body: "x" }]))
      const started = yield* Deferred.make<void>()
      const interrupted = yield* Deferred.make<void>()
      const fiber = yield* Effect.forkChild(consume(sub, () =>
        hang(started, interrupted), { timeout: "5 seconds" }))
      yield* Deferred.await(started)
      const stopping = yield* Effect.forkChild(Fiber.interrupt(fiber))
      yield* TestClock.adjust("4999 millis")
      expect(yield* Deferred.isDone(interrupted)).toBe(false)
      expect(stopping.pollUnsafe()).toBeUndefined()
      yield* TestClock.adjust("1 millis")
      yield* Deferred.await(interrupted)
      yield* Fiber.await(stopping)
      const back = yield* (yield* Subscriber).subscribe(sub).pipe(Effect.flatMap((c) => c.take))
      expect([back.message.id, back.attempt]).toEqual(["hang", 2])
    })))

  test("consumeFrom runs any DeliverySource: each delivery settled by its outcome, and the source stopped on shutdown", () =>
    run(Effect.gen(function*() {
      // A source that is no broker: a fixed list of rows, as a claimed outbox batch would be.
      const settled: Array<string> = []
      const allSettled = Deferred.makeUnsafe<void>()
      const record = (entry: string) =>
        Effect.sync(() => {
          settled.push(entry)
          if (settled.length === 4) Deferred.doneUnsafe(allSettled, Effect.void)
        })
      const rows = ["ok", "bad", "flaky"]
      let stopped = false
      const deliveryOf = (id: string, attempt: number): Delivery<never> => ({
        message: { id, key: id, headers: {}, body: new TextEncoder().encode(id) },
        topic: "rows",
        attempt,
        ack: record(`${id}@${attempt}:ack`),
        retry: Effect.andThen(record(`${id}@${attempt}:retry`), Effect.sync(() => void queue.push(deliveryOf(id, attempt + 1)))),
        deadLetter: (reason) => record(`${id}@${attempt}:dead(${reason})`)
      })
      const queue: Array<Delivery<never>> = rows.map((id) => deliveryOf(id, 1))
      const source: DeliverySource<never> = {
        take: Effect.suspend(() => {
          const next = queue.shift()
          return next === undefined ? (stopped ? Cause.done() : Effect.never) : Effect.succeed(next)
        }),
        takeBatch: () => Effect.die("not used"),
        stop: Effect.sync(() => void (stopped = true))
      }
      const open = Effect.acquireRelease(Effect.succeed(source), () => Effect.sync(() => void (stopped = true)))
      const fiber = yield* Effect.forkChild(consumeFrom(open, { topic: "rows", group: "relay" }, ({ message, attempt }) => {
        const outcome = message.id === "bad"
          ? Effect.succeed(Outcome.deadLetter("no such order"))
          : message.id === "flaky" && attempt === 1
          ? Effect.fail("kafka down")
          : Effect.succeed(Outcome.ack)
        return outcome
      }, { concurrency: 1 }))
      yield* Deferred.await(allSettled)
      yield* Fiber.interrupt(fiber)
      expect(settled).toEqual(["ok@1:ack", "bad@1:dead(no such order)", "flaky@1:retry", "flaky@2:ack"])
      expect(stopped).toBe(true)
      const handled = yield* Metric.snapshot
      const retries = handled.find((m) => m.id === "messages_handled" && m.attributes?.["subscription"] === "relay" && m.attributes?.["outcome"] === "retry")
      expect((retries?.state as { count?: number } | undefined)?.count).toBe(1)
    })))

  test("a retry that does not count as an attempt keeps the message and runs it again, as the same attempt", () =>
    runTimed(Effect.gen(function*() {
      const sub = names()
      yield* Subscriber.use((s) => s.declare(sub))
      yield* Publisher.use((p) => p.publish(sub.topic, [{ id: "held", key: "k", body: "x" }]))
      const calls: Array<string> = []
      const acked = yield* Deferred.make<void>()
      // maxAttempts 2 would dead-letter it on the second counted retry: holding must not count.
      const fiber = yield* Effect.forkChild(consume(sub, ({ attempt }) =>
        Effect.gen(function*() {
          const now = yield* Clock.currentTimeMillis
          calls.push(`attempt ${attempt} at ${now}`)
          if (calls.length < 4) return Outcome.retry("downstream is down", { after: "10 seconds", countsAsAttempt: false })
          yield* Deferred.succeed(acked, undefined)
        }), { maxAttempts: 2 }))
      yield* TestClock.adjust("30 seconds")
      yield* Deferred.await(acked)
      yield* Fiber.interrupt(fiber)
      expect(calls).toEqual(["attempt 1 at 0", "attempt 1 at 10000", "attempt 1 at 20000", "attempt 1 at 30000"])
      const snapshot = yield* Metric.snapshot
      const count = (outcome: string) =>
        (snapshot.find((m) => m.id === "messages_handled" && m.attributes?.["subscription"] === sub.group && m.attributes?.["outcome"] === outcome)
          ?.state as { count?: number } | undefined)?.count ?? 0
      expect([count("ack"), count("retry"), count("dead_letter")]).toEqual([1, 0, 0])
    })))

  test("consumeBatches runs the held messages of a batch again together; a shutdown while they wait hands them back", () =>
    runTimed(Effect.gen(function*() {
      const sub = { ...names(), prefetch: 10 }
      yield* Subscriber.use((s) => s.declare(sub))
      yield* Publisher.use((p) => p.publish(sub.topic, ["a", "b", "c"].map((id) => ({ id, key: "k", body: id }))))
      const batches: Array<string> = []
      const rerun = yield* Deferred.make<void>()
      const fiber = yield* Effect.forkChild(consumeBatches(sub, (batch) =>
        Effect.gen(function*() {
          batches.push(batch.map((r) => `${r.message.id}@${r.attempt}`).join(","))
          if (batches.length === 2) yield* Deferred.succeed(rerun, undefined)
          // b and c wait for their downstream, every time; a is done.
          return batch.map((r) => r.message.id === "a" ? Outcome.ack : Outcome.retry("busy", { after: "5 seconds", countsAsAttempt: false }))
        }), { maxBatch: 10, concurrency: 1 }))
      yield* TestClock.adjust("5 seconds")
      yield* Deferred.await(rerun)
      expect(batches).toEqual(["a@1,b@1,c@1", "b@1,c@1"])
      yield* Fiber.interrupt(fiber)
      const broker = yield* MemoryBroker
      expect(yield* broker.inFlight(sub.group)).toBe(0)
      expect(yield* broker.depth(sub.group)).toBe(2)
    })))
})
