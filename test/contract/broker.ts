/**
 * The contract every Publisher + Subscriber backend passes (memory, RabbitMQ, Kafka).
 *
 * Each case uses fresh topic and group names, so real brokers can keep state between runs.
 * Features say what a backend promises beyond the core; a case for a feature a backend lacks is
 * not run for it.
 */
import { afterAll, describe, expect, test } from "bun:test"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Scope from "effect/Scope"
import * as Tracer from "effect/Tracer"
import { bodyText, Headers } from "../../src/capabilities/Message.ts"
import { Publisher } from "../../src/capabilities/Publisher.ts"
import { type Consumer, deadLetterTopic, type Delivery, directTopic, Subscriber, type Subscription } from "../../src/capabilities/Subscriber.ts"
import { parseTraceparent } from "../../src/messaging/traceContext.ts"
import { declare, publish, subscribe, takeN, takeWithin } from "../support/broker.ts"
import { recordingTracer } from "../support/tracing.ts"

export interface BrokerFeatures {
  /** `prefetch` bounds unsettled deliveries per consumer. */
  readonly prefetch: boolean
  /** `attempt` grows on redelivery after a consumer went away without settling. */
  readonly countsAbandonedAttempts: boolean
  /**
   * A retried message comes back before the later messages of its key that its consumer holds:
   * taken one at a time, a retry is not overtaken by the next message of the same key.
   */
  readonly retryKeepsKeyOrder: boolean
  /** The direct topic routes to the group its key names (request/reply), see `directTopic`. */
  readonly directQueues: boolean
  /** `consumers` counts a group's consumers. */
  readonly countsConsumers: boolean
  /** `exclusive` subscriptions: private groups that go away with their consumer (reply queues). */
  readonly exclusiveGroups: boolean
}

type Broker = Publisher | Subscriber

