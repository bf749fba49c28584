/**
 * The balancer's rules, without a broker: least outstanding with round-robin ties, counts that
 * fall on replies, workers joining by heartbeat, taken out when their beats stop or they leave,
 * and their requests handed back for re-routing within the client's deadline.
 */
import { describe, expect, test } from "bun:test"
import { Balancer } from "../../src/sales/balancer.ts"

const workers = ["mom-worker-1", "mom-worker-2", "mom-worker-3"]
const outstanding = (b: Balancer) => Object.fromEntries(b.snapshot().map((w) => [w.queue, w.outstanding]))

describe("routing", () => {
  test("equal workers take turns (round-robin among ties)", () => {
    const b = new Balancer(workers)
    const picks = Array.from({ length: 6 }, (_, i) => {
      const worker = b.route(`r${i}`, 0)!
      b.replied(`r${i}`)
      return worker
    })
    expect(picks).toEqual([...workers, ...workers])
  })

  test("the least outstanding worker wins; counts fall on replies only", () => {
    const b = new Balancer(workers)
    for (let i = 0; i < 3; i++) b.route(`r${i}`, 0)
    expect(outstanding(b)).toEqual({ "mom-worker-1": 1, "mom-worker-2": 1, "mom-worker-3": 1 })
    expect(b.replied("r1")?.worker).toBe("mom-worker-2")
    expect(b.route("r3", 0)).toBe("mom-worker-2")
    expect(b.replied("r1")).toBeUndefined()
    expect(outstanding(b)).toEqual({ "mom-worker-1": 1, "mom-worker-2": 1, "mom-worker-3": 1 })
    expect(b.outstanding).toBe(3)
  })

  test("a slow worker gets proportionally fewer requests, and no backlog", () => {
    // One request per tick; "fast" finishes one every tick, "slow" one every 4 ticks, in order.
    const b = new Balancer(["fast", "slow"])
    const service = { fast: 1, slow: 4 }
    const queues = { fast: [] as Array<string>, slow: [] as Array<string> }
    const got = { fast: 0, slow: 0 }
    let maxSlowBacklog = 0
    for (let tick = 0; tick < 4_000; tick++) {
      const worker = b.route(`r${tick}`, tick) as "fast" | "slow"
      got[worker]++
      queues[worker].push(`r${tick}`)
      for (const name of ["fast", "slow"] as const) {
        if (tick % service[name] === service[name] - 1 && queues[name].length > 0) b.replied(queues[name].shift()!)
      }
      maxSlowBacklog = Math.max(maxSlowBacklog, queues.slow.length)
    }
    // Capacity 1 : 1/4, so about a fifth goes to the slow one (round-robin would send it half).
    const slowShare = got.slow / (got.fast + got.slow)
    expect(slowShare).toBeGreaterThan(0.1)
    expect(slowShare).toBeLessThan(0.3)
    expect(maxSlowBacklog).toBeLessThanOrEqual(2)
  })

  test("no healthy worker: no route", () => {
    const b = new Balancer(["only"])
    b.markDown("only", 0)
    expect(b.route("r", 0)).toBeUndefined()
    b.markUp("only")
    expect(b.route("r", 0)).toBe("only")
  })
})

