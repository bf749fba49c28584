/**
 * What a consumer may commit: per fetched batch (one partition, offsets ascending) the state of
 * each record from hand-out to settlement, and the consumer-wide prefetch credit.
 *
 * Kafka commits a position, not single records, so the committed offset of a partition may only
 * move over a prefix of records that are all settled: `advance` returns the last offset of that
 * prefix when it grew. A record that is dropped (stop, revoke, close) stops the prefix for good;
 * the group reads it, and everything after it, again.
 *
 * Driver-free and synchronous: the subscriber wakes its batch loops from `onChange`.
 */

/**
 * - buffered: handed to the consumer's buffer, not yet taken (again, after a retry)
 * - taken: in a handler's hands
 * - settling: a retry or dead letter is being published for it
 * - settled: may be committed
 * - dropped: will never be committed here; the group reads it again
 */
export type SlotState = "buffered" | "taken" | "settling" | "settled" | "dropped"

export interface Slot {
  readonly offset: string
  readonly batch: BatchLedger
  state: SlotState
}

const isOpen = (state: SlotState) => state === "buffered" || state === "taken" || state === "settling"

export class ConsumerLedger {
  /** Slots buffered, taken or settling, across all batches: what `prefetch` bounds. */
  outstanding = 0
  /** No more hand-outs: the consumer was stopped or is closing. */
  stopped = false
  readonly batches = new Set<BatchLedger>()

  constructor(readonly prefetch: number, private readonly onChange: () => void) {}

  get hasCredit(): boolean {
    return this.outstanding < this.prefetch
  }

  /** Deliveries in handlers' hands (taken or settling). */
  get inHand(): number {
    let n = 0
    for (const batch of this.batches) for (const slot of batch.slots) if (slot.state === "taken" || slot.state === "settling") n++
    return n
  }

  open(): BatchLedger {
    const batch = new BatchLedger(this)
    this.batches.add(batch)
    return batch
  }

  /** The batch callback returned: whatever it left open is read again by the group. */
  close(batch: BatchLedger): void {
    batch.revoke()
    this.batches.delete(batch)
  }

  /** buffered -> taken; false when the slot was dropped while it sat in the buffer. */
  take(slot: Slot): boolean {
    if (slot.state !== "buffered") return false
    slot.state = "taken"
    return true
  }

  /** taken -> settling; false when the delivery was settled already or dropped: a no-op then. */
  beginSettle(slot: Slot): boolean {
    if (slot.state !== "taken") return false
    slot.state = "settling"
    return true
  }

  /**
   * taken -> buffered, for a retry handed out again by this consumer (the record keeps its place
   * in the batch, so its offset, and all after it, stay uncommitted). False when the slot was
   * settled or dropped, or intake has stopped: then it is dropped, and the group reads it again.
   */
  requeue(slot: Slot): boolean {
    if (slot.state !== "taken") return false
    if (this.stopped || slot.batch.revoked) {
      this.transition(slot, "dropped")
      return false
    }
    slot.state = "buffered"
    return true
  }

  /** A retry or dead letter failed: the delivery is the handler's again. */
  abortSettle(slot: Slot): void {
    if (slot.state === "settling") slot.state = "taken"
  }

  settle(slot: Slot): void {
    if (slot.state === "settling") this.transition(slot, "settled")
  }

  /** Ends intake: buffered slots go back to the group, taken ones may still be settled. */
  stop(): void {
    this.stopped = true
    for (const batch of this.batches) {
      for (const slot of batch.slots) if (slot.state === "buffered") this.transition(slot, "dropped")
    }
    this.onChange()
  }

  /** The partitions are gone (rebalance, close): every open slot of every batch is dropped. */
  revokeAll(): void {
    for (const batch of this.batches) batch.revoke()
    this.onChange()
  }

  /** @internal */
  transition(slot: Slot, to: "settled" | "dropped"): void {
    if (!isOpen(slot.state)) return
    slot.state = to
    this.outstanding--
    slot.batch.pending--
    this.onChange()
  }
}

export class BatchLedger {
  readonly slots: Array<Slot> = []
  /** Slots of this batch still buffered, taken or settling. */
  pending = 0
  /** Nothing more is handed out from this batch and nothing open in it will be committed. */
  revoked = false
  /** Index of the first slot not known to be settled. */
  private prefix = 0

  constructor(private readonly ledger: ConsumerLedger) {}

  /** A record no handler sees (filtered out): settled as it is read. */
  skip(offset: string): void {
    this.slots.push({ offset, batch: this, state: "settled" })
  }

  handOut(offset: string): Slot {
    const slot: Slot = { offset, batch: this, state: "buffered" }
    this.slots.push(slot)
    this.pending++
    this.ledger.outstanding++
    return slot
  }

  /** The last offset of the settled prefix when it grew since the last call, else undefined. */
  advance(): string | undefined {
    const start = this.prefix
    while (this.prefix < this.slots.length && this.slots[this.prefix]!.state === "settled") this.prefix++
    return this.prefix > start ? this.slots[this.prefix - 1]!.offset : undefined
  }

  revoke(): void {
    this.revoked = true
    for (const slot of this.slots) this.ledger.transition(slot, "dropped")
  }
}
