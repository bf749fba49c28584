import { describe, expect, test } from "bun:test"
import * as Config from "effect/Config"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Broker from "../../layers/broker.ts"
import { load, providerFrom } from "../../src/runtime/config.ts"
import { declare, publish, subscribe, takeWithin } from "../support/broker.ts"

const choose = (env: Record<string, string>, config: Config.Config<Broker.Options>) =>
  Effect.runPromise(
    load(config).pipe(Effect.provideService(ConfigProvider.ConfigProvider, providerFrom([], env)), Effect.result)
  )

const chosen = async (env: Record<string, string>, config = Broker.config) => {
  const result = await choose(env, config)
  if (result._tag === "Failure") throw new Error(`expected a choice, got: ${result.failure.message}`)
  return result.success
}

const refused = async (env: Record<string, string>, config = Broker.config) => {
  const result = await choose(env, config)
  if (result._tag === "Success") throw new Error(`expected a config error, got ${JSON.stringify(result.success)}`)
  return result.failure
}

describe("BROKER", () => {
  test("unset, the toolkit's default is the memory broker", async () => {
    expect(await chosen({})).toEqual({ kind: "memory", options: {} })
  })

  test("unset, a program's own default wins, with that backend's defaults", async () => {
    const choice = await chosen({}, Broker.configWithDefault("rabbitmq"))
    expect(choice.kind).toBe("rabbitmq")
    if (choice.kind !== "rabbitmq") return
    expect(Redacted.isRedacted(choice.options.url)).toBe(true)
    expect(Redacted.value(choice.options.url as Redacted.Redacted<string>)).toBe("amqp://guest:guest@localhost:5672")
  })

  test("set, it overrides the program's default, in any case, and reads the chosen backend's variables", async () => {
    const choice = await chosen({ BROKER: "Kafka", KAFKA_BROKERS: "k1:9092, k2:9092", KAFKA_TIMEOUT: "5s" }, Broker.configWithDefault("rabbitmq"))
    expect(choice.kind).toBe("kafka")
    if (choice.kind !== "kafka") return
    expect(choice.options.brokers).toEqual(["k1:9092", "k2:9092"])
    expect(Duration.toMillis(Duration.fromInputUnsafe(choice.options.publishTimeout ?? 0))).toBe(5_000)
  })

  test("a broker the toolkit does not have stops the program naming BROKER and the choices", async () => {
    const error = await refused({ BROKER: "nats" })
    expect(error.variable).toBe("BROKER")
    expect(error.message).toContain("memory, rabbitmq, kafka")
    expect(error.message).toContain(`"nats"`)
  })

  test("only the chosen backend's variables are read: a bad RABBITMQ_URL stops a RabbitMQ program, not a Kafka one", async () => {
    const env = { RABBITMQ_URL: "http://guest:s3cret@host" }
    const error = await refused({ ...env, BROKER: "rabbitmq" })
    expect(error.variable).toBe("RABBITMQ_URL")
    expect(error.message).not.toContain("s3cret")
    expect((await chosen({ ...env, BROKER: "kafka" })).kind).toBe("kafka")
  })

  test("a Kafka timeout of zero stops the program naming the variable, as an empty broker list does", async () => {
    expect((await refused({ BROKER: "kafka", KAFKA_TIMEOUT: "0s" })).variable).toBe("KAFKA_TIMEOUT")
    expect((await refused({ BROKER: "kafka", KAFKA_BROKERS: " , " })).variable).toBe("KAFKA_BROKERS")
  })

  test("KAFKA_REQUIRED_ACKS of the original is accepted (all by default), and a value Kafka does not have names the variable", async () => {
    const ofAcks = async (env: Record<string, string>) => {
      const choice = await chosen({ BROKER: "kafka", ...env })
      return choice.kind === "kafka" ? choice.options.requiredAcks : undefined
    }
    expect(await ofAcks({})).toBe("all")
    expect(await ofAcks({ KAFKA_REQUIRED_ACKS: "1" })).toBe("1")
    expect(await ofAcks({ KAFKA_REQUIRED_ACKS: "ALL" })).toBe("all")
    const error = await refused({ BROKER: "kafka", KAFKA_REQUIRED_ACKS: "2" })
    expect(error.variable).toBe("KAFKA_REQUIRED_ACKS")
    expect(error.message).toContain(`"2"`)
  })

  test("the memory publisher-only and subscriber-only layers of one build share one broker", () =>
    Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const sub = { topic: "orders", group: "billing" }
      yield* declare(sub)
      const consumer = yield* subscribe(sub)
      yield* publish(sub.topic, [{ id: "m-1", key: "k", body: "x" }])
      // The memory broker hands a published message to a consumer before `publish` returns.
      const got = yield* takeWithin(consumer, 1_000)
      expect(Option.map(got, (d) => d.message.id)).toEqual(Option.some("m-1"))
    })).pipe(Effect.provide(Layer.mergeAll(
      Broker.publisherLayer({ kind: "memory", options: {} }),
      Broker.subscriberLayer({ kind: "memory", options: {} })
    )))))
})
