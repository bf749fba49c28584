/**
 * A private single-node Kafka broker (KRaft, broker and controller in one JVM) that a test may
 * stop, kill and start again: the fault injector for "Kafka is down". The shared broker other
 * suites use is never touched.
 *
 * It runs from the jars `scripts/services.sh up` fetched into `.services/kafka/libs`, with the
 * settings of `scripts/kafka/broker.properties` that script uses too, on two free loopback ports
 * and a data directory of its own under the system's temp directory. `restart` brings it back on
 * the same ports and data, so topics, records and committed offsets survive the outage as they
 * would on a real broker.
 */
import { randomBytes } from "node:crypto"
import { closeSync, existsSync, openSync, readFileSync } from "node:fs"
import { mkdtemp, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Kafka, logLevel } from "kafkajs"
import { closedPort } from "./ports.ts"

const root = join(import.meta.dir, "..", "..")
/** Where `scripts/services.sh up` puts the broker's jars. */
export const kafkaLibs = join(root, ".services", "kafka", "libs")
const sharedProperties = join(root, "scripts", "kafka", "broker.properties")
const log4j = join(root, "scripts", "kafka", "log4j2.properties")
const host = "127.0.0.1"

export interface KafkaBrokerOptions {
  /** JVM max heap [256m]. */
  readonly heap?: string
  /** How long a start may take until the broker serves metadata [90 s]. */
  readonly startTimeoutMs?: number
}

export interface KafkaBroker {
  /** `host:port` to bootstrap from, as KAFKA_BROKERS takes it. */
  readonly brokers: ReadonlyArray<string>
  /** True while the broker's process is alive. */
  readonly running: () => boolean
  /** Stops the process with `signal` [SIGTERM] and waits for it to exit (SIGKILL after 30 s); resolves with its exit code. */
  readonly stop: (signal?: "SIGTERM" | "SIGKILL") => Promise<number>
  /** Starts it again on the same ports and data; resolves once it serves metadata. */
  readonly restart: () => Promise<void>
  /** Stops it (SIGKILL) and removes its data. */
  readonly close: () => Promise<void>
}

/** Resolves when a private broker can be started here (java and the jars); rejects saying what is missing. */
export const probeKafkaJars = () => async () => {
  if (!existsSync(join(kafkaLibs, ".complete"))) {
    throw new Error(`no Kafka jars in ${kafkaLibs} (scripts/services.sh up kafka fetches them)`)
  }
  const java = Bun.spawn(["java", "-version"], { stdout: "ignore", stderr: "ignore" })
  if ((await java.exited) !== 0) throw new Error("java -version failed (Kafka needs Java 17+)")
}

/** A Kafka cluster id as `kafka-storage random-uuid` makes one: 16 random bytes, base64url, not starting with "-". */
const clusterId = (): string => {
  for (;;) {
    const id = randomBytes(16).toString("base64url")
    if (!id.startsWith("-")) return id
  }
}

const tail = (file: string, lines = 30) => {
  try {
    return readFileSync(file, "utf8").split("\n").slice(-lines).join("\n")
  } catch {
    return "(no log)"
  }
}

// Brokers left running by a test that crashed would hold their ports and memory.
const alive = new Set<ReturnType<typeof Bun.spawn>>()
process.once("exit", () => {
  for (const proc of alive) proc.kill("SIGKILL")
})

