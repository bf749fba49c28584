/**
 * The main demonstration, on embedded defaults (no servers): the event generator and the event
 * counter in one process on the in-memory broker. Prints the counts and whether they match.
 *
 *   bun run programs/demo.ts [--count 1000] [--malformed 10] [--duplicate-ratio 0.1] [--output-dir out/demo]
 */
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as NodePath from "@effect/platform-node/NodePath"
import * as Console from "effect/Console"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as MemoryBroker from "../layers/memory/broker.ts"
import { counterConfig, trafficConfig } from "../src/counter/config.ts"
import { CounterStore } from "../src/counter/CounterStore.ts"
import { counterDemo } from "../src/counter/demo.ts"
import { sortedByUser } from "../src/counter/events.ts"
import { load } from "../src/runtime/config.ts"
import { defaultGeneratorOptions } from "../src/counter/generator.ts"
import { runMain } from "../layers/platform/runMain.ts"

const program = Effect.gen(function*() {
  const config = yield* load(counterConfig({ outputDir: "out/demo", idleTimeout: Duration.seconds(1) }))
  const traffic = yield* load(trafficConfig({ ...defaultGeneratorOptions, count: 1000, malformed: 10 }))
  // The in-process broker forgets its messages: an interrupted demo's partial files cannot be finished.
  const result = yield* counterDemo({ ...config, carryOver: "none" }, traffic)
  yield* Console.log(`\nEvent counter on the in-memory broker (files in ${config.outputDir}/)`)
  yield* Console.table(Object.fromEntries(Object.entries(result.counts).map(([type, byUser]) => [type, sortedByUser(byUser)])))
  yield* Console.log(`totals: ${JSON.stringify(result.totals)}; dead-lettered: ${result.deadLettered}`)
  yield* Console.log(result.matches ? "counts match the generator's expectation" : "COUNTS DIFFER from the generator's expectation")
  if (!result.matches) return yield* Effect.die(new Error("the counter's result differs from the expected counts"))
}).pipe(Effect.provide(Layer.mergeAll(MemoryBroker.layer, CounterStore.memory, NodeFileSystem.layer, NodePath.layer)))

runMain(program, { name: "demo" })
