/**
 * The jobs' next occurrences, earliest first: one binary min-heap that the scheduler's single
 * timer fiber sleeps on, instead of a sleeping fiber (and a runtime timer) per job. With 10 000
 * jobs the fibers cost more memory than everything else the scheduler keeps, and each of them
 * woke on a timer of its own.
 *
 * Ties keep no particular order; the scheduler takes every entry due at once as one batch.
 * An entry taken can be put back with a later time (`reschedule`): a job keeps one entry for as
 * long as the timer runs, instead of a new one per occurrence (at a thousand occurrences a second,
 * each lived ten seconds, long enough for the collector to promote it, then died).
 */
export interface Due<A> {
  /** Epoch millis. */
  readonly at: number
  readonly value: A
}

interface Entry<A> {
  at: number
  readonly value: A
}

export class DueQueue<A> {
  private readonly heap: Array<Entry<A>> = []

  get size(): number {
    return this.heap.length
  }

  /** The earliest entry's time; undefined when empty. */
  peek(): number | undefined {
    return this.heap[0]?.at
  }

  /** Adds `value` due at `at`; the entry returned can be rescheduled once taken. */
  push(at: number, value: A): Due<A> {
    const entry: Entry<A> = { at, value }
    this.insert(entry)
    return entry
  }

  /** Puts `entry`, taken by `takeDue`, back in the queue due at `at`. */
  reschedule(entry: Due<A>, at: number): void {
    const mutable = entry as Entry<A>
    mutable.at = at
    this.insert(mutable)
  }

  private insert(entry: Entry<A>): void {
    const heap = this.heap
    const at = entry.at
    let i = heap.push(entry) - 1
    while (i > 0) {
      const parent = (i - 1) >> 1
      if (heap[parent]!.at <= at) break
      heap[i] = heap[parent]!
      i = parent
    }
    heap[i] = entry
  }

  /** Removes and returns every entry due at or before `now`, earliest first. */
  takeDue(now: number): Array<Due<A>> {
    const out: Array<Entry<A>> = []
    while (this.heap.length > 0 && this.heap[0]!.at <= now) out.push(this.pop()!)
    return out
  }

  private pop(): Entry<A> | undefined {
    const heap = this.heap
    const top = heap[0]
    const last = heap.pop()
    if (top === undefined || last === undefined || heap.length === 0) return top
    const size = heap.length
    let i = 0
    while (true) {
      const left = 2 * i + 1
      if (left >= size) break
      const right = left + 1
      const child = right < size && heap[right]!.at < heap[left]!.at ? right : left
      if (heap[child]!.at >= last.at) break
      heap[i] = heap[child]!
      i = child
    }
    heap[i] = last
    return top
  }
}
