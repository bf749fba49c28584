/** Reading a relay's topic back from Kafka, creating, configuring and removing it, with kafkajs directly. */
import { ConfigResourceTypes, Kafka as KafkaClient, logLevel } from "kafkajs"

export interface ReadBack {
  readonly key: string
  readonly eventId: string
  readonly value: string
  readonly partition: number
  readonly offset: string
}

const client = (brokers: ReadonlyArray<string>) =>
  new KafkaClient({ clientId: "outbox-test", brokers: [...brokers], logLevel: logLevel.NOTHING })

/** `config`: topic-level settings, e.g. `{ "max.message.bytes": "4096" }`. */
export const createTopic = async (brokers: ReadonlyArray<string>, topic: string, partitions = 3, config: Record<string, string> = {}) => {
  const admin = client(brokers).admin()
  await admin.connect()
  try {
    const configEntries = Object.entries(config).map(([name, value]) => ({ name, value }))
    await admin.createTopics({ topics: [{ topic, numPartitions: partitions, configEntries }], waitForLeaders: true })
  } finally {
    await admin.disconnect()
  }
}

/** The topic's current value of a setting, as the broker describes it. */
export const topicConfig = async (brokers: ReadonlyArray<string>, topic: string, name: string): Promise<string | undefined> => {
  const admin = client(brokers).admin()
  await admin.connect()
  try {
    const described = await admin.describeConfigs({
      resources: [{ type: ConfigResourceTypes.TOPIC, name: topic, configNames: [name] }],
      includeSynonyms: false
    })
    return described.resources[0]?.configEntries.find((entry) => entry.configName === name)?.configValue
  } finally {
    await admin.disconnect()
  }
}

/** Sets topic-level settings (the others go back to the broker's defaults, as alterConfigs does). */
export const alterTopic = async (brokers: ReadonlyArray<string>, topic: string, config: Record<string, string>) => {
  const admin = client(brokers).admin()
  await admin.connect()
  try {
    const configEntries = Object.entries(config).map(([name, value]) => ({ name, value }))
    await admin.alterConfigs({ validateOnly: false, resources: [{ type: ConfigResourceTypes.TOPIC, name: topic, configEntries }] })
  } finally {
    await admin.disconnect()
  }
}

export const deleteTopic = async (brokers: ReadonlyArray<string>, topic: string) => {
  const admin = client(brokers).admin()
  await admin.connect()
  try {
    await admin.deleteTopics({ topics: [topic] }).catch(() => {})
  } finally {
    await admin.disconnect()
  }
}

/** Every record of `topic` from the beginning, in each partition's order, once `expected` arrived (or after `within` ms). */
export const readAll = async (brokers: ReadonlyArray<string>, topic: string, expected: number, within = 30_000): Promise<Array<ReadBack>> => {
  const consumer = client(brokers).consumer({ groupId: `outbox-test-${crypto.randomUUID()}`, maxWaitTimeInMs: 200 })
  const records: Array<ReadBack> = []
  await consumer.connect()
  try {
    await consumer.subscribe({ topic, fromBeginning: true })
    let done: () => void = () => {}
    const arrived = new Promise<void>((resolve) => {
      done = resolve
    })
    await consumer.run({
      eachMessage: async ({ partition, message }) => {
        records.push({
          key: message.key?.toString() ?? "",
          eventId: message.headers?.["event-id"]?.toString() ?? "",
          value: message.value?.toString() ?? "",
          partition,
          offset: message.offset
        })
        if (records.length >= expected) done()
      }
    })
    await Promise.race([arrived, new Promise((resolve) => setTimeout(resolve, within))])
    // A moment for duplicates beyond the expected count to show up.
    await new Promise((resolve) => setTimeout(resolve, 500))
  } finally {
    await consumer.disconnect()
  }
  return records
}
