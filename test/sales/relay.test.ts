/**
 * The balancer's relay on the memory broker with two in-process workers: replies come back to
 * the client under its own correlation ids, routed over both workers, outstanding back to zero;
 * a worker that leaves has its unanswered requests answered by the other.
 */
import { describe, expect, test } from "bun:test"
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as Effect from "effect/Effect"
import * as MemoryBroker from "../../layers/memory/broker.ts"
import * as Sqlite from "../../layers/sqlite/index.ts"
import { bodyText, Headers } from "../../src/capabilities/Message.ts"
import { Publisher, PublisherError } from "../../src/capabilities/Publisher.ts"
import { directTopic, Subscriber } from "../../src/capabilities/Subscriber.ts"
import { consume } from "../../src/messaging/consume.ts"
import { answer } from "../../src/sales/answer.ts"
import { Balancer } from "../../src/sales/balancer.ts"
import { heartbeatTopic } from "../../src/sales/heartbeat.ts"
import { maxCorrelationBytes, packCorrelation, runRelay, unpackCorrelation } from "../../src/sales/relay.ts"
import { defaultSeedOptions, regions, seedSales } from "../../src/sales/seed.ts"
import { deadlineHeader, makeSalesWorker } from "../../src/sales/worker.ts"
import { takeN } from "../support/broker.ts"

describe("correlation packing", () => {
  test("round-trips the client's reply-to and correlation id, any text", () => {
    const client = { replyTo: "amq.gen-Xy_z9", correlationId: "ü.1/2+3=" }
    expect(unpackCorrelation(packCorrelation("abc", client)!)).toEqual({ id: "abc", client })
    expect(unpackCorrelation(packCorrelation("abc", { replyTo: "q", correlationId: undefined })!)).toEqual({
      id: "abc", client: { replyTo: "q", correlationId: undefined }
    })
  })

  test("packs as base64url of the UTF-8 text, so a balancer reads what an earlier one packed", () => {
    expect(packCorrelation("abc", { replyTo: "q1", correlationId: "c-1" })).toBe("abc.cTE.Yy0x")
    expect(packCorrelation("abc", { replyTo: "é", correlationId: undefined })).toBe("abc.w6k.")
    expect(unpackCorrelation("abc.w6k.Yy0x")).toEqual({ id: "abc", client: { replyTo: "é", correlationId: "c-1" } })
    // A lone 0xff byte is not UTF-8.
    expect(unpackCorrelation("abc._w.")).toBeUndefined()
  })

  test("refuses what would exceed AMQP's limit, and reads nothing it did not make", () => {
    expect(packCorrelation("abc", { replyTo: "q", correlationId: "x".repeat(maxCorrelationBytes) })).toBeUndefined()
    for (const junk of ["", "plain", "a.b", "a.%%%.c", ".cQ.", "a.b.c.d"]) expect(unpackCorrelation(junk)).toBeUndefined()
  })
})

const dir = mkdtempSync(join(tmpdir(), "relay-"))

