// The client's side of read leases (docs/metadata-leases.md): values read under a lease,
// answered from memory until the lease ends by this client's clock, which is always before
// the leader's. Pure bookkeeping; the clock is injected.
//
// Three things drop a value: a revoke from the leader; this client's own commit of the key
// (the leader does not revoke the writer's own leases, the writer drops them); and the end of
// the lease. A read that was on its way while one of those happened is not cached: a revoke
// that overtook the read's answer, or a commit of the key sent before the answer came, may
// mean the answer is older than the write.
//
// A commit's answer may lease what it wrote. While several commits of ours on a key are in
// flight their answers can come in any order, so the value cached when the last one is
// answered is the one written at the highest log index, and only if that commit's answer
// carried a lease: an older commit's lease may predate a newer one of ours, which the leader
// does not revoke (the seeded model test found exactly that).

// A range lease (a directory's entries) is kept as the scan that got it: every key in the range
// is answered from it, present or absent, while no commit of ours into the range is on its
// way. When that commit is answered applied, its writes go into the range (nobody else wrote
// there: the leader would have revoked the range first); any other outcome, or a second commit
// of ours into the range while one is on its way, drops the range.

/** The fraction of a granted lease this client uses (the rest covers clock-rate drift). */
export const LEASE_USE = 0.9
/** And a fixed margin (ms). */
export const LEASE_MARGIN_MS = 2

/** Our commits in flight on one key, and the answer with the highest index so far. */
interface Writing {
  n: number
  index: number
  value: Buffer | undefined
  /** Its lease's end by our clock; 0: none. */
  until: number
  /** A revoke named the key, or a commit's outcome was unknown: cache nothing from this run. */
  tainted: boolean
}

interface Cached {
  value: Buffer | undefined
  until: number
}

/** A leased read on its way. */
export interface LeaseRead {
  readonly sentAt: number
  /** Keys not to cache from its answer: a commit of ours was writing them when the read was
   * sent or started since, or a revoke named them since. */
  readonly voided: Set<string>
}

/** A range read under a range lease. */
interface CachedRange {
  readonly start: string
  readonly end: string
  /** The keys present, with their values and versions (for the transactions' read cache). */
  readonly values: Map<string, { value: Buffer; version: number }>
  readonly until: number
  bytes: number
  /** Commits of ours into the range on their way (0 or 1: a second drops the range). */
  writing: number
}

/** A leased range scan on its way. */
export interface RangeRead {
  readonly sentAt: number
  readonly start: string
  readonly end: string
  /** A commit of ours into the range was on its way when it was sent or started since, or a
   * revoke named a key in it since: its answer is not cached. */
  voided: boolean
}

/** Ranges kept at most (each a directory; 8 MiB in all bounds them too). */
const MAX_RANGES = 1024
/** A range whose scan got no lease (an old node, a write in the way) is read key by key for
 * this long (ms) before its scan is tried again: one scan a second at most. */
export const RANGE_RETRY_MS = 1_000
/** The same for a range too large for one scan (a directory grows slowly). */
export const RANGE_TOO_LARGE_RETRY_MS = 30_000

function within(k: string, lo: string, hi: string): boolean {
  return k >= lo && k < hi
}

export class LeaseCache {
  /** By start (a key is in at most one: an overlapping range replaces the older); insertion
   * order is age, for eviction. */
  private readonly ranges = new Map<string, CachedRange>()
  private rangeBytes = 0
  private readonly rangeReads = new Set<RangeRead>()
  /** Ranges not to scan again before the time given (start -> ms). */
  private readonly rangeRefused = new Map<string, number>()
  private readonly map = new Map<string, Cached>()
  private bytes = 0
  /** Commits of ours in flight, per key, and what their answers said so far. */
  private readonly writing = new Map<string, Writing>()
  private readonly reads = new Set<LeaseRead>()
  hits = 0

  constructor(
    private readonly now: () => number,
    private readonly maxEntries = 16_384,
    private readonly maxBytes = 8 * 1024 * 1024,
    private readonly rangeRetryMs = RANGE_RETRY_MS,
  ) {}

