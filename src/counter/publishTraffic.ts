/**
 * Declares the counter's exchange, queue and binding, then publishes generated traffic in
 * confirmed batches, reporting progress on long runs.
 */
import * as Effect from "effect/Effect"
import { Publisher } from "../capabilities/Publisher.ts"
import { Subscriber } from "../capabilities/Subscriber.ts"
import { bindingPattern } from "./events.ts"
import { generate, type Generated, type GeneratorOptions } from "./generator.ts"

export interface Destination {
  readonly exchange: string
  readonly queue: string
}

const batchSize = 1000

export const publishTraffic = (destination: Destination, traffic: Partial<GeneratorOptions>) =>
  Effect.gen(function*() {
    const run: Generated = generate(traffic)
    yield* Subscriber.use((s) => s.declare({ topic: destination.exchange, group: destination.queue, filter: bindingPattern }))
    const publisher = yield* Publisher
    const total = run.messages.length
    for (let from = 0; from < total; from += batchSize) {
      yield* publisher.publish(destination.exchange, run.messages.slice(from, from + batchSize))
      const sent = Math.min(from + batchSize, total)
      if (total > 10 * batchSize && (sent / batchSize) % 10 === 0) yield* Effect.logInfo(`published ${sent}/${total}`)
    }
    yield* Effect.logInfo(
      `published ${total} messages to ${destination.exchange}: ${run.unique} unique, ${run.duplicates} duplicates, ${run.malformed} malformed`
    )
    return run
  })
