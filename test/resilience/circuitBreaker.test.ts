import { describe, expect, test } from "bun:test"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Metric from "effect/Metric"
import { TestClock } from "effect/testing"
import type { Received } from "../../src/capabilities/Delivery.ts"
import { encodeBody } from "../../src/capabilities/Message.ts"
import * as Outcome from "../../src/messaging/Outcome.ts"
import {
  type CircuitBreaker as Breaker,
  CircuitBreaker,
  circuitBreaker,
  type CircuitBreakerOptions,
  CircuitOpenError
} from "../../src/resilience/circuitBreaker.ts"
import * as Metrics from "../../layers/telemetry/metrics.ts"
import { MetricsSource } from "../../src/runtime/MetricsSource.ts"

// A registry of its own per test, so gauges and counters start from nothing.
const runTest = <A, E>(effect: Effect.Effect<A, E>) =>
  Effect.runPromise(effect.pipe(Effect.provide(TestClock.layer()), Effect.provideService(Metric.MetricRegistry, new Map())))

const options: CircuitBreakerOptions = { name: "kafka", failureThreshold: 3, resetTimeout: "30 seconds", successThreshold: 2 }

const metric = (id: string) =>
  Effect.map(Metric.snapshot, (all) => {
    const found = all.find((m) => m.id === id && m.attributes?.["breaker"] === "kafka")
    if (found === undefined) return undefined
    return found.type === "Gauge" ? found.state.value : found.type === "Counter" ? found.state.count : undefined
  })
const gauge = metric("circuit_breaker_state")
const trips = metric("circuit_breaker_trips")

const ok = (breaker: Breaker) => breaker.protect(Effect.succeed("ok"))
const fail = (breaker: Breaker) => Effect.flip(breaker.protect(Effect.fail("down")))
const failTimes = (breaker: Breaker, n: number) => Effect.forEach(Array.from({ length: n }), () => fail(breaker), { discard: true })

/** An effect that counts its runs: proof that the breaker did or did not call through. */
const counted = () => {
  let runs = 0
  return { effect: Effect.sync(() => ++runs), runs: () => runs }
}

const received: Received = { message: { id: "m1", key: "k", headers: {}, body: encodeBody("x") }, topic: "orders", attempt: 1 }

describe("circuit breaker", () => {
  test("closed until failureThreshold failures in a row; a success resets the count", () =>
    runTest(Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make(options)
      expect(yield* breaker.state).toBe("closed")
      expect(yield* gauge).toBe(0)
      expect(yield* trips).toBe(0)
      yield* failTimes(breaker, 2)
      expect(yield* ok(breaker)).toBe("ok")
      yield* failTimes(breaker, 2)
      expect(yield* breaker.state).toBe("closed")
      expect(yield* fail(breaker)).toBe("down")
      expect(yield* breaker.state).toBe("open")
      expect(yield* gauge).toBe(2)
      expect(yield* trips).toBe(1)
    })))

  test("open: calls fail fast with CircuitOpenError and are not run, until resetTimeout has passed", () =>
    runTest(Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make(options)
      yield* failTimes(breaker, 3)
      yield* TestClock.adjust("10 seconds")
      const call = counted()
      const error = yield* Effect.flip(breaker.protect(call.effect))
      expect(call.runs()).toBe(0)
      expect(error).toBeInstanceOf(CircuitOpenError)
      expect(error).toMatchObject({ _tag: "CircuitOpenError", breaker: "kafka", state: "open" })
      expect(Duration.toMillis((error as CircuitOpenError).retryAfter)).toBe(20_000)
      yield* TestClock.adjust("19999 millis")
      expect(yield* breaker.state).toBe("open")
      expect(yield* Effect.flip(breaker.protect(call.effect))).toBeInstanceOf(CircuitOpenError)
      expect(call.runs()).toBe(0)
      yield* TestClock.adjust("1 millis")
      expect(yield* breaker.state).toBe("half-open")
      expect(yield* gauge).toBe(1)
    })))

  test("half-open admits one probe at a time, refuses the rest, and closes after successThreshold successes", () =>
    runTest(Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make(options)
      yield* failTimes(breaker, 3)
      yield* TestClock.adjust("30 seconds")
      const release = yield* Deferred.make<void>()
      const probe = yield* Effect.forkChild(breaker.protect(Deferred.await(release)), { startImmediately: true })
      const other = counted()
      const refused = yield* Effect.flip(breaker.protect(other.effect))
      expect(other.runs()).toBe(0)
      expect(refused).toMatchObject({ _tag: "CircuitOpenError", state: "half-open" })
      expect(yield* breaker.state).toBe("half-open")
      yield* Deferred.succeed(release, undefined)
      yield* Fiber.join(probe)
      // One success of two: still half-open, and the next call is the next probe.
      expect(yield* breaker.state).toBe("half-open")
      expect(yield* breaker.protect(other.effect)).toBe(1)
      expect(yield* breaker.state).toBe("closed")
      expect(yield* gauge).toBe(0)
      expect(yield* trips).toBe(1)
      // Closed again with a fresh count: it takes failureThreshold failures to open it.
      yield* failTimes(breaker, 2)
      expect(yield* breaker.state).toBe("closed")
    })))

  test("a failed probe opens it again for a whole resetTimeout", () =>
    runTest(Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make(options)
      yield* failTimes(breaker, 3)
      yield* TestClock.adjust("30 seconds")
      expect(yield* ok(breaker)).toBe("ok")
      expect(yield* fail(breaker)).toBe("down")
      expect(yield* breaker.state).toBe("open")
      expect(yield* gauge).toBe(2)
      expect(yield* trips).toBe(2)
      const error = yield* Effect.flip(ok(breaker))
      expect(Duration.toMillis((error as CircuitOpenError).retryAfter)).toBe(30_000)
      yield* TestClock.adjust("29999 millis")
      expect(yield* breaker.state).toBe("open")
      yield* TestClock.adjust("1 millis")
      expect(yield* breaker.state).toBe("half-open")
    })))

  test("an interrupted probe frees the slot without judging the downstream", () =>
    runTest(Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make(options)
      yield* failTimes(breaker, 3)
      yield* TestClock.adjust("30 seconds")
      const hung = yield* Effect.forkChild(breaker.protect(Effect.never), { startImmediately: true })
      expect(yield* Effect.flip(ok(breaker))).toBeInstanceOf(CircuitOpenError)
      yield* Fiber.interrupt(hung)
      expect(yield* breaker.state).toBe("half-open")
      expect(yield* ok(breaker)).toBe("ok")
    })))

  test("isFailure picks the failures that count; the others count as successes; defects always count", () =>
    runTest(Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ ...options, isFailure: (error) => error !== "invalid order" })
      const rejected = Effect.flip(breaker.protect(Effect.fail("invalid order")))
      const died = Effect.exit(breaker.protect(Effect.die(new Error("driver bug"))))
      yield* fail(breaker)
      yield* fail(breaker)
      expect(yield* rejected).toBe("invalid order")
      yield* fail(breaker)
      yield* fail(breaker)
      expect(yield* breaker.state).toBe("closed")
      yield* died
      expect(yield* breaker.state).toBe("open")
    })))

  test("a result from a call let through before the last change of state is ignored", () =>
    runTest(Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make(options)
      const release = yield* Deferred.make<void>()
      const slow = yield* Effect.forkChild(
        breaker.protect(Effect.andThen(Deferred.await(release), Effect.fail("stale"))),
        { startImmediately: true }
      )
      yield* failTimes(breaker, 3)
      yield* TestClock.adjust("30 seconds")
      yield* ok(breaker)
      yield* ok(breaker)
      expect(yield* breaker.state).toBe("closed")
      // Its failure is about the downstream before the outage: it must not count in the new run.
      yield* Deferred.succeed(release, undefined)
      yield* Effect.flip(Fiber.join(slow))
      yield* failTimes(breaker, 2)
      expect(yield* breaker.state).toBe("closed")
    })))

  test("a metric prefix gives the outbox its original names, with the breaker label", () =>
    runTest(Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ ...options, metricPrefix: "txstream_" })
      yield* failTimes(breaker, 3)
      // Rendered as /metrics renders it: through the OpenTelemetry Prometheus exporter.
      const text = yield* MetricsSource.use((source) => source.render).pipe(
        Effect.provide(Metrics.layer({ serviceName: "breaker-test", shutdownTimeout: "1 second" }))
      )
      expect(text).toContain(`txstream_circuit_breaker_state{breaker="kafka"} 2`)
      expect(text).toContain(`txstream_circuit_breaker_trips_total{breaker="kafka"} 1`)
      expect(text).toContain("# TYPE txstream_circuit_breaker_trips_total counter")
    })))
})

