import { afterAll, describe, expect, test } from "bun:test"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as RabbitMq from "../../layers/rabbitmq/index.ts"
import { Publisher } from "../../src/capabilities/Publisher.ts"
import { Subscriber } from "../../src/capabilities/Subscriber.ts"
import { deleteRabbitmqTopology } from "../support/rabbitmq.ts"
import { brokerContract } from "../contract/broker.ts"
import { freshName, probeRabbitmq, rabbitmqUrl, requireServer } from "../support/servers.ts"

const url = rabbitmqUrl()

if (await requireServer("RabbitMQ", probeRabbitmq(url))) {
  // countsAbandonedAttempts: the broker's `redelivered` flag makes an abandoned delivery's next
  // attempt 2; a classic queue cannot count further than that.
  // retryKeepsKeyOrder: a retry is a copy republished to the tail of the group's queue.
  brokerContract("rabbitmq", () => RabbitMq.layer({ url }), { prefetch: true, countsAbandonedAttempts: true, retryKeepsKeyOrder: false }, {
    cleanup: (created) => deleteRabbitmqTopology(url, created)
  })

  describe("rabbitmq acks", () => {
    const created: Array<{ topic: string; group: string }> = []
    afterAll(() => deleteRabbitmqTopology(url, created))
    test("acks behind a delivery still being handled free prefetch credit: the consumer never stalls", () =>
      Effect.runPromise(Effect.scoped(Effect.gen(function*() {
        const group = freshName("acks")
        const sub = { topic: `${group}.topic`, group, prefetch: 4 }
        created.push(sub)
        yield* Subscriber.use((s) => s.declare(sub))
        const messages = Array.from({ length: 20 }, (_, i) => ({ id: `m-${i}`, key: "k", body: String(i) }))
        yield* Publisher.use((p) => p.publish(sub.topic, messages))
        const consumer = yield* Subscriber.use((s) => s.subscribe(sub))
        const slow = yield* consumer.take
        // The first delivery stays unsettled throughout; a multiple-ack could never pass it.
        for (let i = 1; i < 20; i++) {
          const next = yield* consumer.take.pipe(Effect.timeoutOption("5 seconds"))
          expect(Option.isSome(next)).toBe(true)
          if (Option.isSome(next)) yield* next.value.ack
        }
        yield* slow.ack
      })).pipe(Effect.provide(RabbitMq.layer({ url })))), 30_000)
  })
}
