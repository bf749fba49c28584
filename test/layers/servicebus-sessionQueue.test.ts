/**
 * The session queue contract on the Service Bus backend: against the Service Bus test server
 * (built from the SDK's protocol, not Azure) always, and against a real namespace when
 * `SERVICEBUS_CONNECTION_STRING` is set (its queues are created per case, with a short lock
 * duration so a lock can be lost by waiting; the official emulator has no administration API, so
 * this part needs a namespace).
 */
import { afterAll, beforeAll } from "bun:test"
import { ServiceBusAdministrationClient, ServiceBusClient } from "@azure/service-bus"
import * as Effect from "effect/Effect"
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
