/**
 * The Service Bus test server (built from the SDK's protocol, not Azure) driven by the unmodified
 * `@azure/service-bus` SDK: what the SDK's session API does against it is what the Service Bus
 * backend relies on.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import { isServiceBusError, ServiceBusClient, type ServiceBusReceivedMessage } from "@azure/service-bus"
import { freshName } from "../support/servers.ts"
import { until } from "../support/until.ts"
import { type ServiceBusTestServer, startServiceBusTestServer, testServerAdministrationClient } from "../support/serviceBusServer.ts"

const maxDeliveryCount = 3
let server: ServiceBusTestServer
let client: ServiceBusClient

beforeAll(async () => {
  server = await startServiceBusTestServer({ maxDeliveryCount })
  client = new ServiceBusClient(server.connectionString)
})
afterAll(async () => {
  await client.close()
  await server.close()
})

const text = (m: ServiceBusReceivedMessage) => Buffer.from(m.body as Uint8Array).toString()
const raw = { skipParsingBodyAsJson: true } as const

const send = async (queue: string, messages: ReadonlyArray<readonly [session: string, body: string]>) => {
  const sender = client.createSender(queue)
  await sender.sendMessages(messages.map(([sessionId, body]) => ({ sessionId, body: Buffer.from(body), messageId: `${sessionId}-${body}` })))
  await sender.close()
}

/** The SDK's error code of a rejected call. */
const codeOf = async (promise: Promise<unknown>) => {
  try {
    await promise
  } catch (e) {
    return isServiceBusError(e) ? e.code : `not a ServiceBusError: ${String(e)}`
  }
  return "no error"
}

