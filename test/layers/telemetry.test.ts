import { describe, expect, test } from "bun:test"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Schedule from "effect/Schedule"
import * as Tracer from "effect/Tracer"
import * as MemoryBroker from "../../layers/memory/broker.ts"
import { serve } from "../../layers/platform/httpServer.ts"
import { layer as opsServerFromEnv, layerOptions as opsServer, OpsServer } from "../../layers/platform/opsServer.ts"
import * as Otel from "../../layers/telemetry/otel.ts"
import { Headers } from "../../src/capabilities/Message.ts"
import { Publisher } from "../../src/capabilities/Publisher.ts"
import { deadLetterTopic, Subscriber } from "../../src/capabilities/Subscriber.ts"
import { parseTraceparent } from "../../src/messaging/traceContext.ts"
import { consume, consumeBatches } from "../../src/messaging/consume.ts"
import * as Outcome from "../../src/messaging/Outcome.ts"
import { enforceMemoryLimit } from "../../src/runtime/memoryLimit.ts"
import { MetricsSource } from "../../src/runtime/MetricsSource.ts"
import { PROMETHEUS_CONTENT_TYPE } from "../../src/runtime/opsApp.ts"
import { Readiness } from "../../src/runtime/Readiness.ts"
import * as OtlpReceiver from "../support/otlpReceiver.ts"
import { findSamples, parsePrometheus, sample } from "../support/prometheus.ts"

const get = (url: string) => Effect.promise(() => fetch(url))
const withEnv = (env: Record<string, string>) =>
  Effect.provideService(ConfigProvider.ConfigProvider, ConfigProvider.fromEnvRecord(env))
const text = (response: Response) => Effect.promise(() => response.text())

// Effect's metric registry is process-wide, so each metric here has a name no other test uses.
const things = Metric.counter("qw_test_things", { description: "things done in a test", incremental: true })
const latency = Metric.histogram("qw_test_latency_ms", { boundaries: [1, 10, 100] })
const exported = Metric.counter("qw_test_exported", { incremental: true })
const pushed = Metric.counter("qw_test_pushed", { incremental: true })
const pushedLatency = Metric.histogram("qw_test_pushed_seconds", { boundaries: [1, 5] })

