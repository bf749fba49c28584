import * as Effect from "effect/Effect"
import * as MemoryStore from "../../layers/memory/schedulerStore.ts"
import { schedulerStoreContract } from "../contract/schedulerStore.ts"

// One store per case; its clients are the one store, raced by concurrent fibers.
schedulerStoreContract("memory", Effect.map(MemoryStore.make, (store) => () => Effect.succeed(store)))
