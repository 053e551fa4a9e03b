// Read leases on a region leader (docs/metadata-leases.md). Pure bookkeeping: the clock and
// the waiting are injected, so a test drives it with a simulated clock.
//
// A holder (one client, on one Kv.Session stream) is granted a lease on keys it reads; while
// it holds, no write to those keys by anyone else is proposed. A write first marks its keys
// (no grants on them from then), revokes every other holder's lease on them, and proceeds
// once each has released or its lease has run out. A new leader knows nothing of its
// predecessor's grants, so it proposes no write until one longest lease after it took over.
//
// A range lease ([start, end), a directory's entries) is the same promise for every key in the
// range, present or not: a write by another holder into it revokes it. The writer's own range
// leases stay: its client keeps its copy of the range in step with what it writes.

/** A lease holder: a client on one session stream (identity, by object). */
export interface LeaseHolder {
  /** The stream can still carry a revoke. */
  alive(): boolean
  /** Tells the client to drop `keys` and answer release(revokeId). */
  revoke(revokeId: number, keys: Buffer[]): void
}

export interface LeaseClock {
  now(): number
  sleep(ms: number): Promise<void>
}

/** Keys that are never leased, and ranges that might hold one (docs/metadata-leases.md, "No
 * leases on file data"): a lease naming one is refused, and a write does not mark them. */
export interface Unleasable {
  key(k: Buffer): boolean
  range(start: Buffer, end: Buffer): boolean
}

interface Revoking {
  resolve(): void
}

interface RangeLease {
  readonly holder: LeaseHolder
  /** [start, end) as latin1 strings (their order is the bytes' order). */
  readonly start: string
  readonly end: string
  until: number
}

export class LeaseTable {
  /** key (latin1) -> holder -> when its lease ends (leader's clock). */
  private readonly byKey = new Map<string, Map<LeaseHolder, number>>()
  /** Range leases, unordered (few: one per directory a client looks names up in). */
  private ranges: RangeLease[] = []
  /** Keys with a write marked (count of writes). No grants on them. */
  private readonly writing = new Map<string, number>()
  private readonly revoking = new Map<number, Revoking & { holder: LeaseHolder; keys: string[] }>()
  private nextRevoke = 1
  /** No write is proposed before this (a new leader waits out its predecessor's leases). */
  private writableAt: number
  private sweepAt = 0

  constructor(
    private readonly clock: LeaseClock,
    /** The longest lease granted (ms). */
    readonly maxMs: number,
    /** Keys never leased (none by default). */
    private readonly unleasable?: Unleasable,
  ) {
    this.writableAt = clock.now() + maxMs
  }

  /** Leadership changed (gained or lost): forget every grant; wait out the old ones. */
  reset(): void {
    this.byKey.clear()
    this.ranges = []
    for (const r of this.revoking.values()) r.resolve()
    this.revoking.clear()
    this.writableAt = this.clock.now() + this.maxMs
  }

  /** Grants `holder` a lease of up to `ms` on every key, or none (0) when a write is marked
   * on any of them. Call it before the keys are read: a write marked after it revokes it. */
  grant(holder: LeaseHolder, keys: readonly Buffer[], ms: number): number {
    const len = Math.min(ms, this.maxMs)
    if (len <= 0) return 0
    const never = this.unleasable
    if (never && keys.some((k) => never.key(k))) return 0
    const ks = keys.map((k) => k.toString('latin1'))
    if (ks.some((k) => this.writing.has(k))) return 0
    const now = this.clock.now()
    this.sweep(now)
    const until = now + len
    for (const k of ks) {
      let m = this.byKey.get(k)
      if (!m) this.byKey.set(k, (m = new Map()))
      m.set(holder, Math.max(until, m.get(holder) ?? 0))
    }
    return len
  }

  /** Grants `holder` a lease of up to `ms` on every key in [start, end), present or not, or
   * none (0) when a write is marked on a key in it. Call it before the range is read. */
  grantRange(holder: LeaseHolder, start: Buffer, end: Buffer, ms: number): number {
    const len = Math.min(ms, this.maxMs)
    if (len <= 0) return 0
    if (this.unleasable?.range(start, end)) return 0
    const lo = start.toString('latin1')
    const hi = end.toString('latin1')
    if (lo >= hi) return 0
    for (const k of this.writing.keys()) if (k >= lo && k < hi) return 0
    const now = this.clock.now()
    this.sweep(now)
    const until = now + len
    const same = this.ranges.find((r) => r.holder === holder && r.start === lo && r.end === hi)
    if (same) same.until = Math.max(same.until, until)
    else this.ranges.push({ holder, start: lo, end: hi, until })
    return len
  }

