/**
 * The session queue contract on the Service Bus backend, against the Service Bus test server
 * (built from the SDK's protocol, not Azure).
 */
import { afterAll, beforeAll } from "bun:test"
import { ServiceBusClient } from "@azure/service-bus"
import * as Effect from "effect/Effect"
import * as ServiceBusSessionQueue from "../../layers/servicebus/sessionQueue.ts"
import { sessionQueueContract } from "../contract/sessionQueue.ts"
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