describe("telemetry: metrics through the ops server", () => {
  test("/metrics is the OpenTelemetry Prometheus exporter's text: a counter with labels, a histogram's buckets, target_info", () =>
    Effect.runPromise(
      Effect.gen(function*() {
        const x = Metric.withAttributes(things, { kind: "x" })
        yield* Metric.update(x, 1)
        yield* Metric.update(x, 1)
        yield* Metric.update(x, 1)
        yield* Metric.update(Metric.withAttributes(things, { kind: "y" }), 5)
        yield* Metric.update(latency, 5)
        yield* Metric.update(latency, 50)

        const { url } = yield* OpsServer
        const response = yield* get(`${url}/metrics`)
        expect(response.status).toBe(200)
        expect(response.headers.get("content-type")).toBe(PROMETHEUS_CONTENT_TYPE)
        const body = yield* text(response)
        const metrics = parsePrometheus(body)

        expect(metrics.types["qw_test_things_total"]).toBe("counter")
        expect(metrics.help["qw_test_things_total"]).toBe("things done in a test")
        expect(sample(metrics, "qw_test_things_total", { kind: "x" }).value).toBe(3)
        expect(sample(metrics, "qw_test_things_total", { kind: "y" }).value).toBe(5)
        // Series keep exactly the program's labels: no scope label is added to them.
        expect(sample(metrics, "qw_test_things_total", { kind: "x" }).labels).toEqual({ kind: "x" })

        expect(metrics.types["qw_test_latency_ms"]).toBe("histogram")
        expect(sample(metrics, "qw_test_latency_ms_bucket", { le: "1" }).value).toBe(0)
        expect(sample(metrics, "qw_test_latency_ms_bucket", { le: "10" }).value).toBe(1)
        expect(sample(metrics, "qw_test_latency_ms_bucket", { le: "100" }).value).toBe(2)
        expect(sample(metrics, "qw_test_latency_ms_bucket", { le: "+Inf" }).value).toBe(2)
        expect(sample(metrics, "qw_test_latency_ms_count").value).toBe(2)
        expect(sample(metrics, "qw_test_latency_ms_sum").value).toBe(55)

        // The resource names the service, so dashboards can tell programs apart; the SDK
        // attributes on it show the page came through OpenTelemetry's resource and exporter.
        expect(metrics.types["target_info"]).toBe("gauge")
        const target = sample(metrics, "target_info").labels
        expect(target["service_name"]).toBe("qw-metrics-test")
        expect(target["telemetry_sdk_name"]).toBe("@effect/opentelemetry")
        expect(body).toContain("# UNIT qw_test_things_total")
      }).pipe(
        Effect.provide(
          opsServer({ port: 0, hostname: "127.0.0.1" }).pipe(
            Layer.provide(Layer.mergeAll(Readiness.layer, Otel.layer({ serviceName: "qw-metrics-test" })))
          )
        )
      )
    ))

  test("the series the Grafana dashboard and an operator read keep their names and labels", () =>
    Effect.runPromise(
      Effect.gen(function*() {
        const topic = `orders-${crypto.randomUUID()}`
        const group = `billing-${crypto.randomUUID()}`
        yield* Subscriber.use((s) => s.declare({ topic, group }))
        yield* Publisher.use((p) => p.publish(topic, [{ key: "k", body: "{}" }]))
        const handled = yield* Deferred.make<void>()
        const consumer = yield* Effect.forkChild(consume({ topic, group }, () => Effect.asVoid(Deferred.succeed(handled, undefined))))
        yield* Deferred.await(handled)
        // The runner counts a message once it is settled, just after the handler returns.
        const page = yield* MetricsSource.use((m) => m.render).pipe(
          Effect.map(parsePrometheus),
          Effect.repeat({
            until: (page) => findSamples(page, "messages_handled_total", { subscription: group }).length > 0,
            schedule: Schedule.spaced("10 millis")
          }),
          Effect.timeout("2 seconds")
        )
        yield* Fiber.interrupt(consumer)

        // A memory limit every check exceeds, so one collection is counted at once.
        const limit = yield* Effect.forkChild(enforceMemoryLimit({
          limit: 1,
          residentBytes: Effect.succeed(2),
          collect: Effect.void,
          checkEvery: "1 millis"
        }))
        const withLimit = yield* MetricsSource.use((m) => m.render).pipe(
          Effect.map(parsePrometheus),
          Effect.repeat({
            until: (page) => findSamples(page, "memory_limit_collections_total").length > 0,
            schedule: Schedule.spaced("10 millis")
          }),
          Effect.timeout("2 seconds")
        )
        yield* Fiber.interrupt(limit)

        expect(page.types["messages_handled_total"]).toBe("counter")
        expect(sample(page, "messages_handled_total", { subscription: group }).labels).toEqual({ subscription: group, outcome: "ack" })
        expect(sample(page, "messages_handled_total", { subscription: group }).value).toBe(1)
        expect(page.types["message_handling_duration_seconds"]).toBe("histogram")
        expect(sample(page, "message_handling_duration_seconds_bucket", { subscription: group, le: "+Inf" }).value).toBe(1)
        expect(sample(page, "message_handling_duration_seconds_bucket", { subscription: group, le: "0.0005" }).labels).toEqual({
          subscription: group,
          le: "0.0005"
        })
        expect(sample(page, "target_info").labels["service_name"]).toBe("qw-dashboard-test")

        expect(withLimit.types["memory_limit_collections_total"]).toBe("counter")
        expect(sample(withLimit, "memory_limit_collections_total").value).toBeGreaterThanOrEqual(1)
        expect(withLimit.types["process_resident_memory_bytes"]).toBe("gauge")
        expect(sample(withLimit, "process_resident_memory_bytes").value).toBe(2)
      }).pipe(Effect.provide(Layer.merge(MemoryBroker.layer, Otel.layer({ serviceName: "qw-dashboard-test" }))))
    ))

  test("the ops server reports a bound ephemeral port and is gone after release", async () => {
    const url = await Effect.runPromise(
      Effect.gen(function*() {
        const server = yield* OpsServer
        expect(server.port).toBeGreaterThan(0)
        expect(server.url).toBe(`http://127.0.0.1:${server.port}`)
        expect((yield* get(`${server.url}/healthz`)).status).toBe(200)
        return server.url
      }).pipe(
        Effect.provide(
          opsServer({ port: 0, hostname: "127.0.0.1" }).pipe(
            Layer.provide(Layer.mergeAll(Readiness.layer, Otel.layer({ serviceName: "qw-test" })))
          )
        )
      )
    )
    expect(await fetch(`${url}/healthz`).then(() => "answered", () => "refused")).toBe("refused")
  })

  test("on release /readyz turns 503 while the server still answers, then the server stops", async () => {
    const seen: Array<string> = []
    let url = ""
    // Readiness whose shutdown asks the live server how it looks right after being told to stop:
    // if the server were stopped first, this request would be refused.
    const ProbingReadiness = Layer.effect(
      Readiness,
      Effect.gen(function*() {
        const real = yield* Readiness
        return Readiness.of({
          ...real,
          shutdown: real.shutdown.pipe(
            Effect.andThen(Effect.promise(() =>
              fetch(`${url}/readyz`).then((r) => `readyz ${r.status}`, () => "readyz refused")
            )),
            Effect.map((status) => { seen.push(status) })
          )
        })
      })
    ).pipe(Layer.provide(Readiness.layer))

    await Effect.runPromise(
      Effect.gen(function*() {
        url = (yield* OpsServer).url
        yield* Readiness.use((r) => r.set("broker", true))
        seen.push(`readyz ${(yield* get(`${url}/readyz`)).status}`)
      }).pipe(
        Effect.provide(
          opsServer({ port: 0, hostname: "127.0.0.1" }).pipe(
            Layer.provideMerge(Layer.mergeAll(ProbingReadiness, Otel.layer({ serviceName: "qw-test" })))
          )
        )
      )
    )
    expect(seen).toEqual(["readyz 200", "readyz 503"])
    expect(await fetch(`${url}/readyz`).then(() => "answered", () => "refused")).toBe("refused")
  })
test("an ops port already in use fails the layer with a typed error naming the port", () =>
    Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const taken = yield* serve(() => new Response("someone else"), { port: 0, hostname: "127.0.0.1" })
      const error = yield* Effect.void.pipe(
        Effect.provide(
          opsServer({ port: taken.port, hostname: "127.0.0.1" }).pipe(
            Layer.provide(Layer.mergeAll(Readiness.layer, Otel.layer({ serviceName: "qw-test" })))
          )
        ),
        Effect.flip
      )
      expect(error._tag).toBe("HttpServerError")
      expect(error.reason).toBe("AddressInUse")
      expect(error.message).toContain(`port ${taken.port} is already in use`)
    }))))
})

