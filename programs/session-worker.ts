/**
 * The session worker (SPEC §1): WORKER_COUNT [100] sessions at once from the session queue
 * SERVICEBUS_QUEUE_NAME [session-queue], each in order; see src/sessions/worker.ts for the loop
 * and src/sessions/config.ts for every variable (RECEIVE_TIMEOUT [20s], RETRY_DELAY [5s],
 * IDLE_THRESHOLD [3], MAX_DELIVERY [10], CIRCUIT_*). The example handler checks each session's
 * order and calls a downstream that takes HANDLER_DELAY [0s] per message, behind the breaker.
 * Backend: SESSION_BACKEND (see layers/sessionQueue.ts). /readyz: the queue answered the last
 * accept and the breaker is not open; /metrics: the session_* metrics.
 *
 *   bun run programs/session-worker.ts [--worker-count 20]
 */
import * as Config from "effect/Config"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as SessionQueueLayer from "../layers/sessionQueue.ts"
import { baseLayer, loadBaseConfig, withReadiness } from "../layers/platform/program.ts"
import { runMain } from "../layers/platform/runMain.ts"
import { CircuitBreaker } from "../src/resilience/circuitBreaker.ts"
import { duration, load } from "../src/runtime/config.ts"
import { workerConfig } from "../src/sessions/config.ts"
import { orderedHandler } from "../src/sessions/orderedHandler.ts"
import { makeWorker } from "../src/sessions/worker.ts"

const program = Effect.gen(function*() {
  const base = yield* loadBaseConfig("session-worker")
  const config = yield* load(workerConfig)
  const backend = yield* load(SessionQueueLayer.config)
  const delay = yield* load(duration("HANDLER_DELAY").pipe(Config.withDefault(Duration.zero)))
  const breaker = yield* CircuitBreaker.make({ name: "session-downstream", ...config.breaker })
  const downstream = () => Duration.isZero(delay) ? Effect.void : Effect.sleep(delay)
  const worker = yield* makeWorker({ config, handler: orderedHandler({ downstream, breaker }), breaker })
  const checks = {
    "session-queue": worker.healthy,
    breaker: Effect.map(breaker.state, (state) => state !== "open")
  }
  yield* withReadiness(worker.run, checks).pipe(
    Effect.provide(SessionQueueLayer.layer(backend, { maxDeliveryCount: config.maxDelivery }).pipe(Layer.provideMerge(baseLayer(base))))
  )
})

runMain(program, { name: "session-worker" })
