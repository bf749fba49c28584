/**
 * Small Effect helpers the broker tests share: declare, subscribe, publish, and taking a known
 * number of deliveries (or asserting that none more arrives).
 */
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { Publisher } from "../../src/capabilities/Publisher.ts"
import { type Consumer, type Delivery, Subscriber, type Subscription } from "../../src/capabilities/Subscriber.ts"

export const declare = (sub: Subscription) => Subscriber.use((s) => s.declare(sub))
export const subscribe = (sub: Subscription) => Subscriber.use((s) => s.subscribe(sub))
export const publish = (topic: string, messages: Parameters<Publisher["Service"]["publish"]>[1]) =>
  Publisher.use((p) => p.publish(topic, messages))

/** Exactly `n` deliveries, or a defect naming the shortfall after 20 s. */
export const takeN = (consumer: Consumer, n: number) =>
  Effect.forEach(Array.from({ length: n }), () => consumer.take).pipe(
    Effect.timeoutOrElse({ duration: "20 seconds", orElse: () => Effect.die(new Error(`timed out waiting for ${n} deliveries`)) })
  )

/** Some delivery within `millis`, or none: used only to assert that nothing more arrives. */
export const takeWithin = (consumer: Consumer, millis: number): Effect.Effect<Option.Option<Delivery>> =>
  consumer.take.pipe(Effect.timeoutOption(millis), Effect.orElseSucceed(() => Option.none()))
