/**
 * The RabbitMQ layer survives losing its connection. Most cases talk to the broker through a TCP
 * proxy the test cuts (a dead socket: network failure, broker killed); one has the broker itself
 * close the connection with `rabbitmqctl` (what a broker shutting down sends).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import * as Scope from "effect/Scope"
import * as RabbitMq from "../../layers/rabbitmq/index.ts"
import { bodyText } from "../../src/capabilities/Message.ts"
import { Publisher } from "../../src/capabilities/Publisher.ts"
import { Subscriber, type Subscription } from "../../src/capabilities/Subscriber.ts"
import { deleteRabbitmqTopology } from "../support/rabbitmq.ts"
import { closeConnectionsNamed, probeRabbitmqctl } from "../support/rabbitmqctl.ts"
import { freshName, probeRabbitmq, rabbitmqUrl, requireServer } from "../support/servers.ts"
import { startTcpProxy, type TcpProxy, viaProxy } from "../support/tcpProxy.ts"
import { takeN, takeWithin } from "../support/broker.ts"

const url = rabbitmqUrl()

if (await requireServer("RabbitMQ", probeRabbitmq(url))) {
  describe("rabbitmq reconnect", () => {
    let proxy: TcpProxy
    beforeAll(async () => {
      const target = new URL(url)
      proxy = await startTcpProxy({ host: target.hostname, port: Number(target.port || 5672) })
    })
    afterAll(() => proxy.close())

    const run = <A, E>(
      options: Partial<RabbitMq.RabbitMqOptions>,
      effect: Effect.Effect<A, E, Publisher | Subscriber | Scope.Scope>
    ) =>
      Effect.runPromise(
        Effect.scoped(effect).pipe(Effect.provide(RabbitMq.layer({ url: viaProxy(url, proxy), ...options })))
      )

    test("after a cut, publishing and consuming resume; the unacked message comes again, the acked one does not", () =>
      run({}, Effect.gen(function*() {
        const sub = fresh()
        const publisher = yield* Publisher
        const consumer = yield* Subscriber.use((s) => s.subscribe(sub))
        yield* publisher.publish(sub.topic, [{ id: "acked", key: "k", body: "1" }, { id: "unacked", key: "k", body: "2" }])
        const before = yield* takeN(consumer, 2)
        const acked = before.find((d) => d.message.id === "acked")!
        const unacked = before.find((d) => d.message.id === "unacked")!
        yield* acked.ack
        yield* Effect.sleep("200 millis") // well past the ack flush interval: the ack reached the broker

        const connectionsBefore = proxy.accepted()
        proxy.cut()
        yield* publisher.publish(sub.topic, [{ id: "after", key: "k", body: "3" }])
        expect(proxy.accepted()).toBeGreaterThan(connectionsBefore)

        // Settling a delivery of the dead channel is a no-op, not an error.
        yield* unacked.ack

        const after = yield* takeN(consumer, 2)
        expect(after.map((d) => d.message.id).sort()).toEqual(["after", "unacked"])
        const redelivered = after.find((d) => d.message.id === "unacked")!
        expect(redelivered.attempt).toBe(2)
        expect(bodyText(redelivered.message)).toBe("2")
        yield* Effect.forEach(after, (d) => d.ack)
        expect(yield* takeWithin(consumer, 500)).toEqual(Option.none())
      })), 30_000)

    test("publishing while the broker is unreachable waits for the reconnect, and fails past the publish timeout", () =>
      // Reconnect attempts every 100 ms: with the default exponential backoff the attempt after
      // the broker is back may come later than the publish timeout, on a busy machine.
      run({ publishTimeout: "1 second", reconnectSchedule: Schedule.spaced("100 millis") }, Effect.gen(function*() {
        const sub = fresh()
        const publisher = yield* Publisher
        yield* Subscriber.use((s) => s.declare(sub))
        const healthy = Subscriber.use((s) => s.healthy)
        expect(yield* healthy).toBe(true)

        proxy.refuse(true)
        proxy.cut()
        const timedOut = yield* Effect.exit(publisher.publish(sub.topic, [{ id: "lost", key: "k", body: "x" }]))
        expect(Exit.isFailure(timedOut)).toBe(true)
        // /readyz reports this: the connection is down until the broker answers again.
        expect(yield* healthy).toBe(false)
        if (Exit.isFailure(timedOut)) {
          const error = Cause.squash(timedOut.cause)
          expect(error).toMatchObject({ _tag: "PublisherError", operation: "publish", topic: sub.topic })
        }

        const waiting = yield* Effect.forkChild(
          publisher.publish(sub.topic, [{ id: "waited", key: "k", body: "y" }]),
          { startImmediately: true }
        )
        yield* Effect.sleep("300 millis")
        proxy.refuse(false)
        yield* Fiber.join(waiting)
        expect(yield* healthy).toBe(true)

        const consumer = yield* Subscriber.use((s) => s.subscribe(sub))
        const got = yield* takeN(consumer, 1)
        // "lost" may or may not have reached the broker before the cut was noticed; "waited" must have.
        const ids = [got[0]!.message.id]
        const more = yield* takeWithin(consumer, 500)
        if (Option.isSome(more)) ids.push(more.value.message.id)
        expect(ids).toContain("waited")
        yield* Effect.forEach(got, (d) => d.ack)
        if (Option.isSome(more)) yield* more.value.ack
      })), 30_000)

    test("a consumer keeps waiting through an outage and gets what is published after it", () =>
      run({}, Effect.gen(function*() {
        const sub = fresh()
        const consumer = yield* Subscriber.use((s) => s.subscribe(sub))
        const taking = yield* Effect.forkChild(consumer.take, { startImmediately: true })

        proxy.refuse(true)
        proxy.cut()
        yield* Effect.sleep("700 millis") // several failed reconnect attempts
        proxy.refuse(false)

        yield* Publisher.use((p) => p.publish(sub.topic, [{ id: "later", key: "k", body: "z" }]))
        const delivery = yield* Fiber.join(taking).pipe(Effect.timeout("10 seconds"))
        expect(delivery.message.id).toBe("later")
        expect(delivery.attempt).toBe(1)
        yield* delivery.ack
      })), 30_000)
  })

  if (await requireServer("rabbitmqctl", probeRabbitmqctl())) {
    describe("rabbitmq reconnect, broker-initiated", () => {
      test("a connection the broker closes is opened again and the unacked delivery comes again", () => {
        // Only this test's connection is closed: others may be using the same broker.
        const connectionName = freshName("reconnect-test")
        return Effect.runPromise(Effect.scoped(Effect.gen(function*() {
          const sub = fresh()
          const consumer = yield* Subscriber.use((s) => s.subscribe(sub))
          yield* Publisher.use((p) => p.publish(sub.topic, [{ id: "before", key: "k", body: "1" }]))
          const before = yield* takeN(consumer, 1)
          expect(before[0]!.message.id).toBe("before")

          const closed = yield* Effect.promise(() => closeConnectionsNamed(connectionName))
          expect(closed).toBe(1)

          yield* Publisher.use((p) => p.publish(sub.topic, [{ id: "after", key: "k", body: "2" }]))
          const after = yield* takeN(consumer, 2)
          expect(after.map((d) => d.message.id).sort()).toEqual(["after", "before"])
          yield* Effect.forEach(after, (d) => d.ack)
        })).pipe(Effect.provide(RabbitMq.layer({ url, connectionName }))))
      }, 60_000)
    })
  }
}

const created: Array<Subscription> = []
afterAll(() => deleteRabbitmqTopology(rabbitmqUrl(), created))

const fresh = (): Subscription => {
  const id = freshName("reconnect")
  const subscription = { topic: `${id}.topic`, group: id, prefetch: 10 }
  created.push(subscription)
  return subscription
}
