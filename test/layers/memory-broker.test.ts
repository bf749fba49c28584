import * as MemoryBroker from "../../layers/memory/broker.ts"
import { brokerContract } from "../contract/broker.ts"

// retryKeepsKeyOrder: like RabbitMQ, a retry goes to the tail of the group's queue.
brokerContract("memory", () => MemoryBroker.layer, { prefetch: true, countsAbandonedAttempts: true, retryKeepsKeyOrder: false })
