/**
 * The counter demonstration: generate traffic, count it, compare with what the generator knows.
 */
import * as Effect from "effect/Effect"
import { deadLetterTopic, Subscriber } from "../capabilities/Subscriber.ts"
import { type CounterConfig, runCounter } from "./counter.ts"
import { CounterStore } from "./CounterStore.ts"
import { sameCounts, totals } from "./events.ts"
import type { GeneratorOptions } from "./generator.ts"
import { publishTraffic } from "./publishTraffic.ts"

export const counterDemo = (config: CounterConfig, traffic: Partial<GeneratorOptions>) =>
  Effect.gen(function*() {
    const run = yield* publishTraffic(config, traffic)
    const subscriber = yield* Subscriber
    yield* runCounter(config)
    const counts = yield* CounterStore.use((s) => s.snapshot)
    const deadLettered = yield* Effect.scoped(Effect.gen(function*() {
      const dlq = yield* subscriber.subscribe({ topic: deadLetterTopic(config.queue), group: deadLetterTopic(config.queue) })
      let n = 0
      while (n < run.malformed) {
        const delivery = yield* dlq.take
        yield* delivery.ack
        n++
      }
      return n
    }))
    const matches = sameCounts(counts, run.expected)
    return { counts, expected: run.expected, deadLettered, matches, totals: totals(counts) }
  })