describe("telemetry: traces over OTLP", () => {
  test("a consumer's handle span is the child of the publish span, exported when the layer closes", () =>
    Effect.runPromise(
      Effect.scoped(Effect.gen(function*() {
        const receiver = yield* OtlpReceiver.make
        const topic = `orders-${crypto.randomUUID()}`
        const group = `billing-${crypto.randomUUID()}`

        const ids = yield* Effect.gen(function*() {
          const publisher = yield* Publisher
          const subscriber = yield* Subscriber
          yield* subscriber.declare({ topic, group })

          const produce = yield* Effect.gen(function*() {
            yield* publisher.publish(topic, [{ key: "order.created", body: "{}" }])
            return yield* Effect.currentSpan
          }).pipe(Effect.withSpan("produce"))

          const consumer = yield* subscriber.subscribe({ topic, group })
          const delivery = yield* consumer.take
          const traceparent = delivery.message.headers["traceparent"]
          expect(traceparent).toBeDefined()
          const handle = yield* Effect.gen(function*() {
            yield* delivery.ack
            return yield* Effect.currentSpan
          }).pipe(Effect.withSpan("handle", { kind: "consumer", parent: parseTraceparent(traceparent) }))
          return { produce, handle }
        }).pipe(
          Effect.scoped,
          Effect.provide(Layer.merge(
            MemoryBroker.layer,
            Otel.layer({ serviceName: "qw-trace-test", otlpEndpoint: receiver.endpoint })
          ))
        )

        // The layer is closed at this point. The batch processor's own delay is 5 s, so spans
        // arriving within this short wait were sent by the flush on close.
        const handle = yield* receiver.awaitSpan((s) => s.name === "handle", { timeout: "1 second" })
        const publish = yield* receiver.awaitSpan((s) => s.name === `publish ${topic}`, { timeout: "1 second" })
        const produce = yield* receiver.awaitSpan((s) => s.name === "produce", { timeout: "1 second" })

        expect(produce.spanId).toBe(ids.produce.spanId)
        expect(publish.parentSpanId).toBe(produce.spanId)
        expect(handle.parentSpanId).toBe(publish.spanId)
        expect(handle.traceId).toBe(ids.produce.traceId)
        expect(publish.traceId).toBe(ids.produce.traceId)
        expect(handle.spanId).toBe(ids.handle.spanId)
        expect(handle.kind).toBe(5)
        expect(publish.kind).toBe(4)
        expect(publish.attributes["messaging.destination.name"]).toBe(topic)
        expect(handle.serviceName).toBe("qw-trace-test")
      }))
    ))

  for (const runner of ["consume", "consumeBatches"] as const) {
    test(`the ${runner} runner's span for a message is the child of its publish span`, () =>
      Effect.runPromise(
        Effect.scoped(Effect.gen(function*() {
          const receiver = yield* OtlpReceiver.make
          const topic = `events-${crypto.randomUUID()}`
          const group = `counter-${crypto.randomUUID()}`

          const produced = yield* Effect.gen(function*() {
            yield* Subscriber.use((s) => s.declare({ topic, group }))
            const produce = yield* Publisher.use((p) => p.publish(topic, [{ key: "u1.event.created", body: "{}" }])).pipe(
              Effect.andThen(Effect.currentSpan),
              Effect.withSpan("produce")
            )
            const handled = yield* Deferred.make<void>()
            const fiber = yield* Effect.forkChild(
              runner === "consume"
                ? consume({ topic, group }, () => Effect.asVoid(Deferred.succeed(handled, undefined)))
                : consumeBatches({ topic, group }, (batch) => Deferred.succeed(handled, undefined).pipe(Effect.as(batch.map(() => Outcome.ack))))
            )
            yield* Deferred.await(handled)
            yield* Fiber.interrupt(fiber)
            return produce
          }).pipe(
            Effect.provide(Layer.merge(
              MemoryBroker.layer,
              Otel.layer({ serviceName: "qw-trace-test", otlpEndpoint: receiver.endpoint })
            ))
          )

          const publish = yield* receiver.awaitSpan((s) => s.name === `publish ${topic}`, { timeout: "1 second" })
          const consumed = yield* receiver.awaitSpan((s) => s.name === `consume ${topic}`, { timeout: "1 second" })
          expect(publish.traceId).toBe(produced.traceId)
          expect(consumed.traceId).toBe(produced.traceId)
          expect(consumed.parentSpanId).toBe(publish.spanId)
          expect(consumed.kind).toBe(5)
          expect(consumed.attributes["messaging.consumer.group.name"]).toBe(group)
        }))
      ))
  }

  test("a traced batch settles each message by its own outcome and exports a span for each", () =>
    Effect.runPromise(
      Effect.scoped(Effect.gen(function*() {
        const receiver = yield* OtlpReceiver.make
        const topic = `events-${crypto.randomUUID()}`
        const group = `counter-${crypto.randomUUID()}`

        const dead = yield* Effect.gen(function*() {
          yield* Subscriber.use((s) => s.declare({ topic, group }))
          yield* Publisher.use((p) =>
            p.publish(topic, [{ id: "good", key: "k", body: "{}" }, { id: "bad", key: "k", body: "not json" }])
          ).pipe(Effect.withSpan("produce"))
          const handled = yield* Deferred.make<void>()
          const fiber = yield* Effect.forkChild(consumeBatches({ topic, group }, (batch) =>
            Deferred.succeed(handled, undefined).pipe(Effect.as(batch.map((d) =>
              d.message.id === "good" ? Outcome.ack : Outcome.deadLetter("not JSON")
            )))))
          yield* Deferred.await(handled)
          const dlq = yield* Subscriber.use((s) => s.subscribe({ topic: deadLetterTopic(group), group: deadLetterTopic(group) }))
          const dead = yield* dlq.take
          yield* dead.ack
          yield* Fiber.interrupt(fiber)
          return dead
        }).pipe(
          Effect.provide(Layer.merge(
            MemoryBroker.layer,
            Otel.layer({ serviceName: "qw-trace-test", otlpEndpoint: receiver.endpoint })
          ))
        )

        expect(dead.message.id).toBe("bad")
        expect(dead.message.headers[Headers.deadLetterReason]).toBe("not JSON")
        const isMessageSpan = (id: string) => (s: OtlpReceiver.ReceivedSpan) =>
          s.name === `consume ${topic}` && s.attributes["messaging.message.id"] === id
        const spans = [
          yield* receiver.awaitSpan(isMessageSpan("good"), { timeout: "1 second" }),
          yield* receiver.awaitSpan(isMessageSpan("bad"), { timeout: "1 second" })
        ]
        expect(spans.map((s) => s.attributes["messaging.message.id"]).sort()).toEqual(["bad", "good"])
        const publishes = (yield* receiver.spans).filter((s) => s.name === `publish ${topic}`).map((s) => s.spanId)
        for (const span of spans) expect(publishes.includes(span.parentSpanId ?? "")).toBe(true)
      }))
    ))

  test("a traced batch makes no span for a message its producer did not sample", () =>
    Effect.runPromise(
      Effect.scoped(Effect.gen(function*() {
        const receiver = yield* OtlpReceiver.make
        const topic = `events-${crypto.randomUUID()}`
        const group = `counter-${crypto.randomUUID()}`
        const sampledParent = { traceId: "1".repeat(32), spanId: "2".repeat(16) }
        const unsampledParent = { traceId: "3".repeat(32), spanId: "4".repeat(16) }

        yield* Effect.gen(function*() {
          yield* Subscriber.use((s) => s.declare({ topic, group }))
          yield* Publisher.use((p) =>
            p.publish(topic, [
              { id: "sampled", key: "k", body: "{}", headers: { traceparent: `00-${sampledParent.traceId}-${sampledParent.spanId}-01` } },
              { id: "unsampled", key: "k", body: "{}", headers: { traceparent: `00-${unsampledParent.traceId}-${unsampledParent.spanId}-00` } }
            ])
          )
          const handled = yield* Deferred.make<ReadonlyArray<string>>()
          const fiber = yield* Effect.forkChild(consumeBatches({ topic, group }, (batch) =>
            Deferred.succeed(handled, batch.map((d) => d.message.id)).pipe(Effect.as(batch.map(() => Outcome.ack)))))
          expect(yield* Deferred.await(handled)).toEqual(["sampled", "unsampled"])
          yield* Fiber.interrupt(fiber)
        }).pipe(
          Effect.provide(Layer.merge(
            MemoryBroker.layer,
            Otel.layer({ serviceName: "qw-trace-test", otlpEndpoint: receiver.endpoint })
          ))
        )

        const sampled = yield* receiver.awaitSpan((s) => s.name === `consume ${topic}`, { timeout: "1 second" })
        expect(sampled.attributes["messaging.message.id"]).toBe("sampled")
        expect(sampled.traceId).toBe(sampledParent.traceId)
        expect(sampled.parentSpanId).toBe(sampledParent.spanId)
        yield* receiver.awaitSpan((s) => s.name === `consume ${topic} batch`, { timeout: "1 second" })
        // Everything was flushed when the layer closed: the unsampled message's span never existed.
        const all = yield* receiver.spans
        expect(all.filter((s) => s.attributes["messaging.message.id"] === "unsampled" || s.traceId === unsampledParent.traceId)).toEqual([])
      }))
    ))

  test("consume carries a trace its producer did not sample on to what the handler publishes, and records no span", () =>
    Effect.runPromise(
      Effect.scoped(Effect.gen(function*() {
        const receiver = yield* OtlpReceiver.make
        const topic = `orders-${crypto.randomUUID()}`
        const group = `billing-${crypto.randomUUID()}`
        const downstream = `invoices-${crypto.randomUUID()}`
        const producer = { traceId: "5".repeat(32), spanId: "6".repeat(16) }

        const forwarded = yield* Effect.gen(function*() {
          yield* Subscriber.use((s) => s.declare({ topic, group }))
          yield* Subscriber.use((s) => s.declare({ topic: downstream, group: downstream }))
          yield* Publisher.use((p) =>
            p.publish(topic, [{ id: "o1", key: "k", body: "{}", headers: { traceparent: `00-${producer.traceId}-${producer.spanId}-00` } }])
          )
          const fiber = yield* Effect.forkChild(consume({ topic, group }, ({ message }) =>
            Publisher.use((p) => p.publish(downstream, [{ id: `invoice-${message.id}`, key: "k", body: "{}" }]))))
          const next = yield* Subscriber.use((s) => s.subscribe({ topic: downstream, group: downstream }))
          const delivery = yield* next.take
          yield* delivery.ack
          yield* Fiber.interrupt(fiber)
          return delivery.message
        }).pipe(
          Effect.provide(Layer.merge(
            MemoryBroker.layer,
            Otel.layer({ serviceName: "qw-trace-test", otlpEndpoint: receiver.endpoint })
          ))
        )

        const context = parseTraceparent(forwarded.headers["traceparent"])
        expect(context?.traceId).toBe(producer.traceId)
        expect(context?.sampled).toBe(false)
        expect((yield* receiver.spans).filter((s) => s.traceId === producer.traceId)).toEqual([])
      }))
    ))

  test("without an endpoint nothing is exported, though OpenTelemetry's own lookup would find the receiver; with one, the same program's spans arrive", () =>
    Effect.runPromise(
      Effect.scoped(Effect.gen(function*() {
        const receiver = yield* OtlpReceiver.make
        // An OpenTelemetry exporter built without a URL reads this variable itself, so any
        // exporter the layer created when configured without an endpoint would send here.
        // The layer's configuration comes from `withEnv` below, which leaves it out.
        yield* Effect.acquireRelease(
          Effect.sync(() => {
            const before = process.env["OTEL_EXPORTER_OTLP_ENDPOINT"]
            process.env["OTEL_EXPORTER_OTLP_ENDPOINT"] = receiver.endpoint
            return before
          }),
          (before) =>
            Effect.sync(() => {
              if (before === undefined) delete process.env["OTEL_EXPORTER_OTLP_ENDPOINT"]
              else process.env["OTEL_EXPORTER_OTLP_ENDPOINT"] = before
            })
        )
        const program = Effect.gen(function*() {
          yield* Metric.update(exported, 1)
          yield* Effect.void.pipe(Effect.withSpan("maybe exported"))
          return yield* Tracer.Tracer
        })

        // The layer is closed when each run returns, which flushes whatever it would export.
        const without = yield* program.pipe(Effect.provide(Otel.layerConfig("qw-test")), withEnv({}))
        expect(without).toBe(Tracer.nativeTracer)
        expect(yield* receiver.requests).toEqual([])

        const withEndpoint = yield* program.pipe(
          Effect.provide(Otel.layerConfig("qw-test")),
          withEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint })
        )
        expect(withEndpoint).not.toBe(Tracer.nativeTracer)
        yield* receiver.awaitSpan((s) => s.name === "maybe exported", { timeout: "1 second" })
        // Metrics are pushed only when OTEL_METRICS_EXPORTER asks for OTLP.
        expect(yield* receiver.requests).toEqual(["POST /v1/traces"])
      }))
    ))

  test("with an endpoint the OpenTelemetry tracer replaces the native one", () =>
    Effect.runPromise(
      Effect.scoped(Effect.gen(function*() {
        const receiver = yield* OtlpReceiver.make
        const tracer = yield* Tracer.Tracer.pipe(
          Effect.provide(Otel.layer({ serviceName: "qw-test", otlpEndpoint: receiver.endpoint }))
        )
        expect(tracer).not.toBe(Tracer.nativeTracer)
      }))
    ))
})