describe("Service Bus test server (built from the SDK's protocol, not Azure), driven by the unmodified SDK", () => {
  test("sends batches with session ids and hands each session its messages in order, with sequence numbers and lock times", async () => {
    const queue = freshName("sb")
    await send(queue, [["a", "a1"], ["b", "b1"], ["a", "a2"]])
    await send(queue, [["a", "a3"], ["b", "b2"]])
    const seen = new Map<string, Array<string>>()
    for (let i = 0; i < 2; i++) {
      const receiver = await client.acceptNextSession(queue, raw)
      const got = await receiver.receiveMessages(10, { maxWaitTimeInMs: 1000 })
      seen.set(receiver.sessionId, got.map(text))
      const sequence = got.map((m) => Number(m.sequenceNumber))
      expect(sequence).toEqual([...sequence].sort((x, y) => x - y))
      expect(got.every((m) => m.deliveryCount === 0 && m.sessionId === receiver.sessionId)).toBe(true)
      expect(got.map((m) => m.messageId)).toEqual(got.map((m) => `${receiver.sessionId}-${text(m)}`))
      expect(receiver.sessionLockedUntilUtc!.getTime()).toBeGreaterThan(Date.now() + 50_000)
      expect(got[0]!.lockedUntilUtc!.getTime()).toBe(receiver.sessionLockedUntilUtc!.getTime())
      expect(Math.abs(got[0]!.enqueuedTimeUtc!.getTime() - Date.now())).toBeLessThan(10_000)
      for (const m of got) await receiver.completeMessage(m)
      await receiver.close()
    }
    expect(Object.fromEntries(seen)).toEqual({ a: ["a1", "a2", "a3"], b: ["b1", "b2"] })
    expect(server.depth(queue)).toEqual({ active: 0, deadLettered: 0 })
  }, 30_000)

  test("locks a session for one receiver: a second acceptSession gets SessionCannotBeLocked, acceptNextSession times out", async () => {
    const queue = freshName("sb")
    await send(queue, [["only", "1"]])
    const holder = await client.acceptSession(queue, "only", raw)
    expect(await codeOf(client.acceptSession(queue, "only", raw))).toBe("SessionCannotBeLocked")
    const impatient = new ServiceBusClient(server.connectionString, { retryOptions: { timeoutInMs: 1000, maxRetries: 0 } })
    const started = Date.now()
    const code = await codeOf(impatient.acceptNextSession(queue, raw))
    expect(["ServiceTimeout", "SessionCannotBeLocked"]).toContain(code)
    expect(Date.now() - started).toBeGreaterThanOrEqual(900)
    await impatient.close()
    await holder.close()
    const again = await client.acceptSession(queue, "only", raw)
    expect((await again.receiveMessages(1, { maxWaitTimeInMs: 1000 })).map(text)).toEqual(["1"])
    await again.close()
  }, 30_000)

  test("acceptNextSession long-polls: it gets a session whose first message is sent while it waits", async () => {
    const queue = freshName("sb")
    const accepting = client.acceptNextSession(queue, raw)
    await until("the accept pending", () => server.pendingAccepts(queue) === 1, 10_000, 10)
    await send(queue, [["late", "x"]])
    const receiver = await accepting
    expect(receiver.sessionId).toBe("late")
    expect((await receiver.receiveMessages(1, { maxWaitTimeInMs: 1000 })).map(text)).toEqual(["x"])
    await receiver.close()
  }, 30_000)

  test("abandon redelivers the message first with deliveryCount + 1; after the max delivery count it is dead-lettered with the reason", async () => {
    const queue = freshName("sb")
    await send(queue, [["s", "poison"], ["s", "next"]])
    const receiver = await client.acceptSession(queue, "s", raw)
    for (let count = 0; count < maxDeliveryCount; count++) {
      const [m] = await receiver.receiveMessages(1, { maxWaitTimeInMs: 1000 })
      expect([text(m!), m!.deliveryCount]).toEqual(["poison", count])
      await receiver.abandonMessage(m!)
    }
    const [next] = await receiver.receiveMessages(1, { maxWaitTimeInMs: 1000 })
    expect(text(next!)).toBe("next")
    await receiver.completeMessage(next!)
    await receiver.close()
    const dlq = client.createReceiver(queue, { subQueueType: "deadLetter", ...raw })
    const dead = await dlq.peekMessages(10)
    expect(dead.map((m) => [text(m), m.sessionId, m.deadLetterReason])).toEqual([["poison", "s", "MaxDeliveryCountExceeded"]])
    await dlq.close()
  }, 30_000)

  test("deadLetterMessage keeps the reason and description, readable from <queue>/$DeadLetterQueue", async () => {
    const queue = freshName("sb")
    await send(queue, [["s", "{bad"]])
    const receiver = await client.acceptSession(queue, "s", raw)
    const [m] = await receiver.receiveMessages(1, { maxWaitTimeInMs: 1000 })
    await receiver.deadLetterMessage(m!, { deadLetterReason: "MalformedBody", deadLetterErrorDescription: "Unexpected token b" })
    await receiver.close()
    const dlq = client.createReceiver(queue, { subQueueType: "deadLetter", ...raw })
    const [dead] = await dlq.peekMessages(1)
    expect([text(dead!), dead!.deadLetterReason, dead!.deadLetterErrorDescription]).toEqual(["{bad", "MalformedBody", "Unexpected token b"])
    await dlq.close()
    expect(server.depth(queue)).toEqual({ active: 0, deadLettered: 1 })
  }, 30_000)

  test("renewSessionLock moves the lock forward; session state round-trips through set/getSessionState", async () => {
    const queue = freshName("sb")
    await send(queue, [["s", "1"]])
    const receiver = await client.acceptSession(queue, "s", raw)
    const before = receiver.sessionLockedUntilUtc!.getTime()
    await Bun.sleep(20)
    const renewed = await receiver.renewSessionLock()
    expect(renewed.getTime()).toBeGreaterThan(before)
    expect(await receiver.getSessionState()).toBeUndefined()
    await receiver.setSessionState(Buffer.from("checkpoint-7"))
    await receiver.close()
    const again = await client.acceptSession(queue, "s", raw)
    expect(Buffer.from(await again.getSessionState()).toString()).toBe("checkpoint-7")
    await again.close()
  }, 30_000)

  test("peekMessages on a session receiver shows its messages without locking them", async () => {
    const queue = freshName("sb")
    await send(queue, [["s", "1"], ["s", "2"]])
    const receiver = await client.acceptSession(queue, "s", raw)
    expect((await receiver.peekMessages(5)).map(text)).toEqual(["1", "2"])
    expect((await receiver.receiveMessages(2, { maxWaitTimeInMs: 1000 })).map(text)).toEqual(["1", "2"])
    await receiver.close()
  }, 30_000)

  test("a lock the server expires detaches the receiver with SessionLockLost; its message goes to the next acceptor, not settled twice", async () => {
    const queue = freshName("sb")
    await send(queue, [["s", "1"]])
    const receiver = await client.acceptSession(queue, "s", raw)
    const [m] = await receiver.receiveMessages(1, { maxWaitTimeInMs: 1000 })
    expect(server.expireSessionLock(queue, "s")).toBe(true)
    // A settlement sent while the detach is on its way is answered after the SDK dropped the
    // link, and the SDK then waits out its operation timeout: wait for the detach to arrive.
    await until("the receiver closed", () => receiver.isClosed, 10_000, 10)
    expect(await codeOf(receiver.completeMessage(m!))).toBe("SessionLockLost")
    const next = await client.acceptNextSession(queue, raw)
    const [again] = await next.receiveMessages(1, { maxWaitTimeInMs: 1000 })
    expect([text(again!), again!.deliveryCount]).toEqual(["1", 1])
    await next.completeMessage(again!)
    await next.close()
    await receiver.close()
    expect(server.depth(queue)).toEqual({ active: 0, deadLettered: 0 })
  }, 30_000)

  test("a lock that runs out on the server's clock detaches the receiver; the next acceptor gets the message", async () => {
    const short = await startServiceBusTestServer({ lockDurationMs: 300 })
    const own = new ServiceBusClient(short.connectionString)
    const queue = freshName("sb")
    const sender = own.createSender(queue)
    await sender.sendMessages({ sessionId: "s", body: Buffer.from("1") })
    const receiver = await own.acceptSession(queue, "s", { ...raw, maxAutoLockRenewalDurationInMs: 0 })
    const [m] = await receiver.receiveMessages(1, { maxWaitTimeInMs: 1000 })
    await until("the receiver closed", () => receiver.isClosed, 10_000, 10)
    expect(await codeOf(receiver.completeMessage(m!))).toBe("SessionLockLost")
    const next = await own.acceptNextSession(queue, raw)
    const [again] = await next.receiveMessages(1, { maxWaitTimeInMs: 1000 })
    expect([text(again!), again!.deliveryCount]).toEqual(["1", 1])
    await next.completeMessage(again!)
    await own.close()
    await short.close()
  }, 30_000)

  test("the administration client reads active and dead-lettered counts from the runtime properties", async () => {
    const queue = freshName("sb")
    await send(queue, [["a", "1"], ["a", "2"], ["b", "1"]])
    const receiver = await client.acceptSession(queue, "a", raw)
    const [m] = await receiver.receiveMessages(1, { maxWaitTimeInMs: 1000 })
    await receiver.deadLetterMessage(m!, { deadLetterReason: "test", deadLetterErrorDescription: "for the count" })
    await receiver.close()
    const admin = testServerAdministrationClient(server)
    const properties = await admin.getQueueRuntimeProperties(queue)
    expect([properties.name, properties.activeMessageCount, properties.deadLetterMessageCount, properties.totalMessageCount]).toEqual([queue, 2, 1, 3])
  }, 30_000)

  test("a dropped connection releases the sessions it held, and the SDK reconnects for the next call", async () => {
    // A server of its own, so the drop cuts no connection the other cases use.
    const dropping = await startServiceBusTestServer()
    const queue = freshName("sb")
    const own = new ServiceBusClient(dropping.connectionString)
    const sender = own.createSender(queue)
    await sender.sendMessages({ sessionId: "s", body: Buffer.from("1") })
    const receiver = await own.acceptSession(queue, "s", raw)
    expect(dropping.lockedSessions(queue)).toEqual(["s"])
    dropping.dropConnections()
    await until("no session locked", () => dropping.lockedSessions(queue).length === 0, 10_000, 10)
    await sender.sendMessages({ sessionId: "s", body: Buffer.from("2") })
    const next = await own.acceptSession(queue, "s", raw)
    const got = await next.receiveMessages(2, { maxWaitTimeInMs: 1000 })
    expect(got.map((m) => [text(m), m.deliveryCount])).toEqual([["1", 0], ["2", 0]])
    await next.close()
    await receiver.close().catch(() => undefined)
    await own.close()
    await dropping.close()
  }, 30_000)
})
