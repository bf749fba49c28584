/**
 * The sales balancer (SPEC §5): consumes REQUEST_QUEUE [sales_requests] and forwards each request
 * to the healthy worker with the fewest outstanding requests (round-robin on ties). Workers come
 * from WORKER_QUEUES [mom-worker-1,mom-worker-2,mom-worker-3] and from their heartbeats; replies
 * come back through REPLY_QUEUE [sales_balancer_replies] and are relayed to the client, so
 * outstanding counts fall on real replies. A worker whose heartbeats stop is taken out and its
 * unanswered requests re-sent. Broker: BROKER [rabbitmq], RABBITMQ_URL; RABBITMQ_DIRECT_DELIVERY
 * [persistent], or transient to keep the requests and replies it forwards off the disk.
 *
 *   bun run programs/sales-balancer.ts
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Broker from "../layers/broker.ts"
import { asWorker, baseLayer, loadBaseConfig } from "../layers/platform/program.ts"
import { runMain } from "../layers/platform/runMain.ts"
import { load } from "../src/runtime/config.ts"
import { Balancer } from "../src/sales/balancer.ts"
import { balancerConfig } from "../src/sales/balancerConfig.ts"
import { runRelay } from "../src/sales/relay.ts"

const program = Effect.gen(function*() {
  const base = yield* loadBaseConfig("sales-balancer")
  const config = yield* load(balancerConfig)
  const broker = yield* load(Broker.configWithDefault("rabbitmq"))
  const balancer = new Balancer(config.workerQueues, { missedBeats: config.missedBeats })
  const run = Effect.gen(function*() {
    yield* Effect.log(`sales balancer: ${config.requestQueue} → ${config.workerQueues.join(", ")} (replies via ${config.replyQueue})`)
    return yield* runRelay(balancer, {
      requestQueue: config.requestQueue,
      replyQueue: config.replyQueue,
      heartbeatTopic: config.heartbeatTopic,
      heartbeatQueue: `${config.balancerId}.heartbeats`,
      prefetch: config.prefetch,
      tick: config.tick,
      statsEvery: config.statsEvery,
      consumerCheck: config.consumerCheck
    })
  })
  yield* asWorker(run).pipe(Effect.provide(Broker.layer(broker).pipe(Layer.provideMerge(baseLayer(base)))))
})

runMain(program, { name: "sales-balancer" })