export const startKafkaBroker = async (options: KafkaBrokerOptions = {}): Promise<KafkaBroker> => {
  const heap = options.heap ?? "256m"
  const startTimeoutMs = options.startTimeoutMs ?? 90_000
  const dir = await mkdtemp(join(tmpdir(), "kafka-broker-"))
  const data = join(dir, "data")
  const logFile = join(dir, "server.log")
  const properties = join(dir, "server.properties")
  const port = await closedPort()
  let controllerPort = await closedPort()
  while (controllerPort === port) controllerPort = await closedPort()
  const brokers = [`${host}:${port}`]
  await writeFile(
    properties,
    [
      "process.roles=broker,controller",
      "node.id=1",
      `controller.quorum.voters=1@${host}:${controllerPort}`,
      `listeners=PLAINTEXT://${host}:${port},CONTROLLER://${host}:${controllerPort}`,
      `advertised.listeners=PLAINTEXT://${host}:${port}`,
      `log.dirs=${data}`,
      readFileSync(sharedProperties, "utf8")
    ].join("\n")
  )

  const java = (args: ReadonlyArray<string>, jvm: ReadonlyArray<string> = []) => {
    const log = openSync(logFile, "a")
    try {
      return Bun.spawn(
        ["java", ...jvm, "-Djava.awt.headless=true", `-Dlog4j2.configurationFile=${log4j}`, `-Dkafka.logs.dir=${dir}`, "-cp", `${kafkaLibs}/*`, ...args],
        { cwd: dir, stdin: "ignore", stdout: log, stderr: log }
      )
    } finally {
      closeSync(log)
    }
  }

  const format = java(["kafka.tools.StorageTool", "format", "-t", clusterId(), "-c", properties], ["-Xmx128m", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC"])
  if ((await format.exited) !== 0) {
    const error = new Error(`formatting a private Kafka broker's data failed:\n${tail(logFile)}`)
    await rm(dir, { recursive: true, force: true })
    throw error
  }

  let proc: ReturnType<typeof Bun.spawn> | undefined
  let exited = false

  const serves = async (): Promise<boolean> => {
    const admin = new Kafka({ clientId: "kafka-broker-probe", brokers, logLevel: logLevel.NOTHING, retry: { retries: 0 }, connectionTimeout: 1_000 })
      .admin()
    try {
      await admin.connect()
      const cluster = await admin.describeCluster()
      return cluster.brokers.length > 0 && cluster.controller !== null && cluster.controller >= 0
    } catch {
      return false
    } finally {
      await admin.disconnect().catch(() => {})
    }
  }

  const launch = async () => {
    // A test broker carries little traffic: the quick compiler only and one GC thread start it
    // sooner on a busy machine than a tuned server JVM would.
    const child = java(["kafka.Kafka", properties], [
      "-Xms64m",
      `-Xmx${heap}`,
      "-XX:TieredStopAtLevel=1",
      "-XX:+UseSerialGC",
      "-XX:+ExitOnOutOfMemoryError"
    ])
    proc = child
    exited = false
    alive.add(child)
    void child.exited.then(() => {
      alive.delete(child)
      if (proc === child) exited = true
    })
    const deadline = Date.now() + startTimeoutMs
    while (!(await serves())) {
      if (exited) throw new Error(`the private Kafka broker exited with ${child.exitCode} during startup:\n${tail(logFile)}`)
      if (Date.now() > deadline) throw new Error(`the private Kafka broker did not serve metadata within ${startTimeoutMs} ms:\n${tail(logFile)}`)
      await Bun.sleep(250)
    }
  }

  const stop = async (signal: "SIGTERM" | "SIGKILL" = "SIGTERM"): Promise<number> => {
    const child = proc
    if (child === undefined || exited) return child?.exitCode ?? 0
    child.kill(signal)
    const timer = setTimeout(() => child.kill("SIGKILL"), 30_000)
    try {
      return await child.exited
    } finally {
      clearTimeout(timer)
    }
  }

  try {
    await launch()
  } catch (error) {
    await stop("SIGKILL")
    await rm(dir, { recursive: true, force: true })
    throw error
  }

  return {
    brokers,
    running: () => proc !== undefined && !exited,
    stop,
    restart: async () => {
      if (proc !== undefined && !exited) throw new Error("the private Kafka broker is still running; stop it first")
      await launch()
    },
    close: async () => {
      await stop("SIGKILL")
      await rm(dir, { recursive: true, force: true })
    }
  }
}
