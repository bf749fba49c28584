/**
 * layers/sessionQueue.ts: which session queue backend a configuration picks (SPEC §1's default
 * rule), what a bad value says, and that the chosen layer is the backend named.
 */
import { afterAll, describe, expect, test } from "bun:test"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as SessionQueueLayer from "../../layers/sessionQueue.ts"
import { bodyText } from "../../src/capabilities/Message.ts"
import { SessionQueue } from "../../src/capabilities/SessionQueue.ts"
import { load, providerFrom } from "../../src/runtime/config.ts"
import { startServiceBusTestServer } from "../support/serviceBusServer.ts"
import { dropPostgresSchema, freshName, freshSchema, postgresUrl, probePostgres, requireServer } from "../support/servers.ts"

const withEnv = (env: Record<string, string>) => Effect.provideService(ConfigProvider.ConfigProvider, providerFrom([], env))
const choose = (env: Record<string, string>) => Effect.runPromise(Effect.result(load(SessionQueueLayer.config)).pipe(withEnv(env)))
const kindOf = async (env: Record<string, string>) => {
  const chosen = await choose(env)
  if (chosen._tag === "Failure") throw new Error(chosen.failure.message)
  return chosen.success.kind
}
const failureOf = async (env: Record<string, string>) => {
  const chosen = await choose(env)
  if (chosen._tag === "Success") throw new Error(`expected a failure, got ${chosen.success.kind}`)
  return chosen.failure
}

const sb = "Endpoint=sb://localhost:5300/;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=k;UseDevelopmentEmulator=true"

describe("session queue backend from configuration", () => {
  test("unset SESSION_BACKEND: servicebus with a connection string, else postgres with DATABASE_URL, else memory", async () => {
    expect(await kindOf({})).toBe("memory")
    expect(await kindOf({ DATABASE_URL: "postgres://u@h/db" })).toBe("postgres")
    expect(await kindOf({ DATABASE_URL: "postgres://u@h/db", SERVICEBUS_CONNECTION_STRING: sb })).toBe("servicebus")
    // Empty lines of a .env count as unset.
    expect(await kindOf({ DATABASE_URL: "", SERVICEBUS_CONNECTION_STRING: " " })).toBe("memory")
  })

  test("SESSION_BACKEND wins over the default, in any case, and the backend reads only its own variables", async () => {
    const memory = await choose({ SESSION_BACKEND: "MEMORY", SERVICEBUS_CONNECTION_STRING: sb, SESSION_LOCK_DURATION: "30s" })
    expect(memory._tag === "Success" && memory.success).toEqual({ kind: "memory", lockDuration: Duration.seconds(30) })
    const postgres = await choose({ SESSION_BACKEND: "postgres", DATABASE_URL: "postgres://u@h:6543/db", SERVICEBUS_CONNECTION_STRING: "nonsense" })
    expect(postgres._tag === "Success" && postgres.success).toEqual({
      kind: "postgres",
      database: { url: "postgres://u@h:6543/db", max: 25, maxLifetime: Duration.minutes(5) },
      lockDuration: Duration.seconds(60)
    })
    const serviceBus = await choose({ SESSION_BACKEND: "servicebus", SERVICEBUS_CONNECTION_STRING: sb, DATABASE_URL: "mysql://x" })
    expect(serviceBus._tag === "Success" && serviceBus.success.kind === "servicebus" && Redacted.value(serviceBus.success.connectionString))
      .toBe(sb)
  })

  test("a bad value names its variable", async () => {
    expect((await failureOf({ SESSION_BACKEND: "kafka" })).message).toBe(
      `invalid configuration: SESSION_BACKEND: expected one of servicebus, postgres, memory (got "kafka")`
    )
    const missing = await failureOf({ SESSION_BACKEND: "servicebus" })
    expect(missing.variable).toBe("SERVICEBUS_CONNECTION_STRING")
    const malformed = await failureOf({ SERVICEBUS_CONNECTION_STRING: "sb://nope" })
    expect(malformed.variable).toBe("SERVICEBUS_CONNECTION_STRING")
    expect(malformed.message).toContain("Endpoint=sb://")
    expect(malformed.message).not.toContain("nope")
    expect((await failureOf({ DATABASE_URL: "mysql://u@h/db" })).variable).toBe("DATABASE_URL")
    expect((await failureOf({ SESSION_LOCK_DURATION: "0s" })).variable).toBe("SESSION_LOCK_DURATION")
  })

  test("servicebus: the connection string alone gives the Service Bus backend (against the Service Bus test server, built from the SDK's protocol, not Azure)", async () => {
    const server = await startServiceBusTestServer({})
    try {
      const queue = freshName("sq")
      const got = await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
        const q = yield* SessionQueue
        yield* q.send(queue, [{ key: "s", body: "x" }])
        const session = Option.getOrThrow(yield* q.acceptNext(queue, { timeout: "5 seconds" }))
        return (yield* session.receive(1, "2 seconds")).map((m) => [session.sessionId, bodyText(m.message)])
      })).pipe(Effect.provide(SessionQueueLayer.layerConfig()), withEnv({ SERVICEBUS_CONNECTION_STRING: server.connectionString })))
      expect(got).toEqual([["s", "x"]])
    } finally {
      await server.close()
    }
  }, 30_000)

  test("memory: the layer built is a working session queue", async () => {
    const got = await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const q = yield* SessionQueue
      yield* q.send("q", [{ key: "s", body: "x" }])
      return yield* q.depth("q")
    })).pipe(Effect.provide(SessionQueueLayer.layerConfig()), withEnv({})))
    expect(got).toEqual({ active: 1, deadLettered: 0 })
  })
})

const url = postgresUrl()
if (await requireServer("PostgreSQL", probePostgres(url))) {
  const schema = freshSchema()
  afterAll(() => dropPostgresSchema(url, schema))
  test("postgres: DATABASE_URL alone gives the SQL session queue, durable: a second layer sees what the first sent", async () => {
    const queue = freshName("sq")
    const env = { DATABASE_URL: url }
    const run = <A, E>(effect: Effect.Effect<A, E, SessionQueue>) =>
      Effect.runPromise(Effect.scoped(effect).pipe(
        Effect.provide(SessionQueueLayer.layer({
          kind: "postgres",
          database: { url, schema },
          lockDuration: Duration.seconds(60)
        })),
        withEnv(env)
      ))
    expect(await kindOf(env)).toBe("postgres")
    await run(SessionQueue.use((q) => q.send(queue, [{ key: "s", body: "1" }, { key: "s", body: "2" }])))
    expect(await run(SessionQueue.use((q) => q.depth(queue)))).toEqual({ active: 2, deadLettered: 0 })
  }, 60_000)
}