describe("relay on the memory broker", () => {
  test("replies reach the client under its correlation ids; a leaving worker's requests go to the other", () =>
    Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const driver = yield* Sqlite.loadDriver
      const path = join(dir, "relay.db")
      yield* Effect.scoped(Effect.flatMap(driver.open({ path, create: true }), (db) => seedSales(db, { ...defaultSeedOptions, sales: 2_000 })))
      const db = yield* driver.open({ path, readOnly: true })

      const balancer = new Balancer(["w1", "w2"])
      const replies = yield* Subscriber.use((s) => s.subscribe({ topic: directTopic, group: "client", prefetch: 1_000 }))
      yield* Effect.forkScoped(runRelay(balancer, {
        requestQueue: "sales_requests", replyQueue: "balancer-replies", heartbeatTopic, heartbeatQueue: "balancer.heartbeats",
        prefetch: 100, tick: "50 millis", statsEvery: "1 hour", consumerCheck: "1 hour"
      }))
      // w1 answers; w2 takes requests and never answers until it "leaves".
      yield* Effect.forkScoped(consume({ topic: directTopic, group: "w1" }, makeSalesWorker(db, "w1", "w1").handler))
      const w2 = yield* Subscriber.use((s) => s.subscribe({ topic: directTopic, group: "w2", prefetch: 100 }))
      yield* Subscriber.use((s) => s.declare({ topic: directTopic, group: "sales_requests" }))

      const request = (i: number) => JSON.stringify({ region: regions[i % 5], from: "2024-01-01", to: "2024-06-30" })
      const send = (from: number, to: number) =>
        Publisher.use((p) =>
          p.publish(directTopic, Array.from({ length: to - from }, (_, k) => ({
            key: "sales_requests",
            headers: { [Headers.replyTo]: "client", [Headers.correlationId]: `c-${from + k}` },
            body: request(from + k)
          })))
        )
      yield* send(0, 10)
      const held = yield* takeN(w2, 5)
      const first = yield* takeN(replies, 5)
      expect(balancer.snapshot().map((w) => [w.queue, w.routed, w.outstanding])).toEqual([["w1", 5, 0], ["w2", 5, 5]])

      // w2 says it leaves: its five go to w1 and are answered there.
      yield* Publisher.use((p) =>
        p.publish(heartbeatTopic, [{
          key: "w2",
          body: JSON.stringify({ worker: "w2", queue: "w2", inFlight: 5, answered: 0, prefetch: 100, intervalMillis: 1000, leaving: true, sentAt: Date.now() })
        }])
      )
      const rest = yield* takeN(replies, 5)
      const all = [...first, ...rest]
      const byId = new Map(all.map((d) => [d.message.headers[Headers.correlationId]!, bodyText(d.message)]))
      expect([...byId.keys()].sort()).toEqual(Array.from({ length: 10 }, (_, i) => `c-${i}`).sort())
      for (let i = 0; i < 10; i++) {
        expect(JSON.parse(byId.get(`c-${i}`)!)).toEqual(yield* answer(db, new TextEncoder().encode(request(i))))
      }
      expect(balancer.snapshot().map((w) => [w.queue, w.healthy, w.outstanding, w.rerouted])).toEqual([["w1", true, 0, 5], ["w2", false, 0, 0]])
      expect(balancer.outstanding).toBe(0)
      for (const d of [...all, ...held]) yield* d.ack

      // Past its deadline on arrival: dropped by the balancer, never forwarded.
      yield* Publisher.use((p) =>
        p.publish(directTopic, [{
          key: "sales_requests",
          headers: { [Headers.replyTo]: "client", [Headers.correlationId]: "late", [deadlineHeader]: String(Date.now() - 1) },
          body: request(0)
        }, { key: "sales_requests", headers: { [Headers.replyTo]: "client", [Headers.correlationId]: "on-time" }, body: request(0) }])
      )
      const [next] = yield* takeN(replies, 1)
      expect(next!.message.headers[Headers.correlationId]).toBe("on-time")
      expect(balancer.snapshot().reduce((n, w) => n + w.routed, 0)).toBe(11)
    })).pipe(Effect.provide(MemoryBroker.layer))), 30_000)

  test("a batch of forwards the broker did not take: none stays outstanding, each is routed again and reaches the worker once", () =>
    Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const balancer = new Balancer(["w1"])
      const memory = yield* Publisher
      // The first publish of forwards to w1 fails; everything else reaches the memory broker.
      let failures = 0
      const flaky = Publisher.make("flaky", (topic, messages) =>
        messages.some((m) => m.key === "w1") && failures++ === 0
          ? Effect.fail(new PublisherError({ operation: "publish", topic, cause: "broker unreachable" }))
          : memory.publish(topic, messages))
      const w1 = yield* Subscriber.use((s) => s.subscribe({ topic: directTopic, group: "w1", prefetch: 100 }))
      yield* Subscriber.use((s) => s.declare({ topic: directTopic, group: "flaky_requests" }))
      yield* Effect.forkScoped(runRelay(balancer, {
        requestQueue: "flaky_requests", replyQueue: "flaky-replies", heartbeatTopic, heartbeatQueue: "flaky.heartbeats",
        prefetch: 100, tick: "1 hour", statsEvery: "1 hour", consumerCheck: "1 hour"
      }).pipe(Effect.provideService(Publisher, flaky)))
      yield* memory.publish(directTopic, [0, 1, 2].map((i) => ({
        key: "flaky_requests",
        headers: { [Headers.replyTo]: "client", [Headers.correlationId]: `c-${i}` },
        body: "{}"
      })))
      const forwarded = yield* takeN(w1, 3)
      expect(failures).toBeGreaterThanOrEqual(2)
      const ids = forwarded.map((d) => unpackCorrelation(d.message.headers[Headers.correlationId]!)!.client.correlationId)
      expect(ids.sort()).toEqual(["c-0", "c-1", "c-2"])
      // The failed attempt was forgotten: three routed and outstanding, not six.
      expect(balancer.snapshot().map((w) => [w.routed, w.outstanding])).toEqual([[3, 3]])
      for (const d of forwarded) yield* d.ack
    })).pipe(Effect.provide(MemoryBroker.layer))), 30_000)
})