describe("circuitBreaker middleware", () => {
  test("the handler's failures and retries count; while open the handler is not called and the message waits until half-open", () =>
    runTest(Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make(options)
      let calls = 0
      const results: Array<Effect.Effect<Outcome.Outcome | void, string>> = [
        Effect.fail("down"),
        Effect.succeed(Outcome.retry("busy")),
        Effect.succeed(Outcome.deadLetter("malformed")), // the downstream answered: resets the count
        Effect.fail("down"),
        Effect.succeed(Outcome.retry("busy")),
        Effect.die(new Error("bug"))
      ]
      const handler = circuitBreaker(breaker)(() => Effect.suspend(() => results[calls++]!))
      expect(yield* Effect.flip(handler(received))).toBe("down")
      expect(yield* handler(received)).toEqual(Outcome.retry("busy"))
      expect(yield* handler(received)).toEqual(Outcome.deadLetter("malformed"))
      expect(yield* Effect.flip(handler(received))).toBe("down")
      expect(yield* handler(received)).toEqual(Outcome.retry("busy"))
      expect(yield* breaker.state).toBe("closed")
      yield* Effect.exit(handler(received))
      expect(yield* breaker.state).toBe("open")
      expect(calls).toBe(6)

      yield* TestClock.adjust("12 seconds")
      const refused = yield* handler(received)
      expect(calls).toBe(6)
      expect(refused?._tag).toBe("Retry")
      expect(refused?._tag === "Retry" && refused.reason).toContain(`"kafka" is open`)
      expect(refused?._tag === "Retry" && refused.after !== undefined && Duration.toMillis(refused.after)).toBe(18_000)
      // The message is not at fault: waiting out the breaker does not use up its attempts.
      expect(refused?._tag === "Retry" && refused.countsAsAttempt).toBe(false)
    })))

  test("half-open: the probe message is handled, and its ack closes the breaker", () =>
    runTest(Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ ...options, successThreshold: 1 })
      yield* failTimes(breaker, 3)
      yield* TestClock.adjust("30 seconds")
      let calls = 0
      const handler = circuitBreaker(breaker)(() => Effect.sync(() => void calls++))
      expect(yield* handler(received)).toBeUndefined()
      expect(calls).toBe(1)
      expect(yield* breaker.state).toBe("closed")
    })))
})