  /** The cached answer for `key` ({ value } with value undefined: absent), or null. */
  lookup(key: string): { value: Buffer | undefined } | null {
    const c = this.map.get(key)
    if (!c) return null
    if (c.until <= this.now()) {
      this.drop(key)
      return null
    }
    this.hits++
    return c
  }

  /** The answer for `key` from the leased range starting at `start` (the one the key belongs
   * to): { value } (undefined: absent); 'busy' when a commit of ours into that range is on its
   * way (ask the leader); null when no live range holds it. One map lookup: this is on every
   * lookup of a name. */
  lookupRange(key: string, start: string): { value: Buffer | undefined; version: number } | 'busy' | null {
    const r = this.ranges.get(start)
    if (!r || !within(key, r.start, r.end)) return null
    if (r.until <= this.now()) {
      this.dropRange(r)
      return null
    }
    if (r.writing > 0) return 'busy'
    this.hits++
    const e = r.values.get(key)
    return e ? { value: e.value, version: e.version } : { value: undefined, version: 0 }
  }

  /** Whether a leased scan of [start, end) is worth sending now (no recent refusal). */
  rangeWanted(start: string): boolean {
    const t = this.rangeRefused.get(start)
    if (t === undefined) return true
    if (t > this.now()) return false
    this.rangeRefused.delete(start)
    return true
  }

  beginRangeRead(start: string, end: string): RangeRead {
    let voided = false
    for (const k of this.writing.keys()) if (within(k, start, end)) voided = true
    const r: RangeRead = { sentAt: this.now(), start, end, voided }
    this.rangeReads.add(r)
    return r
  }

  /** The range scan's answer: every key present in [start, end) with its value, the whole
   * range when leaseMs > 0 (0: no lease; the range is not scanned again for retryMs). */
  endRangeRead(r: RangeRead, present: readonly { key: string; value: Buffer; version?: number }[], leaseMs: number, retryMs = this.rangeRetryMs): void {
    this.rangeReads.delete(r)
    if (leaseMs <= 0) {
      if (this.rangeRefused.size >= 4096) this.rangeRefused.clear()
      this.rangeRefused.set(r.start, this.now() + retryMs)
      return
    }
    if (r.voided) return
    const until = r.sentAt + leaseMs * LEASE_USE - LEASE_MARGIN_MS
    if (until <= this.now()) return
    for (const old of [...this.ranges.values()]) if (old.start < r.end && r.start < old.end) this.dropRange(old)
    const values = new Map<string, { value: Buffer; version: number }>()
    let bytes = 0
    for (const e of present) {
      values.set(e.key, { value: e.value, version: e.version ?? 0 })
      bytes += e.key.length + e.value.length
    }
    if (bytes > this.maxBytes / 4) return
    this.ranges.set(r.start, { start: r.start, end: r.end, values, until, bytes, writing: 0 })
    this.rangeBytes += bytes
    while (this.ranges.size > MAX_RANGES || this.rangeBytes > this.maxBytes) this.dropRange(this.ranges.values().next().value as CachedRange)
  }

  abortRangeRead(r: RangeRead): void {
    this.rangeReads.delete(r)
  }

  /** Ranges held (for tests). */
  get rangeCount(): number {
    return this.ranges.size
  }

  beginRead(keys: readonly string[]): LeaseRead {
    const r: LeaseRead = { sentAt: this.now(), voided: new Set() }
    for (const k of keys) if (this.writing.has(k)) r.voided.add(k)
    this.reads.add(r)
    return r
  }

  /** The read's answer: each key's value (undefined: absent), under a lease of leaseMs (0:
   * none granted, nothing is cached). */
  endRead(r: LeaseRead, answers: readonly { key: string; value: Buffer | undefined }[], leaseMs: number): void {
    this.reads.delete(r)
    if (leaseMs > 0) {
      const until = r.sentAt + leaseMs * LEASE_USE - LEASE_MARGIN_MS
      for (const a of answers) {
        if (!r.voided.has(a.key)) this.set(a.key, a.value, until)
      }
    }
  }