describe("telemetry: metrics over OTLP", () => {
  test("OTEL_METRICS_EXPORTER=otlp pushes the metrics to <endpoint>/v1/metrics every OTEL_METRIC_EXPORT_INTERVAL, and /metrics still answers", () =>
    Effect.runPromise(
      Effect.scoped(Effect.gen(function*() {
        const receiver = yield* OtlpReceiver.make
        yield* Effect.gen(function*() {
          yield* Metric.update(Metric.withAttributes(pushed, { queue: "a" }), 2)
          yield* Metric.update(Metric.withAttributes(pushed, { queue: "b" }), 3)
          yield* Metric.update(pushedLatency, 0.5)
          yield* Metric.update(pushedLatency, 7)

          // Pushed while the layer is open: at the default interval (60 s) this would time out.
          const counter = yield* receiver.awaitMetric((m) => m.name === "qw_test_pushed", { timeout: "3 seconds" })
          expect(counter.kind).toBe("sum")
          expect(counter.isMonotonic).toBe(true)
          expect(counter.serviceName).toBe("qw-push-test")
          expect(counter.points.map((p) => [p.attributes["queue"], p.value]).sort()).toEqual([["a", 2], ["b", 3]])

          const histogram = yield* receiver.awaitMetric((m) => m.name === "qw_test_pushed_seconds", { timeout: "3 seconds" })
          expect(histogram.kind).toBe("histogram")
          expect(histogram.points[0]?.histogram).toEqual({ count: 2, sum: 7.5, bucketCounts: [1, 0, 1], explicitBounds: [1, 5] })

          const page = parsePrometheus(yield* MetricsSource.use((m) => m.render))
          expect(sample(page, "qw_test_pushed_total", { queue: "b" }).value).toBe(3)

          // Later pushes carry later values (cumulative).
          yield* Metric.update(Metric.withAttributes(pushed, { queue: "a" }), 10)
          yield* receiver.awaitMetric(
            (m) => m.name === "qw_test_pushed" && m.points.some((p) => p.attributes["queue"] === "a" && p.value === 12),
            { timeout: "3 seconds" }
          )
        }).pipe(
          Effect.provide(Otel.layerConfig("qw-push-test")),
          withEnv({
            OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
            OTEL_METRICS_EXPORTER: "otlp",
            OTEL_METRIC_EXPORT_INTERVAL: "100"
          })
        )
      }))
    ))

  test("closing the layer pushes the last values, without waiting for the interval", () =>
    Effect.runPromise(
      Effect.scoped(Effect.gen(function*() {
        const receiver = yield* OtlpReceiver.make
        const marker = crypto.randomUUID()
        yield* Metric.update(Metric.withAttributes(pushed, { queue: marker }), 4).pipe(
          Effect.provide(Otel.layer({ serviceName: "qw-push-test", otlpEndpoint: receiver.endpoint, otlpMetrics: true }))
        )
        const last = yield* receiver.awaitMetric(
          (m) => m.name === "qw_test_pushed" && m.points.some((p) => p.attributes["queue"] === marker),
          { timeout: "1 second" }
        )
        expect(last.points.find((p) => p.attributes["queue"] === marker)?.value).toBe(4)
        // One export, at close: the default interval (60 s) never came round.
        expect(yield* receiver.requests).toEqual(["POST /v1/metrics"])
      }))
    ))
})

