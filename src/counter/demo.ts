/**
 * The counter demonstration: generate traffic, count it, compare with what the generator knows.
 */
import { Effect } from "effect"
import { Publisher } from "../capabilities/Publisher.ts"
import { deadLetterTopic, Subscriber } from "../capabilities/Subscriber.ts"
import { type CounterConfig, runCounter } from "./counter.ts"
import { CounterStore } from "./CounterStore.ts"
import { bindingPattern, eventTypes, sameCounts } from "./events.ts"
import { generate, type GeneratorOptions } from "./generator.ts"

export const counterDemo = (config: CounterConfig, traffic: Partial<GeneratorOptions>) =>
  Effect.gen(function*() {
    const run = generate(traffic)
    const subscriber = yield* Subscriber
    const subscription = { topic: config.exchange, group: config.queue, filter: bindingPattern }
    yield* subscriber.declare(subscription)
    yield* Publisher.use((p) => p.publish(config.exchange, run.messages))
    yield* Effect.logInfo(
      `published ${run.messages.length} messages: ${run.unique} unique, ${run.duplicates} duplicates, ${run.malformed} malformed`
    )
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

const totals = (counts: Record<string, Record<string, number>>) =>
  Object.fromEntries(eventTypes.map((t) => [t, Object.values(counts[t] ?? {}).reduce((a, b) => a + b, 0)]))