  /**
   * Marks a write of `keys` by `writer` (null: a writer that holds no leases). Resolves, once
   * the write may be proposed, to the function that unmarks it (call it after the write is
   * applied or has failed). The writer's own leases on the keys end here: it drops them itself.
   * Keys never leased are not marked: nobody can hold a lease on them.
   */
  async beginWrite(writer: LeaseHolder | null, keys: readonly Buffer[]): Promise<() => void> {
    const never = this.unleasable
    const ks = [...new Set((never ? keys.filter((k) => !never.key(k)) : keys).map((k) => k.toString('latin1')))]
    for (const k of ks) this.writing.set(k, (this.writing.get(k) ?? 0) + 1)
    const end = () => {
      for (const k of ks) {
        const n = (this.writing.get(k) ?? 1) - 1
        if (n <= 0) this.writing.delete(k)
        else this.writing.set(k, n)
      }
    }
    try {
      const wait = this.writableAt - this.clock.now()
      if (wait > 0) await this.clock.sleep(wait)
      // Every other holder's unexpired leases on these keys, by holder.
      const now = this.clock.now()
      const held = new Map<LeaseHolder, { keys: string[]; until: number }>()
      for (const k of ks) {
        const m = this.byKey.get(k)
        if (!m) continue
        if (writer) m.delete(writer)
        for (const [h, until] of m) {
          if (until <= now) {
            m.delete(h)
            continue
          }
          let e = held.get(h)
          if (!e) held.set(h, (e = { keys: [], until }))
          e.keys.push(k)
          e.until = Math.max(e.until, until)
        }
        if (m.size === 0) this.byKey.delete(k)
      }
      // Other holders' range leases over any of the keys: revoked by the keys written in them.
      for (const r of this.ranges) {
        if (r.holder === writer) continue
        if (r.until <= now) continue
        const inside = ks.filter((k) => k >= r.start && k < r.end)
        if (inside.length === 0) continue
        let e = held.get(r.holder)
        if (!e) held.set(r.holder, (e = { keys: [], until: r.until }))
        for (const k of inside) if (!e.keys.includes(k)) e.keys.push(k)
        e.until = Math.max(e.until, r.until)
      }
      await Promise.all([...held].map(([h, e]) => this.revokeOne(h, e.keys, e.until)))
      return end
    } catch (err) {
      end()
      throw err
    }
  }

  /** The holder answered a revoke: its leases on those keys are gone. */
  release(holder: LeaseHolder, revokeId: number): void {
    const r = this.revoking.get(revokeId)
    if (!r || r.holder !== holder) return
    this.revoking.delete(revokeId)
    this.forget(holder, r.keys)
    r.resolve()
  }

  /** Keys with a lease (for tests and status). */
  get leasedKeys(): number {
    return this.byKey.size
  }

  /** Range leases registered (for tests). */
  get leasedRanges(): number {
    return this.ranges.length
  }

  private async revokeOne(h: LeaseHolder, keys: string[], until: number): Promise<void> {
    if (h.alive()) {
      const id = this.nextRevoke++
      let resolve!: () => void
      const released = new Promise<void>((res) => (resolve = res))
      this.revoking.set(id, { holder: h, keys, resolve })
      try {
        h.revoke(id, keys.map((k) => Buffer.from(k, 'latin1')))
      } catch {
        // the stream broke while sending: its leases run out instead
      }
      await Promise.race([released, this.clock.sleep(Math.max(0, until - this.clock.now()))])
      this.revoking.delete(id)
    } else {
      await this.clock.sleep(Math.max(0, until - this.clock.now()))
    }
    this.forget(h, keys)
  }

  private forget(h: LeaseHolder, keys: string[]): void {
    for (const k of keys) {
      const m = this.byKey.get(k)
      if (!m) continue
      m.delete(h)
      if (m.size === 0) this.byKey.delete(k)
    }
    // The holder drops every range holding one of the keys (the client does the same).
    this.ranges = this.ranges.filter((r) => r.holder !== h || !keys.some((k) => k >= r.start && k < r.end))
  }

  /** Drops expired leases now and then, so the table is bounded by what is live. */
  private sweep(now: number): void {
    if (now < this.sweepAt) return
    this.sweepAt = now + this.maxMs
    for (const [k, m] of this.byKey) {
      for (const [h, until] of m) if (until <= now) m.delete(h)
      if (m.size === 0) this.byKey.delete(k)
    }
    this.ranges = this.ranges.filter((r) => r.until > now)
  }
}
