/**
 * The main demonstration, on embedded defaults (no servers): the event generator and the event
 * counter in one process on the in-memory broker. Prints the counts and whether they match.
 *
 *   bun run programs/demo.ts [--demo-messages 1000] [--demo-malformed 10] [--output-dir out/demo]
 */
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as NodePath from "@effect/platform-node/NodePath"
import { Config, Console, Duration, Effect, Layer } from "effect"
import * as MemoryBroker from "../layers/memory/broker.ts"
import { counterConfig } from "../src/counter/config.ts"
import { CounterStore } from "../src/counter/CounterStore.ts"
import { counterDemo } from "../src/counter/demo.ts"
import { load, positiveInt } from "../src/runtime/config.ts"
import { runMain } from "../src/runtime/runMain.ts"

const program = Effect.gen(function*() {
  const config = yield* load(counterConfig({ outputDir: "out/demo", idleTimeout: Duration.seconds(1) }))
  const count = yield* load(positiveInt("DEMO_MESSAGES").pipe(Config.withDefault(1000)))
  const malformed = yield* load(Config.Int("DEMO_MALFORMED").pipe(Config.withDefault(10)))
  const result = yield* counterDemo(config, { count, malformed })
  yield* Console.log(`\nEvent counter on the in-memory broker (files in ${config.outputDir}/)`)
  yield* Console.table(result.counts)
  yield* Console.log(`totals: ${JSON.stringify(result.totals)}; dead-lettered: ${result.deadLettered}`)
  yield* Console.log(result.matches ? "counts match the generator's expectation" : "COUNTS DIFFER from the generator's expectation")
  if (!result.matches) return yield* Effect.die(new Error("the counter's result differs from the expected counts"))
}).pipe(Effect.provide(Layer.mergeAll(MemoryBroker.layer, CounterStore.memory, NodeFileSystem.layer, NodePath.layer)))

runMain(program, { name: "demo" })
