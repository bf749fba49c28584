/** Reading a relay's topic back from Kafka, and removing it, with kafkajs directly. */
import { Kafka as KafkaClient, logLevel } from "kafkajs"

export interface ReadBack {
  readonly key: string
  readonly eventId: string
  readonly value: string
  readonly partition: number
  readonly offset: string
}

const client = (brokers: ReadonlyArray<string>) =>
  new KafkaClient({ clientId: "outbox-test", brokers: [...brokers], logLevel: logLevel.NOTHING })

export const createTopic = async (brokers: ReadonlyArray<string>, topic: string, partitions = 3) => {
  const admin = client(brokers).admin()
  await admin.connect()
  try {
    await admin.createTopics({ topics: [{ topic, numPartitions: partitions }], waitForLeaders: true })
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
