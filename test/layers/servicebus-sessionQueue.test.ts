/**
 * The session queue contract on the Service Bus backend: against the Service Bus test server
 * (built from the SDK's protocol, not Azure) always, and against a real namespace when
 * `SERVICEBUS_CONNECTION_STRING` is set (its queues are created per case, with a short lock
 * duration so a lock can be lost by waiting; the official emulator has no administration API, so
 * this part needs a namespace).
 */
import { afterAll, beforeAll, expect, test } from "bun:test"
import { ServiceBusAdministrationClient, ServiceBusClient } from "@azure/service-bus"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { bodyText } from "../../src/capabilities/Message.ts"
import { SessionQueue } from "../../src/capabilities/SessionQueue.ts"
import * as ServiceBusSessionQueue from "../../layers/servicebus/sessionQueue.ts"
import { sessionQueueContract } from "../contract/sessionQueue.ts"
import { freshName } from "../support/servers.ts"
import { type ServiceBusTestServer, startServiceBusTestServer, testServerAdministrationClient } from "../support/serviceBusServer.ts"

const maxDeliveryCount = 3
let server: ServiceBusTestServer

beforeAll(async () => {
  server = await startServiceBusTestServer({ maxDeliveryCount })
})
afterAll(() => server.close())

sessionQueueContract(
  "Service Bus test server (built from the SDK's protocol, not Azure)",
  () =>
    ServiceBusSessionQueue.layer({
      makeClient: (options) => new ServiceBusClient(server.connectionString, options),
      administrationClient: testServerAdministrationClient(server)
    }),
  {
    maxDeliveryCount,
    loseLock: (queue, sessionId) => Effect.sync(() => server.expireSessionLock(queue, sessionId))
  }
)

test("Service Bus backend: a dropped connection loses the sessions it held; the next calls reconnect and get their messages again", () =>
  Effect.runPromise(Effect.scoped(Effect.gen(function*() {
    const q = yield* SessionQueue
    const queue = freshName("sq")
    yield* q.send(queue, [{ key: "s", body: "1" }, { key: "s", body: "2" }])
    const held = yield* q.accept(queue, "s")
    expect((yield* held.receive(1, "2 seconds")).map((m) => bodyText(m.message))).toEqual(["1"])
    server.dropConnections()
    const lost = yield* Effect.flip(held.receive(1, "2 seconds"))
    expect(lost._tag).toBe("SessionLockLostError")
    yield* q.send(queue, [{ key: "s", body: "3" }])
    const next = Option.getOrThrow(yield* q.acceptNext(queue, { timeout: "5 seconds" }))
    const got = yield* next.receive(3, "2 seconds")
    expect(got.map((m) => [bodyText(m.message), m.attempt])).toEqual([["1", 2], ["2", 1], ["3", 1]])
  })).pipe(Effect.provide(ServiceBusSessionQueue.layer({
    makeClient: (options) => new ServiceBusClient(server.connectionString, options),
    administrationClient: testServerAdministrationClient(server)
  })))), 30_000)

const namespace = process.env.SERVICEBUS_CONNECTION_STRING
if (namespace !== undefined && namespace !== "") {
  const admin = new ServiceBusAdministrationClient(namespace)
  const lockSeconds = 5
  const created: Array<string> = []
  afterAll(async () => {
    await Promise.allSettled(created.splice(0).map((queue) => admin.deleteQueue(queue)))
  })
  sessionQueueContract(
    "Service Bus namespace (SERVICEBUS_CONNECTION_STRING)",
    // No automatic renewal: the lock-loss case waits for the lock to run out.
    () => ServiceBusSessionQueue.layer({ connectionString: namespace, autoRenewLockFor: 0 }),
    {
      maxDeliveryCount,
      freshQueue: async () => {
        const queue = freshName("sq")
        await admin.createQueue(queue, { requiresSession: true, maxDeliveryCount, lockDuration: `PT${lockSeconds}S` })
        created.push(queue)
        return queue
      },
      loseLock: () => Effect.sleep(`${lockSeconds + 1} seconds`),
      timeout: 120_000
    }
  )
}
