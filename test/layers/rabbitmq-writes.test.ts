/**
 * `coalesceWrites` (layers/rabbitmq/connection.ts) reaches into amqplib's muxer, which is not
 * public: with the amqplib this project installs it must apply, and the frames a burst of
 * publishes makes must reach the socket as one write, not one each.
 */
import { describe, expect, test } from "bun:test"
import * as amqp from "amqplib"
import { coalesceWrites } from "../../layers/rabbitmq/connection.ts"
import { probeRabbitmq, rabbitmqUrl, requireServer } from "../support/servers.ts"

const url = rabbitmqUrl()

/** Socket writes (`_write` and `_writev` calls) while ten messages are published in one go. */
const writesForBurst = async (coalesce: boolean) => {
  const connection = await amqp.connect(url)
  try {
    if (coalesce) expect(coalesceWrites(connection)).toBe(true)
    const channel = await connection.createChannel()
    const { queue } = await channel.assertQueue("", { exclusive: true })
    const socket = (connection as unknown as { connection: { stream: { _write: Function; _writev?: Function } } }).connection.stream
    let writes = 0
    const write = socket._write
    const writev = socket._writev
    socket._write = function(this: unknown, ...args: Array<unknown>) {
      writes++
      return write.apply(this, args)
    }
    if (writev !== undefined) {
      socket._writev = function(this: unknown, ...args: Array<unknown>) {
        writes++
        return writev.apply(this, args)
      }
    }
    for (let i = 0; i < 10; i++) channel.sendToQueue(queue, Buffer.from(`m${i}`))
    // A round trip after the burst: every frame before it has been written.
    await channel.checkQueue(queue)
    socket._write = write
    if (writev !== undefined) socket._writev = writev
    return writes
  } finally {
    await connection.close()
  }
}

if (await requireServer("RabbitMQ", probeRabbitmq(url))) {
  describe("RabbitMQ socket writes", () => {
    test("applies to the installed amqplib: a burst of ten publishes is one write (and the check's), not one per publish", async () => {
      const plain = await writesForBurst(false)
      const coalesced = await writesForBurst(true)
      // Each publish is three frames (method, header, body) written together, so plain is ten writes or more.
      expect(plain).toBeGreaterThanOrEqual(10)
      expect(coalesced).toBeLessThanOrEqual(2)
    })
  })
}
