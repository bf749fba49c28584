/**
 * Heartbeats on the memory broker under the TestClock: one per interval with the worker's load,
 * and a last one saying it leaves when interrupted.
 */
import { expect, test } from "bun:test"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import { TestClock } from "effect/testing"
import * as MemoryBroker from "../../layers/memory/broker.ts"
import { Subscriber } from "../../src/capabilities/Subscriber.ts"
import { heartbeatTopic, parseHeartbeat, publishHeartbeats } from "../../src/sales/heartbeat.ts"

test("one beat per interval with the current load, then a leaving one", () =>
  Effect.runPromise(Effect.scoped(Effect.gen(function*() {
    const consumer = yield* Subscriber.use((s) => s.subscribe({ topic: heartbeatTopic, group: "balancer" }))
    let answered = 0
    const beating = yield* Effect.forkChild(publishHeartbeats(
      { worker: "w1", queue: "mom-worker-1", prefetch: 10, load: Effect.sync(() => ({ inFlight: 2, answered: answered++ })) },
      "1 second"
    ))
    yield* TestClock.adjust("2500 millis")
    yield* Fiber.interrupt(beating)
    const beats: Array<ReturnType<typeof parseHeartbeat>> = []
    for (let i = 0; i < 4; i++) {
      const delivery = yield* consumer.take
      expect(delivery.message.key).toBe("w1")
      beats.push(parseHeartbeat(delivery.message))
      yield* delivery.ack
    }
    expect(beats.map((b) => [b?.answered, b?.leaving, b?.sentAt])).toEqual([[0, false, 0], [1, false, 1000], [2, false, 2000], [3, true, 2500]])
    expect(beats[0]).toEqual({ worker: "w1", queue: "mom-worker-1", inFlight: 2, answered: 0, prefetch: 10, intervalMillis: 1000, leaving: false, sentAt: 0 })
    expect(parseHeartbeat({ body: new TextEncoder().encode("{\"worker\":\"x\"}") })).toBeUndefined()
  })).pipe(Effect.provide(MemoryBroker.layer), Effect.provide(TestClock.layer()))))