  /** The read failed: nothing to cache. */
  abortRead(r: LeaseRead): void {
    this.reads.delete(r)
  }

  /** A commit of ours that writes `keys` is about to be sent. */
  beginWrite(keys: readonly string[]): void {
    for (const r of [...this.ranges.values()]) {
      if (!keys.some((k) => within(k, r.start, r.end))) continue
      if (r.writing > 0) this.dropRange(r)
      else r.writing++
    }
    for (const rr of this.rangeReads) if (keys.some((k) => within(k, rr.start, rr.end))) rr.voided = true
    for (const k of keys) {
      this.drop(k)
      const w = this.writing.get(k)
      if (w) w.n++
      else this.writing.set(k, { n: 1, index: 0, value: undefined, until: 0, tainted: false })
      for (const r of this.reads) r.voided.add(k)
    }
  }

  /** That commit is answered: applied at log `index` (written: the values, and leaseMs from the
   * leader, measured from `sentAt`), or failed, or its outcome is unknown (no `written`). When
   * no other commit of ours is writing a key, the answer with the highest index among that
   * run's is cached, if it came with a lease, no revoke named the key meanwhile, and no
   * commit's outcome was unknown. */
  endWrite(keys: readonly string[], written?: { values: readonly (Buffer | undefined)[]; leaseMs: number; sentAt: number; index: number }): void {
    for (const r of [...this.ranges.values()]) {
      const inside = keys.map((k, i) => i).filter((i) => within(keys[i] as string, r.start, r.end))
      if (inside.length === 0) continue
      if (r.writing > 0) r.writing--
      if (!written) {
        this.dropRange(r)
        continue
      }
      for (const i of inside) {
        const k = keys[i] as string
        const prev = r.values.get(k)?.value
        if (prev) r.bytes -= k.length + prev.length
        if (prev) this.rangeBytes -= k.length + prev.length
        const v = written.values[i]
        if (v === undefined) r.values.delete(k)
        else {
          r.values.set(k, { value: v, version: written.index })
          r.bytes += k.length + v.length
          this.rangeBytes += k.length + v.length
        }
      }
    }
    keys.forEach((k, i) => {
      const w = this.writing.get(k)
      if (!w) return
      this.drop(k)
      if (!written) w.tainted = true
      else if (written.index > w.index) {
        w.index = written.index
        w.value = written.values[i]
        w.until = written.leaseMs > 0 ? written.sentAt + written.leaseMs * LEASE_USE - LEASE_MARGIN_MS : 0
      }
      if (--w.n > 0) return
      this.writing.delete(k)
      if (!w.tainted && w.until > 0) this.set(k, w.value, w.until)
    })
  }

  /** This cache's clock (ms). */
  time(): number {
    return this.now()
  }

  /** The leader revoked our leases on `keys`. */
  revoke(keys: readonly string[]): void {
    for (const r of [...this.ranges.values()]) if (keys.some((k) => within(k, r.start, r.end))) this.dropRange(r)
    for (const rr of this.rangeReads) if (keys.some((k) => within(k, rr.start, rr.end))) rr.voided = true
    for (const k of keys) {
      this.drop(k)
      for (const r of this.reads) r.voided.add(k)
      const w = this.writing.get(k)
      if (w) w.tainted = true
    }
  }

  get size(): number {
    return this.map.size
  }

  private set(key: string, value: Buffer | undefined, until: number): void {
    if (until <= this.now()) return
    this.drop(key)
    const n = key.length + (value?.length ?? 0)
    if (n > this.maxBytes / 64) return
    this.map.set(key, { value, until })
    this.bytes += n
    while (this.map.size > this.maxEntries || this.bytes > this.maxBytes) this.drop(this.map.keys().next().value as string)
  }

  private dropRange(r: CachedRange): void {
    if (this.ranges.get(r.start) !== r) return
    this.ranges.delete(r.start)
    this.rangeBytes -= r.bytes
  }

  private drop(key: string): void {
    const c = this.map.get(key)
    if (!c) return
    this.map.delete(key)
    this.bytes -= key.length + (c.value?.length ?? 0)
  }
}
