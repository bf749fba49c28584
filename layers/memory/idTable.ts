/**
 * Entries by integer id, in one array with open addressing, for a table whose entries come and
 * go at every operation (the memory scheduler store's running runs: one added and one removed
 * per run, at a thousand runs a second).
 *
 * Why not a `Map`: JavaScriptCore reallocates a Map's storage as entries are added and deleted,
 * and the storage it drops has often lived through a young-generation collection already, so it
 * piles up in the old generation until a full collection (about 57 bytes an add-and-delete,
 * measured with `bun:jsc` heap statistics). Here the slots are one array, reallocated only
 * when the table doubles; a removed entry's slot is cleared, so nothing it held stays reachable.
 *
 * Ids are expected to be mostly consecutive (a counter): slot = id mod capacity, linear probing,
 * and removal by shifting the following entries back (no tombstones).
 */
export class IdTable<A extends { readonly id: number }> {
  private slots: Array<A | undefined> = new Array<A | undefined>(16).fill(undefined)
  private count = 0

  get size(): number {
    return this.count
  }

  get(id: number): A | undefined {
    const slots = this.slots
    const mask = slots.length - 1
    for (let i = id & mask; ; i = (i + 1) & mask) {
      const entry = slots[i]
      if (entry === undefined) return undefined
      if (entry.id === id) return entry
    }
  }

  /** Adds `entry`, replacing the entry of the same id if there is one. */
  set(entry: A): void {
    if ((this.count + 1) * 2 > this.slots.length) this.grow()
    const slots = this.slots
    const mask = slots.length - 1
    for (let i = entry.id & mask; ; i = (i + 1) & mask) {
      const current = slots[i]
      if (current === undefined) {
        slots[i] = entry
        this.count++
        return
      }
      if (current.id === entry.id) {
        slots[i] = entry
        return
      }
    }
  }

  /** Removes the entry of `id`; whether there was one. */
  delete(id: number): boolean {
    const slots = this.slots
    const mask = slots.length - 1
    let i = id & mask
    while (true) {
      const entry = slots[i]
      if (entry === undefined) return false
      if (entry.id === id) break
      i = (i + 1) & mask
    }
    // Backward shift: move up each following entry of the run whose home slot is not between
    // the hole and it, so every entry stays reachable from its home slot without tombstones.
    let hole = i
    for (let j = (i + 1) & mask; ; j = (j + 1) & mask) {
      const entry = slots[j]
      if (entry === undefined) break
      const home = entry.id & mask
      const between = hole <= j ? hole < home && home <= j : hole < home || home <= j
      if (!between) {
        slots[hole] = entry
        hole = j
      }
    }
    slots[hole] = undefined
    this.count--
    return true
  }

  values(): Array<A> {
    const out: Array<A> = []
    for (const entry of this.slots) if (entry !== undefined) out.push(entry)
    return out
  }

  private grow(): void {
    const old = this.slots
    this.slots = new Array<A | undefined>(old.length * 2).fill(undefined)
    this.count = 0
    for (const entry of old) if (entry !== undefined) this.set(entry)
  }
}
