/**
 * Test traffic for the event counter: declares the exchange and the queue, publishes COUNT [100]
 * events over USERS [5] users and the three types, with duplicates (DUPLICATE_RATIO [0.1]) and
 * MALFORMED [0] malformed messages, then prints the counts a correct counter ends with as JSON
 * (and writes them to EXPECTED_FILE when set). On RabbitMQ unless BROKER says otherwise.
 *
 *   bun run programs/event-generator.ts [--count 100] [--malformed 5] [--expected-file expected.json]
 */
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as Config from "effect/Config"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as FileSystem from "effect/FileSystem"
import * as Option from "effect/Option"
import * as Broker from "../layers/broker.ts"
import { counterConfig, trafficConfig } from "../src/counter/config.ts"
import { publishTraffic } from "../src/counter/publishTraffic.ts"
import { load } from "../src/runtime/config.ts"
import { runMain } from "../layers/platform/runMain.ts"

const program = Effect.gen(function*() {
  const destination = yield* load(counterConfig())
  const traffic = yield* load(trafficConfig())
  const expectedFile = yield* load(Config.option(Config.String("EXPECTED_FILE")))
  const broker = yield* load(Broker.configWithDefault("rabbitmq"))
  const run = yield* publishTraffic(destination, traffic).pipe(Effect.provide(Broker.layer(broker)))
  const expected = JSON.stringify(run.expected, null, 2)
  if (Option.isSome(expectedFile)) yield* FileSystem.FileSystem.use((fs) => fs.writeFileString(expectedFile.value, expected + "\n"))
  yield* Console.log(expected)
}).pipe(Effect.provide(NodeFileSystem.layer))

runMain(program, { name: "event-generator" })
