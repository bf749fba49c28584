import { describe, expect, test } from "bun:test"
import { AckBatcher } from "../../layers/rabbitmq/ackBatcher.ts"

const setup = (threshold: number) => {
  const wire: Array<string> = []
  let armed = 0
  const batcher = new AckBatcher(
    { ack: (tag, multiple) => wire.push(multiple ? `ack<=${tag}` : `ack ${tag}`), nack: (tag) => wire.push(`nack ${tag}`) },
    threshold,
    () => armed++
  )
  const deliver = (...tags: Array<number>) => tags.forEach((tag) => batcher.delivered(tag))
  return { wire, batcher, deliver, armed: () => armed }
}

describe("rabbitmq ack batcher", () => {
  test("in-order acks go out as one multiple-ack once the threshold is reached", () => {
    const { wire, batcher, deliver, armed } = setup(3)
    deliver(1, 2, 3, 4)
    batcher.ack(1)
    batcher.ack(2)
    expect(wire).toEqual([])
    expect(armed()).toBe(1)
    batcher.ack(3)
    expect(wire).toEqual(["ack<=3"])
    batcher.ack(4)
    batcher.flush(true)
    expect(wire).toEqual(["ack<=3", "ack<=4"])
  })

  test("a multiple-ack never covers an unsettled delivery; acks behind it go out one by one on the timer flush", () => {
    const { wire, batcher, deliver } = setup(10)
    deliver(1, 2, 3, 4, 5)
    batcher.ack(1)
    batcher.ack(3)
    batcher.ack(5)
    batcher.flush(true)
    expect(wire).toEqual(["ack<=1", "ack 3", "ack 5"])
    batcher.ack(2)
    batcher.ack(4)
    batcher.flush(true)
    // 3 and 5 were acked already: the multiple-ack names 4, the last one still outstanding.
    expect(wire).toEqual(["ack<=1", "ack 3", "ack 5", "ack<=4"])
  })

  test("acks piling up behind a slow delivery are sent without waiting for the timer", () => {
    const { wire, batcher, deliver } = setup(4)
    deliver(1, 2, 3, 4, 5)
    for (const tag of [2, 3, 4, 5]) batcher.ack(tag)
    expect(wire).toEqual(["ack 2", "ack 3", "ack 4", "ack 5"])
  })

  test("a requeue is sent at once and individually; the prefix moves past it", () => {
    const { wire, batcher, deliver } = setup(10)
    deliver(1, 2, 3)
    batcher.requeue(3)
    batcher.ack(1)
    batcher.ack(2)
    batcher.flush(true)
    expect(wire).toEqual(["nack 3", "ack<=2"])
  })

  test("settling twice, or after the channel died, sends nothing", () => {
    const { wire, batcher, deliver } = setup(1)
    deliver(1, 2)
    batcher.ack(1)
    batcher.ack(1)
    batcher.requeue(1)
    expect(wire).toEqual(["ack<=1"])
    batcher.kill()
    batcher.ack(2)
    batcher.flush(true)
    expect(wire).toEqual(["ack<=1"])
    expect(batcher.isAlive).toBe(false)
  })

  test("a window far wider than its start (one slow delivery, thousands behind it) settles every tag exactly once", () => {
    const { wire, batcher, deliver } = setup(8)
    const last = 3000
    deliver(...Array.from({ length: last }, (_, i) => i + 1))
    for (let tag = last; tag >= 2; tag--) batcher.ack(tag)
    batcher.flush(true)
    batcher.ack(1)
    batcher.flush(true)
    deliver(last + 1, last + 2)
    batcher.ack(last + 2)
    batcher.ack(last + 1)
    batcher.flush(true)
    const settled = wire.map((frame) => frame.replace(/^ack<?=?\s*/, ""))
    expect(new Set(settled).size).toBe(settled.length)
    expect(wire.slice(-2)).toEqual(["ack<=1", `ack<=${last + 2}`])
    expect(wire.filter((frame) => frame.startsWith("ack ")).length).toBe(last - 1)
  })
})
