/**
 * Sends SESSION_COUNT [100] sessions × MESSAGES_PER_SESSION [10] messages to the session queue
 * SERVICEBUS_QUEUE_NAME [session-queue] in batches of SEND_BATCH_SIZE [100], logging progress,
 * then prints what it sent as JSON. Backend: SESSION_BACKEND, by default Service Bus when
 * SERVICEBUS_CONNECTION_STRING is set, else PostgreSQL when DATABASE_URL is set, else memory.
 *
 *   bun run programs/session-sender.ts [--session-count 100] [--messages-per-session 10]
 */
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as SessionQueueLayer from "../layers/sessionQueue.ts"
import { runMain } from "../layers/platform/runMain.ts"
import { load } from "../src/runtime/config.ts"
import { senderConfig } from "../src/sessions/config.ts"
import { sendAll } from "../src/sessions/sender.ts"

const program = Effect.gen(function*() {
  const config = yield* load(senderConfig)
  const backend = yield* load(SessionQueueLayer.config)
  if (backend.kind === "memory") yield* Effect.logWarning("SESSION_BACKEND is memory: the messages live in this process only and go with it")
  const summary = yield* sendAll(config).pipe(Effect.provide(SessionQueueLayer.layer(backend)))
  yield* Console.log(JSON.stringify({ backend: backend.kind, ...summary }))
})

runMain(program, { name: "session-sender" })
