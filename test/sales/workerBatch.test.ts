/**
 * The sales worker's batch handler: each request of a batch gets its own outcome, the replies of
 * the batch go out in one publish, and when that publish fails the answered requests (and only
 * they) come back as retries.
 */
import { expect, test } from "bun:test"
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as Effect from "effect/Effect"
import * as Sqlite from "../../layers/sqlite/index.ts"
import type { Received } from "../../src/capabilities/Delivery.ts"
import { bodyText, Headers, type Message } from "../../src/capabilities/Message.ts"
import { Publisher, PublisherError } from "../../src/capabilities/Publisher.ts"
import { answer } from "../../src/sales/answer.ts"
import { defaultSeedOptions, seedSales } from "../../src/sales/seed.ts"
import { deadlineHeader, makeSalesWorker, workerHeader } from "../../src/sales/worker.ts"

const dir = mkdtempSync(join(tmpdir(), "worker-batch-"))

const received = (id: string, headers: Record<string, string>, body: string): Received => ({
  message: { id, key: "w1", headers, body: new TextEncoder().encode(body) },
  topic: "",
  attempt: 1
})

const request = JSON.stringify({ region: "South", category: "Books", from: "2024-02-01", to: "2024-06-30" })
const batch = [
  received("a", { [Headers.replyTo]: "client", [Headers.correlationId]: "c-a" }, request),
  received("b", { [Headers.correlationId]: "c-b" }, request),
  received("c", { [Headers.replyTo]: "client", [Headers.correlationId]: "c-c", [deadlineHeader]: "1000" }, request),
  received("d", { [Headers.replyTo]: "client", [Headers.correlationId]: "c-d" }, JSON.stringify({ region: "Atlantis", from: "2024-01-01", to: "2024-01-02" }))
]

test("a batch: an outcome per request, its replies in one publish; a failed publish retries only the answered ones", () =>
  Effect.runPromise(Effect.scoped(Effect.gen(function*() {
    const driver = yield* Sqlite.loadDriver
    const path = join(dir, "sales.db")
    yield* Effect.scoped(Effect.flatMap(driver.open({ path, create: true }), (db) => seedSales(db, { ...defaultSeedOptions, sales: 2_000 })))
    const db = yield* driver.open({ path, readOnly: true })
    const worker = makeSalesWorker(db, "w1", "w1")

    const calls: Array<ReadonlyArray<Message>> = []
    const recording = Publisher.make("recording", (_topic, messages) => Effect.sync(() => void calls.push(messages)))
    const outcomes = yield* worker.batchHandler(batch).pipe(Effect.provideService(Publisher, recording))
    // a answered, b has nowhere to reply (dead-lettered), c expired (acked, unanswered), d an error reply.
    expect(outcomes.map((o) => o?._tag)).toEqual(["Ack", "DeadLetter", "Ack", "Ack"])
    expect(calls).toHaveLength(1)
    expect(calls[0]!.map((m) => [m.key, m.headers[Headers.correlationId], m.headers[workerHeader]])).toEqual([
      ["client", "c-a", "w1"],
      ["client", "c-d", "w1"]
    ])
    expect(JSON.parse(bodyText(calls[0]![0]!))).toEqual(yield* answer(db, batch[0]!.message.body))
    expect(JSON.parse(bodyText(calls[0]![1]!))).toMatchObject({ ok: false, error: { code: "unknown_region" } })

    const down = Publisher.make("down", (topic) => Effect.fail(new PublisherError({ operation: "publish", topic, cause: "broker unreachable" })))
    const failed = yield* worker.batchHandler(batch).pipe(Effect.provideService(Publisher, down))
    expect(failed.map((o) => o?._tag)).toEqual(["Retry", "DeadLetter", "Ack", "Retry"])
    // One at a time, the same failure fails the call, so the runner retries the request.
    const single = yield* Effect.exit(worker.handler(batch[0]!).pipe(Effect.provideService(Publisher, down)))
    expect(single._tag).toBe("Failure")
    expect(yield* worker.load).toEqual({ inFlight: 0, answered: 2 })
  }))))