describe("health", () => {
  test("an unknown worker that beats joins and is routed to", () => {
    const b = new Balancer(["mom-worker-1"])
    b.route("r0", 0)
    b.heartbeat("mom-worker-9", 0, 1_000)
    expect(b.route("r1", 0)).toBe("mom-worker-9")
    expect(b.snapshot().map((w) => w.queue)).toEqual(["mom-worker-1", "mom-worker-9"])
  })

  test("a worker whose beats stop is taken out after the missed beats; its requests are handed back by deadline", () => {
    const b = new Balancer(["a", "b"], { missedBeats: 3 })
    b.heartbeat("a", 0, 1_000)
    b.heartbeat("b", 0, 1_000)
    b.route("r0", 0, 10_000) // a
    b.route("r1", 0, 10_000) // b
    b.route("r2", 0, 3_500) // a: its client stops waiting at 3.5 s
    b.route("r3", 0) // b, no deadline
    b.heartbeat("b", 3_000, 1_000)
    expect(b.expire(3_000)).toEqual({ reroute: [], expired: [] })
    const back = b.expire(3_600)
    expect(back.reroute.map((p) => p.id)).toEqual(["r0"])
    expect(back.expired.map((p) => p.id)).toEqual(["r2"])
    expect(b.snapshot().find((w) => w.queue === "a")).toMatchObject({ healthy: false, outstanding: 0 })
    expect(b.reroute(back.reroute[0]!)).toBe("b")
    expect(b.snapshot().find((w) => w.queue === "b")).toMatchObject({ outstanding: 3, routed: 2, rerouted: 1 })
    // Its next beat brings it back.
    b.heartbeat("a", 4_000, 1_000)
    expect(b.route("r4", 4_000)).toBe("a")
  })

  test("a worker that never beat is not timed out (the original worker sends no heartbeats)", () => {
    const b = new Balancer(["silent"])
    b.route("r0", 0)
    expect(b.expire(1_000_000)).toEqual({ reroute: [], expired: [] })
    expect(b.route("r1", 1_000_000)).toBe("silent")
  })

  test("a leaving worker is out at once; its requests come back", () => {
    const b = new Balancer(["a", "b"])
    b.route("r0", 0)
    const back = b.heartbeat("a", 10, 1_000, true)
    expect(back.reroute.map((p) => p.id)).toEqual(["r0"])
    expect(b.route("r1", 10)).toBe("b")
    expect(b.route("r2", 10)).toBe("b")
  })

  test("a queue that lost its consumer is out; a reply from it for a re-routed request still settles it", () => {
    const b = new Balancer(["a", "b"])
    b.route("r0", 0)
    const back = b.markDown("a", 5)
    expect(back.reroute.map((p) => p.id)).toEqual(["r0"])
    expect(b.reroute(back.reroute[0]!)).toBe("b")
    expect(b.replied("r0", "a")?.worker).toBe("b")
    expect(b.outstanding).toBe(0)
    expect(b.snapshot().map((w) => [w.queue, w.replies, w.outstanding])).toEqual([["a", 1, 0], ["b", 0, 0]])
    expect(b.replied("r0", "b")).toBeUndefined()
    expect(b.snapshot().map((w) => [w.queue, w.replies, w.outstanding])).toEqual([["a", 1, 0], ["b", 1, 0]])
  })
})

test("a reply is a sign of life: a worker answering with late beats stays in", () => {
  const b = new Balancer(["a"], { missedBeats: 3 })
  b.heartbeat("a", 0, 100)
  b.route("r0", 0)
  b.route("r1", 0)
  b.replied("r0", "a", 250)
  expect(b.expire(400).reroute).toEqual([])
  expect(b.snapshot()[0]!.healthy).toBe(true)
  expect(b.expire(551).reroute.map((p) => p.id)).toEqual(["r1"])
})

test("a request handed back to its own worker, back in time, is not counted as re-routed", () => {
  const b = new Balancer(["a"])
  b.heartbeat("a", 0, 100)
  b.route("r0", 0)
  const back = b.expire(1_000)
  b.heartbeat("a", 1_001, 100)
  expect(b.reroute(back.reroute[0]!)).toBe("a")
  expect(b.snapshot()[0]).toMatchObject({ outstanding: 1, routed: 1, rerouted: 0 })
})

test("a queue without consumers takes its worker out; a consumer brings back one that never beat", () => {
  const b = new Balancer(["go-worker", "beating"])
  b.heartbeat("beating", 0, 1_000)
  b.route("r0", 0)
  expect(b.observeConsumers("go-worker", 1, 0)).toEqual({ reroute: [], expired: [] })
  const back = b.observeConsumers("go-worker", 0, 10)
  expect(back.reroute.map((p) => p.id)).toEqual(["r0"])
  expect(b.observeConsumers("beating", undefined, 10).reroute).toEqual([])
  expect(b.snapshot().map((w) => w.healthy)).toEqual([false, false])
  b.observeConsumers("go-worker", 1, 20)
  b.observeConsumers("beating", 1, 20)
  // The one that beats comes back by its beat, not by a consumer count (it may hang while subscribed).
  expect(b.snapshot().map((w) => w.healthy)).toEqual([true, false])
  b.heartbeat("beating", 30, 1_000)
  expect(b.snapshot().map((w) => w.healthy)).toEqual([true, true])
})

test("cancel forgets a request whose forward failed, counting nothing", () => {
  const b = new Balancer(["a"])
  b.route("r0", 0)
  b.cancel("r0")
  expect(b.snapshot()[0]).toMatchObject({ outstanding: 0, routed: 0, replies: 0 })
  expect(b.replied("r0")).toBeUndefined()
})