export const brokerContract = (
  name: string,
  makeLayer: () => Layer.Layer<Broker, unknown>,
  features: BrokerFeatures,
  options: {
    readonly timeout?: number
    /** Removes what the cases declared (topics, groups and their dead-letter destinations). */
    readonly cleanup?: (created: ReadonlyArray<Subscription>) => Promise<void>
  } = {}
) => {
  const run = <A, E>(effect: Effect.Effect<A, E, Broker | Scope.Scope>): Promise<A> =>
    Effect.runPromise(Effect.scoped(effect).pipe(Effect.provide(makeLayer())) as Effect.Effect<A, E>)
  const timeout = options.timeout ?? 30_000

  describe(`broker contract: ${name}`, () => {
    afterAll(async () => {
      await options.cleanup?.(created.splice(0))
    })
    test("delivers id, key, headers and body intact, published before the first consumer", () =>
      run(Effect.gen(function*() {
        const sub = fresh()
        yield* declare(sub)
        const body = new Uint8Array([0, 1, 2, 250, 255])
        yield* publish(sub.topic, [{ id: "m-1", key: "user1.event.created", headers: { "x-a": "1", "x-b": "ü" }, body }])
        const consumer = yield* subscribe(sub)
        const delivery = yield* consumer.take
        expect(delivery.message.id).toBe("m-1")
        expect(delivery.message.key).toBe("user1.event.created")
        expect(delivery.message.headers["x-a"]).toBe("1")
        expect(delivery.message.headers["x-b"]).toBe("ü")
        expect([...delivery.message.body]).toEqual([...body])
        expect(delivery.topic).toBe(sub.topic)
        expect(delivery.attempt).toBe(1)
        yield* delivery.ack
        expect(yield* Subscriber.use((s) => s.healthy)).toBe(true)
        expect(yield* Publisher.use((p) => p.healthy)).toBe(true)
      })), timeout)

    test("keeps the order of one key within a publish call", () =>
      run(Effect.gen(function*() {
        const sub = fresh()
        yield* declare(sub)
        yield* publish(sub.topic, range(20).map((i) => ({ id: `o-${i}`, key: "k.one", body: String(i) })))
        const consumer = yield* subscribe({ ...sub, prefetch: 50 })
        const got = yield* takeN(consumer, 20)
        expect(got.map((d) => bodyText(d.message))).toEqual(range(20).map(String))
        yield* Effect.forEach(got, (d) => d.ack)
      })), timeout)

    test("takeBatch hands out at least one and at most max deliveries, in order", () =>
      run(Effect.gen(function*() {
        const sub = fresh()
        yield* declare(sub)
        yield* publish(sub.topic, range(7).map((i) => ({ id: `tb-${i}`, key: "k.one", body: String(i) })))
        const consumer = yield* subscribe({ ...sub, prefetch: 50 })
        const got: Array<Delivery> = []
        while (got.length < 7) {
          const batch = yield* consumer.takeBatch(3).pipe(
            Effect.timeoutOrElse({ duration: "20 seconds", orElse: () => Effect.die(new Error("timed out waiting for a batch")) })
          )
          expect(batch.length).toBeGreaterThanOrEqual(1)
          expect(batch.length).toBeLessThanOrEqual(3)
          got.push(...batch)
        }
        expect(got.map((d) => bodyText(d.message))).toEqual(range(7).map(String))
        yield* Effect.forEach(got, (d) => d.ack)
      })), timeout)

    test("an acked message is not delivered again; an unsettled one is, to the next consumer", () =>
      run(Effect.gen(function*() {
        const sub = fresh()
        yield* declare(sub)
        yield* publish(sub.topic, [{ id: "a", key: "k", body: "a" }, { id: "b", key: "k", body: "b" }])
        yield* Effect.scoped(Effect.gen(function*() {
          const first = yield* subscribe(sub)
          const [a, b] = yield* takeN(first, 2)
          expect([a!.message.id, b!.message.id].sort()).toEqual(["a", "b"])
          yield* (a!.message.id === "a" ? a! : b!).ack
          // b stays unsettled when this scope (the consumer) closes
        }))
        const second = yield* subscribe(sub)
        const again = yield* second.take
        expect(again.message.id).toBe("b")
        if (features.countsAbandonedAttempts) expect(again.attempt).toBe(2)
        yield* again.ack
        expect(yield* takeWithin(second, 500)).toEqual(Option.none())
      })), timeout)

    test("a producer cannot set a message's attempt or origin through the toolkit's headers", () =>
      run(Effect.gen(function*() {
        const sub = fresh()
        yield* declare(sub)
        const forged = { [Headers.attempt]: "7", "x-original-exchange": "elsewhere", "x-original-routing-key": "other.key" }
        yield* publish(sub.topic, [{ id: "forged", key: "k.real", headers: forged, body: "x" }])
        const consumer = yield* subscribe(sub)
        const delivery = yield* consumer.take
        expect(delivery.attempt).toBe(1)
        expect(delivery.topic).toBe(sub.topic)
        expect(delivery.message.key).toBe("k.real")
        yield* delivery.ack
      })), timeout)

    test("retry hands the message back with attempt + 1", () =>
      run(Effect.gen(function*() {
        const sub = fresh()
        yield* declare(sub)
        yield* publish(sub.topic, [{ id: "r", key: "k", body: "r" }])
        const consumer = yield* subscribe(sub)
        const first = yield* consumer.take
        yield* first.retry
        const second = yield* consumer.take
        expect(second.message.id).toBe("r")
        expect(second.attempt).toBe(2)
        yield* second.retry
        const third = yield* consumer.take
        expect(third.attempt).toBe(3)
        yield* third.ack
      })), timeout)

    test("dead-letter moves the message to the group's dead-letter topic with the reason", () =>
      run(Effect.gen(function*() {
        const sub = fresh()
        yield* declare(sub)
        yield* publish(sub.topic, [{ id: "bad", key: "k", headers: { "x-keep": "yes" }, body: "not json" }, { id: "good", key: "k", body: "{}" }])
        const consumer = yield* subscribe(sub)
        const [one, two] = yield* takeN(consumer, 2)
        const bad = one!.message.id === "bad" ? one! : two!
        const good = bad === one ? two! : one!
        yield* bad.deadLetter("body is not JSON")
        yield* good.ack
        const deadLetters = { topic: deadLetterTopic(sub.group), group: deadLetterTopic(sub.group) }
        created.push(deadLetters)
        const dead = yield* subscribe(deadLetters)
        const got = yield* dead.take
        expect(got.message.id).toBe("bad")
        expect(bodyText(got.message)).toBe("not json")
        expect(got.message.headers[Headers.deadLetterReason]).toBe("body is not JSON")
        expect(got.message.headers[Headers.deadLetterSource]).toBe(sub.topic)
        expect(got.message.headers["x-keep"]).toBe("yes")
        yield* got.ack
        expect(yield* takeWithin(consumer, 500)).toEqual(Option.none())
      })), timeout)

    test("settling twice is a no-op: the first settlement wins", () =>
      run(Effect.gen(function*() {
        const sub = fresh()
        yield* declare(sub)
        yield* publish(sub.topic, [{ id: "acked", key: "k", body: "x" }, { id: "retried", key: "k", body: "y" }])
        const consumer = yield* subscribe({ ...sub, prefetch: 1 })
        const first = yield* consumer.take
        expect(first.message.id).toBe("acked")
        yield* first.ack
        yield* first.ack
        yield* first.retry
        yield* first.deadLetter("late")
        const second = yield* consumer.take
        expect(second.message.id).toBe("retried")
        yield* second.retry
        yield* second.ack
        yield* second.retry
        yield* second.deadLetter("late")
        // The retry won: the message comes back once, as attempt 2, and nothing else does.
        const again = yield* consumer.take
        expect([again.message.id, again.attempt]).toEqual(["retried", 2])
        yield* again.ack
        expect(yield* takeWithin(consumer, 500)).toEqual(Option.none())
        // And none of the late dead letters reached the dead-letter topic.
        const deadLetters = { topic: deadLetterTopic(sub.group), group: deadLetterTopic(sub.group) }
        created.push(deadLetters)
        const dead = yield* subscribe(deadLetters)
        expect(yield* takeWithin(dead, 1000)).toEqual(Option.none())
      })), timeout)

    test("a retry is seen by the retrying group only", () =>
      run(Effect.gen(function*() {
        const sub = fresh()
        const other = { ...sub, group: `${sub.group}-other` }
        yield* declare(sub)
        yield* declare(other)
        yield* publish(sub.topic, [{ id: "once", key: "k", body: "x" }])
        const retrying = yield* subscribe(sub)
        const first = yield* retrying.take
        yield* first.retry
        const second = yield* retrying.take
        expect([second.message.id, second.attempt]).toEqual(["once", 2])
        yield* second.retry
        const third = yield* retrying.take
        expect(third.attempt).toBe(3)
        yield* third.ack
        const bystander = yield* subscribe(other)
        const copy = yield* bystander.take
        expect([copy.message.id, copy.attempt]).toEqual(["once", 1])
        yield* copy.ack
        expect(yield* takeWithin(bystander, 1000)).toEqual(Option.none())
      })), timeout)

    if (features.retryKeepsKeyOrder) {
      test("a retried message comes back before the next message of its key", () =>
        run(Effect.gen(function*() {
          const sub = { ...fresh(), prefetch: 10 }
          yield* declare(sub)
          yield* publish(sub.topic, range(3).map((i) => ({ id: `k-${i}`, key: "k.same", body: String(i) })))
          const consumer = yield* subscribe(sub)
          const seen: Array<string> = []
          let retried = false
          while (seen.length < 4) {
            const delivery = yield* consumer.take
            seen.push(`${delivery.message.id}@${delivery.attempt}`)
            if (delivery.message.id === "k-0" && !retried) {
              retried = true
              yield* delivery.retry
            } else {
              yield* delivery.ack
            }
          }
          expect(seen).toEqual(["k-0@1", "k-0@2", "k-1@1", "k-2@1"])
        })), timeout)
    }

    test("consumers of one group share the messages; another group gets them all", () =>
      run(Effect.gen(function*() {
        const sub = fresh()
        const other = { ...sub, group: `${sub.group}-other` }
        yield* declare(sub)
        yield* declare(other)
        const n = 30
        yield* publish(sub.topic, range(n).map((i) => ({ id: `c-${i}`, key: `k${i % 3}`, body: String(i) })))
        const a = yield* subscribe(sub)
        const b = yield* subscribe(sub)
        const seen: Array<string> = []
        const drain = (c: Consumer) =>
          Effect.gen(function*() {
            while (true) {
              const d = yield* takeWithin(c, 1500)
              if (Option.isNone(d)) return
              seen.push(d.value.message.id)
              yield* d.value.ack
            }
          })
        yield* Effect.all([drain(a), drain(b)], { concurrency: 2 })
        expect([...seen].sort()).toEqual(range(n).map((i) => `c-${i}`).sort())
        const all = yield* subscribe(other)
        const copies = yield* takeN(all, n)
        expect(new Set(copies.map((d) => d.message.id)).size).toBe(n)
        yield* Effect.forEach(copies, (d) => d.ack)
      })), timeout)

    test("a filter admits only matching keys", () =>
      run(Effect.gen(function*() {
        const sub = { ...fresh(), filter: "*.event.*" }
        yield* declare(sub)
        yield* publish(sub.topic, [
          { id: "f1", key: "u1.event.created", body: "1" },
          { id: "f2", key: "u1.other.created", body: "2" },
          { id: "f3", key: "event.created", body: "3" },
          { id: "f4", key: "u2.event.deleted", body: "4" }
        ])
        const consumer = yield* subscribe(sub)
        const got = yield* takeN(consumer, 2)
        expect(got.map((d) => d.message.id).sort()).toEqual(["f1", "f4"])
        yield* Effect.forEach(got, (d) => d.ack)
        expect(yield* takeWithin(consumer, 500)).toEqual(Option.none())
      })), timeout)

    test("stop ends intake: take fails with Done and buffered messages go to another consumer", () =>
      run(Effect.gen(function*() {
        const sub = fresh()
        yield* declare(sub)
        yield* publish(sub.topic, range(5).map((i) => ({ id: `s-${i}`, key: "k", body: String(i) })))
        const first = yield* subscribe({ ...sub, prefetch: 10 })
        const taken = yield* first.take
        yield* taken.ack
        yield* first.stop
        const exit = yield* Effect.exit(first.take)
        expect(Exit.isFailure(exit) && Cause.hasFails(exit.cause) && Cause.isDone(Cause.squash(exit.cause))).toBe(true)
        const second = yield* subscribe({ ...sub, prefetch: 10 })
        const rest = yield* takeN(second, 4)
        expect(rest.map((d) => d.message.id).sort()).toEqual(range(5).map((i) => `s-${i}`).filter((id) => id !== taken.message.id).sort())
        yield* Effect.forEach(rest, (d) => d.ack)
      })), timeout)

    if (features.prefetch) {
      test("prefetch bounds the unsettled deliveries of a consumer", () =>
        run(Effect.gen(function*() {
          const sub = { ...fresh(), prefetch: 2 }
          yield* declare(sub)
          yield* publish(sub.topic, range(4).map((i) => ({ id: `p-${i}`, key: "k", body: String(i) })))
          const consumer = yield* subscribe(sub)
          const [a] = yield* takeN(consumer, 2)
          expect(yield* takeWithin(consumer, 500)).toEqual(Option.none())
          yield* a!.ack
          const third = yield* takeWithin(consumer, 5000)
          expect(Option.isSome(third)).toBe(true)
        })), timeout)
    }

    test("publish writes the current span's traceparent into the headers", () =>
      run(Effect.gen(function*() {
        const sub = fresh()
        yield* declare(sub)
        // The header names the publish span, a child of the caller's span, in the caller's trace.
        let publishSpan: Tracer.Span | undefined
        const span = yield* publish(sub.topic, [{ id: "t", key: "k", body: "x" }]).pipe(
          Effect.andThen(Effect.currentSpan),
          Effect.withSpan("producer"),
          Effect.provideService(Tracer.Tracer, recordingTracer((made) => {
            if (made.name.startsWith("publish ")) publishSpan = made
          }))
        )
        const consumer = yield* subscribe(sub)
        const delivery = yield* consumer.take
        const parent = parseTraceparent(delivery.message.headers[Headers.traceparent])
        expect(publishSpan).toBeDefined()
        expect(parent?.traceId).toBe(span.traceId)
        expect(parent?.spanId).toBe(publishSpan!.spanId)
        expect(parent?.spanId).not.toBe(span.spanId)
        expect(parent?.sampled).toBe(true)
        yield* delivery.ack
      })), timeout)

    test.if(features.directQueues)("the direct topic delivers to the group its key names, and only there", () =>
      run(Effect.gen(function*() {
        const target = { ...fresh(), topic: directTopic }
        const bystander = { ...fresh(), topic: directTopic }
        yield* declare(target)
        yield* declare(bystander)
        yield* publish(directTopic, [
          { id: "d-1", key: target.group, headers: { "x-a": "1" }, body: "to target" },
          { id: "d-2", key: `${target.group}-nobody`, body: "to no group: dropped" }
        ])
        const consumer = yield* subscribe(target)
        const delivery = yield* consumer.take
        expect([delivery.message.id, delivery.message.key, bodyText(delivery.message), delivery.topic]).toEqual([
          "d-1", target.group, "to target", directTopic
        ])
        expect(delivery.message.headers["x-a"]).toBe("1")
        yield* delivery.ack
        expect(Option.isNone(yield* takeWithin(consumer, 300))).toBe(true)
        expect(Option.isNone(yield* takeWithin(yield* subscribe(bystander), 300))).toBe(true)
      })), timeout)

    test.if(features.directQueues)("request/reply: reply-to and correlation-id arrive, and the reply finds its way back", () =>
      run(Effect.gen(function*() {
        const server = { ...fresh(), topic: directTopic }
        const client = { ...fresh(), topic: directTopic }
        yield* declare(server)
        yield* declare(client)
        const replies = yield* subscribe(client)
        yield* publish(directTopic, range(3).map((i) => ({
          key: server.group,
          headers: { [Headers.replyTo]: client.group, [Headers.correlationId]: `req-${i}` },
          body: `question ${i}`
        })))
        const requests = yield* takeN(yield* subscribe({ ...server, prefetch: 10 }), 3)
        for (const request of requests) {
          const headers = request.message.headers
          expect(headers[Headers.replyTo]).toBe(client.group)
          yield* publish(directTopic, [{
            key: headers[Headers.replyTo]!,
            headers: { [Headers.correlationId]: headers[Headers.correlationId]! },
            body: `answer to ${bodyText(request.message)}`
          }])
          yield* request.ack
        }
        const answered = yield* takeN(replies, 3)
        expect(answered.map((d) => [d.message.headers[Headers.correlationId], bodyText(d.message)])).toEqual(
          range(3).map((i) => [`req-${i}`, `answer to question ${i}`])
        )
        expect(answered.every((d) => d.message.headers[Headers.replyTo] === undefined)).toBe(true)
        for (const delivery of answered) yield* delivery.ack
      })), timeout)

    test.if(features.countsConsumers)("consumers counts a group's consumers while they read; undefined for no group", () =>
      run(Effect.gen(function*() {
        const sub = fresh()
        const count = (group: string) => Subscriber.use((s) => s.consumers!(group))
        expect(yield* count(`${sub.group}-never-declared`)).toBeUndefined()
        yield* declare(sub)
        expect(yield* count(sub.group)).toBe(0)
        yield* Effect.scoped(Effect.gen(function*() {
          yield* subscribe(sub)
          yield* subscribe(sub)
          expect(yield* count(sub.group)).toBe(2)
        }))
        // Their scope closed: gone.
        expect(yield* count(sub.group)).toBe(0)
      })), timeout)

    test.if(features.directQueues)("a producer publishing straight to a group cannot set its attempt or origin either; a real retry still counts", () =>
      run(Effect.gen(function*() {
        const server = { ...fresh(), topic: directTopic }
        yield* declare(server)
        const forged = { [Headers.attempt]: "99", "x-original-exchange": "elsewhere", "x-original-routing-key": "other.key" }
        yield* publish(directTopic, [{ id: "forged-direct", key: server.group, headers: forged, body: "x" }])
        const consumer = yield* subscribe(server)
        const first = yield* consumer.take
        expect([first.message.id, first.attempt, first.topic, first.message.key]).toEqual(["forged-direct", 1, directTopic, server.group])
        yield* first.retry
        const second = yield* consumer.take
        expect([second.message.id, second.attempt, second.topic, second.message.key]).toEqual(["forged-direct", 2, directTopic, server.group])
        yield* second.ack
      })), timeout)

    test.if(features.directQueues)("a retried request keeps its reply-to and correlation-id", () =>
      run(Effect.gen(function*() {
        const server = { ...fresh(), topic: directTopic }
        yield* declare(server)
        yield* publish(directTopic, [{ key: server.group, headers: { [Headers.replyTo]: "somewhere", [Headers.correlationId]: "c-9" }, body: "q" }])
        const consumer = yield* subscribe(server)
        yield* (yield* consumer.take).retry
        const again = yield* consumer.take
        expect([again.attempt, again.message.headers[Headers.replyTo], again.message.headers[Headers.correlationId]]).toEqual([2, "somewhere", "c-9"])
        yield* again.ack
      })), timeout)

    test.if(features.exclusiveGroups)("an exclusive group is made by its consumer, takes replies, and goes away with it", () =>
      run(Effect.gen(function*() {
        const reply: Subscription = { ...fresh(), topic: directTopic, exclusive: true }
        const count = (group: string) => Subscriber.use((s) => s.consumers!(group))
        expect(Exit.isFailure(yield* Effect.exit(declare(reply)))).toBe(true)
        yield* Effect.scoped(Effect.gen(function*() {
          const consumer = yield* subscribe(reply)
          if (features.countsConsumers) expect(yield* count(reply.group)).toBe(1)
          yield* publish(directTopic, [{ id: "x-1", key: reply.group, headers: { [Headers.correlationId]: "c-1" }, body: "answer" }])
          const delivery = yield* consumer.take
          expect([delivery.message.id, delivery.message.headers[Headers.correlationId]]).toEqual(["x-1", "c-1"])
          // No dead-letter destination: dropped, and nothing else comes.
          yield* delivery.deadLetter("not awaited")
          expect(Option.isNone(yield* takeWithin(consumer, 300))).toBe(true)
          yield* publish(directTopic, [{ id: "x-2", key: reply.group, body: "never read" }])
        }))
        if (features.countsConsumers) expect(yield* count(reply.group)).toBeUndefined()
        // The same name made again starts empty: what the old group held went with it.
        const again = yield* subscribe(reply)
        expect(Option.isNone(yield* takeWithin(again, 500))).toBe(true)
        // A shared group's name is not taken over.
        const shared = { ...fresh(), topic: directTopic }
        yield* declare(shared)
        expect(Exit.isFailure(yield* Effect.exit(subscribe({ ...shared, exclusive: true })))).toBe(true)
      })), timeout)
  })
}

let counter = 0
const created: Array<Subscription> = []
const fresh = (): Subscription => {
  const id = `${Date.now().toString(36)}-${(counter++).toString(36)}-${Math.random().toString(36).slice(2, 6)}`
  const subscription = { topic: `contract.${id}`, group: `contract-${id}` }
  created.push(subscription, { ...subscription, group: `${subscription.group}-other` })
  return subscription
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i)
