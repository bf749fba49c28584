/**
 * The balancer's bookkeeping, without a broker or a clock (times are passed in), so every rule
 * is tested directly (`test/sales/balancer.test.ts`); the program only feeds it events.
 *
 * - `route` picks the healthy worker with the fewest outstanding requests; among equals the
 *   scan starts one further each time (round-robin), so equal workers take turns. The request
 *   is outstanding on that worker until `replied` (the worker's reply was seen), never on a timer.
 * - Workers come from the configured queues and from heartbeats: an unknown worker that beats
 *   joins. A worker that has beaten once and then misses beats for `missedBeats` intervals, or
 *   says it is leaving, or whose queue lost its consumer (`markDown`), is taken out: it gets no
 *   more requests, and its outstanding ones are handed back by `expire`/`markDown`/`heartbeat`
 *   for re-routing if their deadline still allows (the others are dropped: their client gave up).
 *   A worker that never beat (the original Go worker does not) is judged only by `markDown`/`markUp`.
 *   A reply is as good as a beat: a worker busy answering is alive even when its beats run late.
 * - A reply from a worker for a request that was re-routed meanwhile still counts: the first
 *   reply wins, the request stops being outstanding everywhere.
 */

export interface Pending {
  readonly id: string
  readonly worker: string
  /** Epoch millis when the client stops waiting; undefined for no deadline. */
  readonly deadline: number | undefined
  readonly sentAt: number
  readonly reroutes: number
}

export interface WorkerView {
  readonly queue: string
  readonly healthy: boolean
  readonly outstanding: number
  readonly routed: number
  readonly rerouted: number
  readonly replies: number
  readonly lastHeartbeat: number | undefined
}

interface WorkerState {
  readonly queue: string
  healthy: boolean
  readonly outstanding: Set<string>
  routed: number
  rerouted: number
  replies: number
  lastHeartbeat: number | undefined
  intervalMillis: number | undefined
}

export interface BalancerOptions {
  /** Beats a worker may miss before it is taken out [3]. */
  readonly missedBeats?: number
}

/** What happened to the requests of a worker taken out. */
export interface Handback {
  /** Still within their deadline: to be sent to another worker. */
  readonly reroute: ReadonlyArray<Pending>
  /** Past their deadline: dropped. */
  readonly expired: ReadonlyArray<Pending>
}

const noHandback: Handback = { reroute: [], expired: [] }

export class Balancer {
  private readonly workers: Array<WorkerState> = []
  private readonly pending = new Map<string, Pending>()
  private next = 0
  private readonly missedBeats: number

  constructor(queues: ReadonlyArray<string>, options: BalancerOptions = {}) {
    this.missedBeats = options.missedBeats ?? 3
    for (const queue of queues) this.add(queue)
  }

  private add(queue: string): WorkerState {
    const existing = this.workers.find((w) => w.queue === queue)
    if (existing !== undefined) return existing
    const state: WorkerState = {
      queue, healthy: true, outstanding: new Set(), routed: 0, rerouted: 0, replies: 0, lastHeartbeat: undefined, intervalMillis: undefined
    }
    this.workers.push(state)
    return state
  }

  /** The worker for a new request (or a re-routed one), or undefined when none is healthy. */
  route(id: string, now: number, deadline?: number): string | undefined {
    return this.assign({ id, worker: "", deadline, sentAt: now, reroutes: 0 })
  }

  private assign(request: Pending): string | undefined {
    const n = this.workers.length
    let best: WorkerState | undefined
    const start = n === 0 ? 0 : this.next % n
    for (let i = 0; i < n; i++) {
      const worker = this.workers[(start + i) % n]!
      if (!worker.healthy) continue
      if (best === undefined || worker.outstanding.size < best.outstanding.size) best = worker
    }
    this.next++
    if (best === undefined) return undefined
    best.outstanding.add(request.id)
    if (request.reroutes === 0) best.routed++
    else if (best.queue !== request.worker) best.rerouted++
    this.pending.set(request.id, { ...request, worker: best.queue })
    return best.queue
  }

