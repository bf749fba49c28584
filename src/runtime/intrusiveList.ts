/**
 * A list whose entries carry their own links, in insertion order, for sets of in-flight work
 * that change at every operation: the attempts a scheduler runs, the calls a watchdog watches.
 *
 * Why not a `Set` or `Map`: JavaScriptCore reallocates their storage as entries come and go,
 * and a dropped storage that has lived through a young-generation collection is old garbage
 * which, having been written to, keeps the young objects it still points at (fibers, runs,
 * their contexts) alive through the next young collection too. With a thousand runs a second
 * of jobs that wait 2 ms, that grew a scheduler's old generation by about 1 MB a second until a
 * full collection (and its RSS with it). Here adding and removing allocate nothing, and a
 * removed entry's links are cleared, so it holds nothing alive.
 */
export interface Links<T> {
  prev: T | undefined
  next: T | undefined
  /** Whether the entry is in its list now. */
  linked: boolean
}

export class IntrusiveList<T extends Links<T>> {
  private head: T | undefined = undefined
  private tail: T | undefined = undefined
  private count = 0

  get size(): number {
    return this.count
  }

  /** The entry added first of those still in. */
  get first(): T | undefined {
    return this.head
  }

  push(entry: T): void {
    if (entry.linked) return
    entry.linked = true
    entry.prev = this.tail
    entry.next = undefined
    if (this.tail === undefined) this.head = entry
    else this.tail.next = entry
    this.tail = entry
    this.count++
  }

  /** Takes `entry` out (nothing when it is not in); whether it was in. */
  remove(entry: T): boolean {
    if (!entry.linked) return false
    const { prev, next } = entry
    if (prev === undefined) this.head = next
    else prev.next = next
    if (next === undefined) this.tail = prev
    else next.prev = prev
    entry.prev = undefined
    entry.next = undefined
    entry.linked = false
    this.count--
    return true
  }

  /** The first entry `predicate` accepts. */
  find(predicate: (entry: T) => boolean): T | undefined {
    for (let entry = this.head; entry !== undefined; entry = entry.next) if (predicate(entry)) return entry
    return undefined
  }

  /** The entries in insertion order, as an array (a copy: removing while going through it is safe). */
  toArray(): Array<T> {
    const out: Array<T> = []
    for (let entry = this.head; entry !== undefined; entry = entry.next) out.push(entry)
    return out
  }
}
