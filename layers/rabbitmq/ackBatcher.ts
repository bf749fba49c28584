/**
 * Ack batching for one consumer channel.
 *
 * Acking every delivery with its own frame halves throughput; AMQP lets one `basic.ack` with
 * `multiple` settle every outstanding delivery up to a tag. Delivery tags on a channel run
 * 1, 2, 3, ... so the batcher tracks each tag from the last flushed one upward and, on flush,
 * sends one multiple-ack for the longest prefix in which every tag is settled. Acks stuck behind
 * an unsettled tag (a slow handler) are sent one by one on the timer flush, or on a threshold
 * flush that leaves at least half the threshold pending, so a consumer never starves its own
 * prefetch window.
 *
 * Requeues (`nack`) are sent at once and individually: a multiple-nack would also return
 * deliveries still being handled. After `kill` (the channel died) every call is a no-op; the
 * broker redelivers whatever was not flushed.
 *
 * Driver-free: the channel is reached through `AckWire`, so this is testable on its own.
 */

/** Acks and requeues by delivery tag, which is all AMQP needs to name a delivery. */
export interface AckWire {
  readonly ack: (tag: number, multiple: boolean) => void
  readonly nack: (tag: number) => void
}

const Unsettled = 0
const PendingAck = 1
/** Acked or nacked on the wire already, but not yet below the watermark. */
const Sent = 2

const InitialSlots = 256

export class AckBatcher {
  // The states of the tags above the watermark, in a ring: tags are consecutive, so this is a
  // window, not a map. It holds no reference to a delivery: a Map of deliveries used as a queue
  // kept them alive through its deleted entries until a full collection, which at tens of
  // thousands of deliveries a second made the process twice the size of the work it holds.
  private states = new Uint8Array(InitialSlots)
  private mask = InitialSlots - 1
  /** Every tag up to here is settled on the wire. */
  private watermark = 0
  /** The last tag delivered. */
  private highest = 0
  private pending = 0
  private alive = true

  constructor(
    private readonly wire: AckWire,
    /** Pending acks that trigger a flush without waiting for the timer. */
    private readonly threshold: number,
    /** Called when the first ack becomes pending, to arm the flush timer. */
    private readonly onPending: () => void
  ) {}

  get isAlive(): boolean {
    return this.alive
  }

  delivered(tag: number): void {
    if (!this.alive || tag <= this.highest) return
    // A slow delivery holds the watermark while later ones are settled individually, so the
    // window can outgrow the prefetch; it doubles then.
    while (tag - this.watermark > this.mask) this.grow()
    // Tags a broker never sent (none in practice) count as already settled.
    for (let skipped = this.highest + 1; skipped < tag; skipped++) this.states[skipped & this.mask] = Sent
    this.states[tag & this.mask] = Unsettled
    this.highest = tag
  }

  ack(tag: number): void {
    if (!this.isOpen(tag)) return
    this.states[tag & this.mask] = PendingAck
    if (this.pending++ === 0) this.onPending()
    if (this.pending >= this.threshold) this.flush(false)
  }

  /** Back to the queue, now: the delivery never reached a handler. */
  requeue(tag: number): void {
    if (!this.isOpen(tag)) return
    this.states[tag & this.mask] = Sent
    this.guard(() => this.wire.nack(tag))
  }

  /**
   * Sends the pending acks: one multiple-ack for the settled prefix, and with `all` (or when
   * acks pile up behind an unsettled tag) individual acks for the rest.
   */
  flush(all: boolean): void {
    if (!this.alive || this.pending === 0) return
    const { states, mask } = this
    let tag = this.watermark + 1
    let target = 0
    let covered = 0
    for (; tag <= this.highest && states[tag & mask] !== Unsettled; tag++) {
      // The multiple-ack's own tag must still be outstanding on the broker, so it is the last
      // pending ack of the prefix, never a tag already acked or nacked.
      if (states[tag & mask] === PendingAck) {
        target = tag
        covered++
      }
    }
    this.watermark = tag - 1
    if (covered > 0) {
      this.pending -= covered
      this.guard(() => this.wire.ack(target, true))
    }
    if (all || this.pending * 2 >= this.threshold) {
      for (let t = this.watermark + 1; t <= this.highest && this.pending > 0; t++) {
        if (states[t & mask] !== PendingAck) continue
        states[t & mask] = Sent
        this.pending--
        this.guard(() => this.wire.ack(t, false))
      }
    }
  }

  /** The channel is gone: nothing more can be settled on it. */
  kill(): void {
    this.alive = false
    this.pending = 0
  }

  private isOpen(tag: number): boolean {
    return this.alive && tag > this.watermark && tag <= this.highest && this.states[tag & this.mask] === Unsettled
  }

  private grow(): void {
    const size = (this.mask + 1) * 2
    const states = new Uint8Array(size)
    for (let tag = this.watermark + 1; tag <= this.highest; tag++) states[tag & (size - 1)] = this.states[tag & this.mask]!
    this.states = states
    this.mask = size - 1
  }

  // Writing to a channel that is closing throws; the close event that follows kills the batcher.
  private guard(send: () => void): void {
    try {
      send()
    } catch {
      this.kill()
    }
  }
}
