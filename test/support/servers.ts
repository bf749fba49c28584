/**
 * The servers integration suites talk to, and what a suite does when one is missing.
 *
 * A suite whose server cannot be reached must never look green on CI: under `CI=true` it gets a
 * failing test naming the server and the reason; on a developer's machine it is skipped with a
 * warning. Probes for more servers (RabbitMQ, Kafka) belong here, next to the PostgreSQL one.
 */
import { test } from "bun:test"
import postgres from "postgres"

const probeTimeoutMs = 5_000

const withTimeout = async (name: string, probe: () => Promise<void>) => {
  let timer: ReturnType<typeof setTimeout> | undefined
  try {
    await Promise.race([
      probe(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer from ${name} within ${probeTimeoutMs} ms`)), probeTimeoutMs)
      })
    ])
  } finally {
    clearTimeout(timer)
  }
}

/**
 * Runs `probe`; resolves true when the server answered. Otherwise registers the failing (CI) or
 * skipped (local) test that reports why, and resolves false: register the suite only on true.
 */
export const requireServer = async (name: string, probe: () => Promise<void>): Promise<boolean> => {
  try {
    await withTimeout(name, probe)
    return true
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error)
    if (process.env.CI === "true") {
      test(`${name} is reachable`, () => {
        throw new Error(`${name} is unreachable and CI=true, so its suite cannot be skipped: ${reason}`)
      })
    } else {
      console.warn(`\n!!! SKIPPING the ${name} suite: ${name} is unreachable (${reason}). Under CI=true this fails.\n`)
      test.skip(`${name} is reachable: ${reason}`, () => {})
    }
    return false
  }
}

/** A name no other run uses, for schemas, topics and queues. */
export const freshName = (prefix: string) => `${prefix}_${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`

// ---- PostgreSQL ----

export const postgresUrl = () => process.env.TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test"

/** A schema name for one test run; the postgres layer creates it, `dropPostgresSchema` removes it. */
export const freshSchema = () => freshName("t")

const withPostgres = async (url: string, use: (sql: postgres.Sql) => Promise<unknown>) => {
  const sql = postgres(url, { max: 1, connect_timeout: 5, onnotice: () => {} })
  try {
    await use(sql)
  } finally {
    await sql.end({ timeout: 5 })
  }
}

export const probePostgres = (url: string) => () => withPostgres(url, (sql) => sql`select 1`)

export const dropPostgresSchema = (url: string, schema: string) =>
  withPostgres(url, (sql) => sql.unsafe(`drop schema if exists "${schema.replaceAll("\"", "\"\"")}" cascade`))

// ---- RabbitMQ ----

export const rabbitmqUrl = () => process.env.TEST_RABBITMQ_URL ?? "amqp://guest:guest@127.0.0.1:5672"

/** Opens and closes an AMQP connection: the port being open is not enough (the broker may still be booting). */
export const probeRabbitmq = (url: string) => async () => {
  const amqp = await import("amqplib")
  const connection = await amqp.connect(url)
  connection.on("error", () => {})
  await connection.close()
}

// ---- Kafka ----

/** `TEST_KAFKA_BROKERS`, comma-separated [127.0.0.1:9092]. */
export const kafkaBrokers = (): ReadonlyArray<string> =>
  (process.env.TEST_KAFKA_BROKERS ?? "127.0.0.1:9092").split(",").map((broker) => broker.trim()).filter((broker) => broker !== "")

/** Asks the cluster for its brokers: a KRaft node accepts connections before it can answer. */
export const probeKafka = (brokers: ReadonlyArray<string>) => async () => {
  const { Kafka, logLevel } = await import("kafkajs")
  const admin = new Kafka({ brokers: [...brokers], clientId: "probe", logLevel: logLevel.NOTHING, retry: { retries: 0 } }).admin()
  try {
    await admin.connect()
    await admin.describeCluster()
  } finally {
    await admin.disconnect().catch(() => {})
  }
}
