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

export interface AckWire<M> {
  readonly ack: (message: M, multiple: boolean) => void
  readonly nack: (message: M) => void
}

const Unsettled = 0
const PendingAck = 1
/** Acked or nacked on the wire already, but not yet below the watermark. */
const Sent = 2

interface Entry<M> {
  readonly message: M
  state: typeof Unsettled | typeof PendingAck | typeof Sent
}

export class AckBatcher<M> {
  private readonly entries = new Map<number, Entry<M>>()
  /** Every tag up to here is settled on the wire. */
  private watermark = 0
  private pending = 0
  private alive = true

  constructor(
    private readonly wire: AckWire<M>,
    /** Pending acks that trigger a flush without waiting for the timer. */
    private readonly threshold: number,
    /** Called when the first ack becomes pending, to arm the flush timer. */
    private readonly onPending: () => void
  ) {}

  get isAlive(): boolean {
    return this.alive
  }

  delivered(tag: number, message: M): void {
    if (this.alive) this.entries.set(tag, { message, state: Unsettled })
  }

  ack(tag: number): void {
    const entry = this.entries.get(tag)
    if (!this.alive || entry === undefined || entry.state !== Unsettled) return
    entry.state = PendingAck
    if (this.pending++ === 0) this.onPending()
    if (this.pending >= this.threshold) this.flush(false)
  }

  /** Back to the queue, now: the delivery never reached a handler. */
  requeue(tag: number): void {
    const entry = this.entries.get(tag)
    if (!this.alive || entry === undefined || entry.state !== Unsettled) return
    entry.state = Sent
    this.guard(() => this.wire.nack(entry.message))
  }

  /**
   * Sends the pending acks: one multiple-ack for the settled prefix, and with `all` (or when
   * acks pile up behind an unsettled tag) individual acks for the rest.
   */
  flush(all: boolean): void {
    if (!this.alive || this.pending === 0) return
    let tag = this.watermark + 1
    let target: Entry<M> | undefined
    let covered = 0
    for (let entry = this.entries.get(tag); entry !== undefined && entry.state !== Unsettled; entry = this.entries.get(tag)) {
      // The multiple-ack's own tag must still be outstanding on the broker, so it is the last
      // pending ack of the prefix, never a tag already acked or nacked.
      if (entry.state === PendingAck) {
        target = entry
        covered++
      }
      this.entries.delete(tag)
      tag++
    }
    this.watermark = tag - 1
    if (target !== undefined) {
      this.pending -= covered
      const message = target.message
      this.guard(() => this.wire.ack(message, true))
    }
    if (all || this.pending * 2 >= this.threshold) {
      for (const entry of this.entries.values()) {
        if (entry.state !== PendingAck) continue
        entry.state = Sent
        this.pending--
        const message = entry.message
        this.guard(() => this.wire.ack(message, false))
      }
    }
  }

  /** The channel is gone: nothing more can be settled on it. */
  kill(): void {
    this.alive = false
    this.entries.clear()
    this.pending = 0
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