describe("test support: OTLP receiver", () => {
  test("a protobuf export is refused and fails waiters at once instead of timing out", () =>
    Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const receiver = yield* OtlpReceiver.make
      const waiting = yield* Effect.forkChild(receiver.awaitSpan(() => true, { timeout: "10 seconds" }).pipe(Effect.flip))
      const response = yield* Effect.promise(() =>
        fetch(`${receiver.endpoint}/v1/traces`, {
          method: "POST",
          headers: { "content-type": "application/x-protobuf" },
          body: new Uint8Array([10, 0])
        })
      )
      expect(response.status).toBe(415)
      const error = yield* Fiber.join(waiting)
      expect(error.message).toContain("application/x-protobuf")
    }))))
})

describe("telemetry and ops server: configuration", () => {
  test("tracesUrl appends /v1/traces once; signalUrl does the same for metrics", () => {
    expect(Otel.tracesUrl("http://jaeger:4318")).toBe("http://jaeger:4318/v1/traces")
    expect(Otel.tracesUrl("http://jaeger:4318/")).toBe("http://jaeger:4318/v1/traces")
    expect(Otel.tracesUrl("https://otel.example/v1/traces")).toBe("https://otel.example/v1/traces")
    expect(Otel.signalUrl("http://collector:4318/", "metrics")).toBe("http://collector:4318/v1/metrics")
    expect(Otel.signalUrl("http://collector:4318/v1/metrics", "metrics")).toBe("http://collector:4318/v1/metrics")
  })

  const telemetryConfig = (env: Record<string, string>) => Effect.runPromise(Otel.TelemetryConfig.pipe(withEnv(env)))
  const telemetryError = (env: Record<string, string>) => Effect.runPromise(Otel.TelemetryConfig.pipe(Effect.flip, withEnv(env)))

  test("OTEL_METRICS_EXPORTER: a comma list as the spec writes it; otlp turns the push on, prometheus is the default", async () => {
    expect((await telemetryConfig({})).otlpMetrics).toBe(false)
    expect((await telemetryConfig({ OTEL_METRICS_EXPORTER: "" })).otlpMetrics).toBe(false)
    expect((await telemetryConfig({ OTEL_METRICS_EXPORTER: "prometheus" })).otlpMetrics).toBe(false)
    expect((await telemetryConfig({ OTEL_METRICS_EXPORTER: "none" })).otlpMetrics).toBe(false)
    expect((await telemetryConfig({ OTEL_METRICS_EXPORTER: "otlp" })).otlpMetrics).toBe(true)
    expect((await telemetryConfig({ OTEL_METRICS_EXPORTER: " Prometheus , OTLP " })).otlpMetrics).toBe(true)
  })

  test("a bad OTEL_METRICS_EXPORTER stops the program naming it, before anything is built", async () => {
    for (const bad of ["console", "otlp,zipkin", "otlp;prometheus"]) {
      const error = await telemetryError({ OTEL_METRICS_EXPORTER: bad })
      expect(error.variable).toBe("OTEL_METRICS_EXPORTER")
      expect(error.message).toContain("a comma-separated list of prometheus, otlp, none")
      expect(error.message).toContain(bad)
    }
    const fromLayer = await Effect.runPromise(
      Effect.void.pipe(Effect.provide(Otel.layerConfig("qw-test")), Effect.flip, withEnv({ OTEL_METRICS_EXPORTER: "console" }))
    )
    expect(fromLayer.variable).toBe("OTEL_METRICS_EXPORTER")
  })

  test("OTEL_METRIC_EXPORT_INTERVAL: milliseconds by default, 60000 when unset; a bad or zero interval is named", async () => {
    expect(Duration.toMillis((await telemetryConfig({})).metricExportInterval)).toBe(60_000)
    expect(Duration.toMillis((await telemetryConfig({ OTEL_METRIC_EXPORT_INTERVAL: "5000" })).metricExportInterval)).toBe(5000)
    expect(Duration.toMillis((await telemetryConfig({ OTEL_METRIC_EXPORT_INTERVAL: "10s" })).metricExportInterval)).toBe(10_000)
    for (const bad of ["soon", "0", "-5"]) {
      const error = await telemetryError({ OTEL_METRIC_EXPORT_INTERVAL: bad })
      expect(error.variable).toBe("OTEL_METRIC_EXPORT_INTERVAL")
    }
  })

  test("OTEL_EXPORTER_OTLP_ENDPOINT must be an http(s) URL; the error names the variable", async () => {
    const error = await Effect.runPromise(
      Effect.void.pipe(Effect.provide(Otel.layerConfig("qw-test")), Effect.flip, withEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: "jaeger:4318" }))
    )
    expect(error._tag).toBe("ConfigError")
    expect(error.variable).toBe("OTEL_EXPORTER_OTLP_ENDPOINT")
    expect(error.message).toContain("a URL starting with http:// or https://")
  })

  test("OTEL_SERVICE_NAME replaces the program's name; an empty endpoint means no tracing", () =>
    Effect.runPromise(
      Effect.gen(function*() {
        expect(yield* Tracer.Tracer).toBe(Tracer.nativeTracer)
        const metrics = parsePrometheus(yield* MetricsSource.use((m) => m.render))
        expect(sample(metrics, "target_info").labels["service_name"]).toBe("renamed")
      }).pipe(
        Effect.provide(Otel.layerConfig("qw-test")),
        withEnv({ OTEL_SERVICE_NAME: "renamed", OTEL_EXPORTER_OTLP_ENDPOINT: "" })
      )
    ))

  test("METRICS_PORT accepts 0 (ephemeral) and rejects what is not a port, naming it", async () => {
    const deps = Layer.mergeAll(Readiness.layer, Otel.layer({ serviceName: "qw-test" }))
    const port = await Effect.runPromise(
      OpsServer.use((s) => Effect.succeed(s.port)).pipe(
        Effect.provide(opsServerFromEnv.pipe(Layer.provide(deps))),
        withEnv({ METRICS_PORT: "0", METRICS_HOST: "127.0.0.1" })
      )
    )
    expect(port).toBeGreaterThan(0)
    for (const bad of ["-1", "65536", "nine"]) {
      const error = await Effect.runPromise(
        Effect.void.pipe(Effect.provide(opsServerFromEnv.pipe(Layer.provide(deps))), Effect.flip, withEnv({ METRICS_PORT: bad }))
      )
      expect(error._tag).toBe("ConfigError")
      expect(error._tag === "ConfigError" && error.variable).toBe("METRICS_PORT")
    }
  })

  test("METRICS_PATH moves the metrics and METRICS_ENABLED=false leaves them out (the original's names); bad values are named", async () => {
    const deps = Layer.mergeAll(Readiness.layer, Otel.layer({ serviceName: "qw-test" }))
    const statuses = (env: Record<string, string>, paths: ReadonlyArray<string>) =>
      Effect.runPromise(
        OpsServer.use((s) => Effect.promise(() => Promise.all(paths.map((p) => fetch(`${s.url}${p}`).then((r) => r.status))))).pipe(
          Effect.provide(opsServerFromEnv.pipe(Layer.provide(deps))),
          withEnv({ METRICS_PORT: "0", METRICS_HOST: "127.0.0.1", ...env })
        )
      )
    expect(await statuses({}, ["/metrics", "/healthz"])).toEqual([200, 200])
    expect(await statuses({ METRICS_PATH: "/prom/metrics" }, ["/prom/metrics", "/metrics", "/healthz"])).toEqual([200, 404, 200])
    expect(await statuses({ METRICS_ENABLED: "false" }, ["/metrics", "/healthz", "/readyz"])).toEqual([404, 200, 200])
    for (const [name, value] of [["METRICS_PATH", "metrics"], ["METRICS_PATH", "/readyz"], ["METRICS_ENABLED", "maybe"]] as const) {
      const error = await Effect.runPromise(
        Effect.void.pipe(Effect.provide(opsServerFromEnv.pipe(Layer.provide(deps))), Effect.flip, withEnv({ [name]: value }))
      )
      expect(error._tag === "ConfigError" && error.variable).toBe(name)
    }
  })
})
