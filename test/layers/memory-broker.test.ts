import * as MemoryBroker from "../../layers/memory/broker.ts"
import { brokerContract } from "../contract/broker.ts"

brokerContract("memory", () => MemoryBroker.layer, { prefetch: true, countsAbandonedAttempts: true })
