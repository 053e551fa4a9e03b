// The client's side of read leases (docs/metadata-leases.md): values read under a lease,
// answered from memory until the lease ends by this client's clock, which is always before
// the leader's. Pure bookkeeping; the clock is injected.
//
// Three things drop a value: a revoke from the leader; this client's own commit of the key
// (the leader does not revoke the writer's own leases, the writer drops them); and the end of
// the lease. A read that was on its way while one of those happened is not cached: a revoke
// that overtook the read's answer, or a commit of the key sent before the answer came, may
// mean the answer is older than the write.

/** The fraction of a granted lease this client uses (the rest covers clock-rate drift). */
export const LEASE_USE = 0.9
/** And a fixed margin (ms). */
export const LEASE_MARGIN_MS = 2

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

export class LeaseCache {
  private readonly map = new Map<string, Cached>()
  private bytes = 0
  /** Commits of ours in flight, per key. */
  private readonly writing = new Map<string, number>()
  private readonly reads = new Set<LeaseRead>()
  /** Keys a revoke named while a commit of ours was writing them: that commit's answer may
   * have been overtaken by the revoke, so its lease is not used. */
  private readonly revokedWhileWriting = new Set<string>()
  hits = 0

  constructor(
    private readonly now: () => number,
    private readonly maxEntries = 16_384,
    private readonly maxBytes = 8 * 1024 * 1024,
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
    for (const k of keys) {
      this.drop(k)
      this.writing.set(k, (this.writing.get(k) ?? 0) + 1)
      for (const r of this.reads) r.voided.add(k)
    }
  }

  /** That commit is answered (or failed, or its outcome is unknown). A commit that applied
   * may come with a lease on what it wrote (`written`, with leaseMs from the leader,
   * measured from `sentAt`): cached for each key no other commit of ours is writing. */
  endWrite(keys: readonly string[], written?: { values: readonly (Buffer | undefined)[]; leaseMs: number; sentAt: number }): void {
    keys.forEach((k, i) => {
      const n = (this.writing.get(k) ?? 1) - 1
      if (n <= 0) this.writing.delete(k)
      else this.writing.set(k, n)
      this.drop(k)
      if (n > 0) return
      const revoked = this.revokedWhileWriting.delete(k)
      if (written && written.leaseMs > 0 && !revoked) this.set(k, written.values[i], written.sentAt + written.leaseMs * LEASE_USE - LEASE_MARGIN_MS)
    })
  }

  /** This cache's clock (ms). */
  time(): number {
    return this.now()
  }

  /** The leader revoked our leases on `keys`. */
  revoke(keys: readonly string[]): void {
    for (const k of keys) {
      this.drop(k)
      for (const r of this.reads) r.voided.add(k)
      if (this.writing.has(k)) this.revokedWhileWriting.add(k)
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

  private drop(key: string): void {
    const c = this.map.get(key)
    if (!c) return
    this.map.delete(key)
    this.bytes -= key.length + (c.value?.length ?? 0)
  }
}