  /**
   * A reply to `id` was seen, from the worker `from` when the reply says: the request is no longer
   * outstanding anywhere (a re-routed one may be answered by its first worker). Every reply counts
   * for the worker that sent it, and as a sign of life at `now`. Returns the request (its worker
   * and when it was sent, for latency), or undefined when it was not outstanding (a second reply,
   * or a request this balancer never routed).
   */
  replied(id: string, from?: string, now?: number): Pending | undefined {
    const request = this.pending.get(id)
    const answering = this.workers.find((w) => w.queue === (from ?? request?.worker))
    if (answering !== undefined) {
      answering.replies++
      if (now !== undefined && answering.lastHeartbeat !== undefined) answering.lastHeartbeat = Math.max(answering.lastHeartbeat, now)
    }
    if (request === undefined) return undefined
    this.pending.delete(id)
    this.workers.find((w) => w.queue === request.worker)?.outstanding.delete(id)
    return request
  }

  /** Forgets a request whose forward failed: no longer outstanding, and no reply counted. */
  cancel(id: string): void {
    const request = this.pending.get(id)
    if (request === undefined) return
    this.pending.delete(id)
    const worker = this.workers.find((w) => w.queue === request.worker)
    if (worker === undefined) return
    worker.outstanding.delete(id)
    if (request.reroutes === 0) worker.routed--
  }

  /** A heartbeat: an unknown worker joins; a known one is healthy again; `leaving` takes it out. */
  heartbeat(queue: string, now: number, intervalMillis: number, leaving = false): Handback {
    const worker = this.add(queue)
    worker.lastHeartbeat = now
    worker.intervalMillis = intervalMillis
    if (leaving) return this.takeOut(worker, now)
    worker.healthy = true
    return noHandback
  }

  /** Takes out every worker whose beats stopped; call it about once per beat interval. */
  expire(now: number): Handback {
    const reroute: Array<Pending> = []
    const expired: Array<Pending> = []
    for (const worker of this.workers) {
      if (!worker.healthy || worker.lastHeartbeat === undefined || worker.intervalMillis === undefined) continue
      if (now - worker.lastHeartbeat > worker.intervalMillis * this.missedBeats) {
        const back = this.takeOut(worker, now)
        reroute.push(...back.reroute)
        expired.push(...back.expired)
      }
    }
    return { reroute, expired }
  }

  /** Its queue lost its consumer (or vanished): out until `markUp` or a heartbeat. */
  markDown(queue: string, now: number): Handback {
    const worker = this.workers.find((w) => w.queue === queue)
    return worker === undefined || !worker.healthy ? noHandback : this.takeOut(worker, now)
  }

  markUp(queue: string): void {
    this.add(queue).healthy = true
  }

  /**
   * What the broker says of a worker's queue: no consumer (or no queue) takes the worker out; a
   * consumer brings back a worker that never beat (for one that beats, its next beat does).
   */
  observeConsumers(queue: string, consumers: number | undefined, now: number): Handback {
    const worker = this.workers.find((w) => w.queue === queue)
    if (worker === undefined) return noHandback
    if (consumers === undefined || consumers === 0) return worker.healthy ? this.takeOut(worker, now) : noHandback
    if (!worker.healthy && worker.lastHeartbeat === undefined) worker.healthy = true
    return noHandback
  }

  /**
   * Sends a handed-back request to a healthy worker; undefined when none is healthy (the caller
   * answers or drops it). Its own worker, back by then, may be chosen: the request is still in
   * that worker's queue, so the caller need not send it again.
   */
  reroute(request: Pending): string | undefined {
    return this.assign({ ...request, reroutes: request.reroutes + 1 })
  }

  private takeOut(worker: WorkerState, now: number): Handback {
    worker.healthy = false
    const reroute: Array<Pending> = []
    const expired: Array<Pending> = []
    for (const id of worker.outstanding) {
      const request = this.pending.get(id)
      if (request === undefined) continue
      this.pending.delete(id)
      if (request.deadline !== undefined && request.deadline <= now) expired.push(request)
      else reroute.push(request)
    }
    worker.outstanding.clear()
    return { reroute, expired }
  }

  /** Requests routed to `queue` and not yet answered (0 for a worker it does not know). */
  outstandingOn(queue: string): number {
    return this.workers.find((w) => w.queue === queue)?.outstanding.size ?? 0
  }

  /** Requests routed and not yet answered, all workers together. */
  get outstanding(): number {
    return this.pending.size
  }

  snapshot(): ReadonlyArray<WorkerView> {
    return this.workers.map((w) => ({
      queue: w.queue,
      healthy: w.healthy,
      outstanding: w.outstanding.size,
      routed: w.routed,
      rerouted: w.rerouted,
      replies: w.replies,
      lastHeartbeat: w.lastHeartbeat
    }))
  }
}
