/**
 * An exact set of message ids that stays small when the ids are UUIDs.
 *
 * The in-memory counter remembers every id it has counted, so this set is what its memory grows
 * with. A JavaScript `Set<string>` of UUIDs costs about 240 bytes per id (the string, its
 * characters, the hash-table entry); here a canonical lowercase UUID is stored as its 16 bytes in
 * an open-addressing table, 21 to 43 bytes per id with the table's slack. Any other id (another
 * format, upper case, the nil UUID) goes to an ordinary `Set`, so membership is exactly string
 * equality either way: nothing is hashed down or lost.
 *
 * The table is split in shards that grow one at a time, so growing never holds two copies of the
 * whole table at once.
 */
const Words = 4
const ShardBits = 6
const Shards = 1 << ShardBits
const InitialSlots = 64

class Shard {
  table = new Int32Array(InitialSlots * Words)
  mask = InitialSlots - 1
  size = 0
}

export class IdSet {
  private readonly shards = Array.from({ length: Shards }, () => new Shard())
  private compact = 0
  private readonly others = new Set<string>()
  // The last parsed UUID and its hash, so the hot path allocates nothing.
  private w0 = 0
  private w1 = 0
  private w2 = 0
  private w3 = 0
  private hash = 0

  get size(): number {
    return this.compact + this.others.size
  }

  has(id: string): boolean {
    if (!this.parse(id)) return this.others.has(id)
    const shard = this.shard()
    return occupied(shard.table, this.find(shard))
  }

  /** Adds `id`; true when it was not in the set before. */
  add(id: string): boolean {
    if (!this.parse(id)) {
      if (this.others.has(id)) return false
      this.others.add(id)
      return true
    }
    const shard = this.shard()
    const slot = this.find(shard)
    if (occupied(shard.table, slot)) return false
    this.store(shard, slot)
    this.compact++
    if (++shard.size * 4 > (shard.mask + 1) * 3) this.grow(shard)
    return true
  }

  private shard(): Shard {
    return this.shards[this.hash >>> (32 - ShardBits)]!
  }

  /** The slot holding the parsed id, or the empty slot where it would go (linear probing). */
  private find(shard: Shard): number {
    const t = shard.table
    const w0 = this.w0, w1 = this.w1, w2 = this.w2, w3 = this.w3
    let slot = this.hash & shard.mask
    while (true) {
      const i = slot * Words
      const a = t[i]!, b = t[i + 1]!, c = t[i + 2]!, d = t[i + 3]!
      if ((a | b | c | d) === 0) return slot
      if (a === w0 && b === w1 && c === w2 && d === w3) return slot
      slot = (slot + 1) & shard.mask
    }
  }

  private store(shard: Shard, slot: number): void {
    const t = shard.table
    const i = slot * Words
    t[i] = this.w0
    t[i + 1] = this.w1
    t[i + 2] = this.w2
    t[i + 3] = this.w3
  }

  private grow(shard: Shard): void {
    const old = shard.table
    shard.table = new Int32Array(old.length * 2)
    shard.mask = shard.table.length / Words - 1
    for (let i = 0; i < old.length; i += Words) {
      if ((old[i]! | old[i + 1]! | old[i + 2]! | old[i + 3]!) === 0) continue
      this.w0 = old[i]!
      this.w1 = old[i + 1]!
      this.w2 = old[i + 2]!
      this.w3 = old[i + 3]!
      this.hash = mix(this.w0, this.w1, this.w2, this.w3)
      this.store(shard, this.find(shard))
    }
  }

  /** Reads a canonical lowercase UUID (8-4-4-4-12 hex digits) into w0..w3; false for anything else. */
  private parse(id: string): boolean {
    if (
      id.length !== 36 || id.charCodeAt(8) !== 45 || id.charCodeAt(13) !== 45 || id.charCodeAt(18) !== 45 ||
      id.charCodeAt(23) !== 45
    ) return false
    const a = hex(id, 0, 8), b = hex(id, 9, 13), c = hex(id, 14, 18)
    const d = hex(id, 19, 23), e = hex(id, 24, 28), f = hex(id, 28, 36)
    if (a < 0 || b < 0 || c < 0 || d < 0 || e < 0 || f < 0) return false
    // As int32, which the table holds.
    const w0 = a | 0, w1 = (b << 16) | c, w2 = (d << 16) | e, w3 = f | 0
    if ((w0 | w1 | w2 | w3) === 0) return false
    this.w0 = w0
    this.w1 = w1
    this.w2 = w2
    this.w3 = w3
    this.hash = mix(w0, w1, w2, w3)
    return true
  }
}

// A slot is empty when all four words are zero; the nil UUID, the only id that would look empty,
// is never parsed into the table.
const occupied = (t: Int32Array, slot: number): boolean => {
  const i = slot * Words
  return (t[i]! | t[i + 1]! | t[i + 2]! | t[i + 3]!) !== 0
}

// Mixes all 128 bits: time-ordered UUIDs (v1, v7) share their leading bits. The top bits pick
// the shard, the low bits the slot.
const mix = (a: number, b: number, c: number, d: number): number => {
  let h = Math.imul(a ^ (a >>> 16), 0x85ebca6b) ^ b
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) ^ c
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b) ^ d
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35)
  return (h ^ (h >>> 16)) >>> 0
}

/** The lowercase hex digits id[from, to) as an unsigned number, or -1. */
const hex = (id: string, from: number, to: number): number => {
  let value = 0
  for (let i = from; i < to; i++) {
    const c = id.charCodeAt(i)
    if (c >= 48 && c <= 57) value = value * 16 + (c - 48)
    else if (c >= 97 && c <= 102) value = value * 16 + (c - 87)
    else return -1
  }
  return value
}
