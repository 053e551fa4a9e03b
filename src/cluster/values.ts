// The value keeper: decides when a segment the Raft log has left can go, and cleans the ones
// mostly dead (docs/node-store.md, "Steps 2-3: pointer values and value segments").
//
// A block value of 4 KiB or more is stored once, in the Raft log's segment that carries its
// entry; the replica's `z` key holds a pointer to it and a `P` record says which key a pointer
// into each place was written for. When the log no longer needs a segment, the store keeps
// it as a value segment and tells the keeper, which:
//   1. lands every replica's applied writes (so every `P` record of the segment is in LevelDB),
//   2. reads the segment's `P` range and checks each record against the key's current value,
//   3. deletes the segment if nothing live is left, after one synced batch that drops its `P`
//      records and its marker (that sync makes every overwrite that killed them durable),
//   4. or, below half live, rewrites its live values inline through each replica's own write
//      queue, then does the same.
// A segment the log has left never gets a new pointer, so a dead record stays dead: the checks
// need no lock against applies.
import { crc32c } from '@node-rs/crc32'
import type { ClassicLevel } from 'classic-level'
import { keyInRegion } from '../rpc'
import type { SegmentRaftStore } from '../raft'
import type { BatchOp } from '../util/leveldb'
import type { Logger } from '../util/log'
import { decodePointer, isPointer, pointerKey, type Pointer, type RegionReplica } from './region'

type Db = ClassicLevel<Buffer, Buffer>

/** How often value segments are looked at for cleaning (POLYFS_VALUE_CLEAN_MS). */
const DEFAULT_INTERVAL_MS = 10_000
/** Value segments looked at per round (besides those the log has just left). */
const PER_ROUND = 4
/** A segment with less than this share of its bytes live is cleaned. */
const CLEAN_BELOW = 0.5

export interface ValueKeeperOptions {
  readonly db: Db
  readonly store: SegmentRaftStore
  /** Every region replica this node hosts. */
  readonly replicas: () => Iterable<RegionReplica>
  readonly logger: Logger
  readonly intervalMs?: number
}

export type Verdict = 'deleted' | 'cleaned' | 'kept'

export class ValueKeeper {
  /** Segments the log has left since the last round: looked at first. */
  private readonly fresh: number[] = []
  /** Where the round robin over the older value segments goes on. */
  private cursor = 0
  private running: Promise<void> | null = null
  private timer: NodeJS.Timeout | null = null
  private started = false
  private stopped = false
  /** Counts, for tests and the log. */
  readonly counts = { deleted: 0, cleaned: 0, kept: 0, copiedBytes: 0 }

  constructor(private readonly o: ValueKeeperOptions) {}

  /** The store took segment `seq` out of the log (it may be called before start()). */
  retired(seq: number): void {
    this.fresh.push(seq)
    if (this.started) this.kick()
  }

  /** Starts the rounds: only once every replica this node has is open, since a pointer of a
   * replica not open yet must not be taken for dead. */
  start(): void {
    if (this.started || this.stopped) return
    this.started = true
    const ms = this.o.intervalMs ?? (Number(process.env.POLYFS_VALUE_CLEAN_MS) || DEFAULT_INTERVAL_MS)
    this.timer = setInterval(() => this.kick(), ms)
    this.timer.unref()
    this.kick()
  }

  async stop(): Promise<void> {
    this.stopped = true
    if (this.timer) clearInterval(this.timer)
    this.timer = null
    await this.running
  }

  /** Runs a round now unless one is running; resolves when the round (this or that one) ends. */
  kick(): Promise<void> {
    if (this.stopped) return Promise.resolve()
    if (this.running) return this.running
    this.running = this.round()
      .catch((err: Error) => this.o.logger.error({ err: err.message }, 'value segments: a round failed'))
      .finally(() => {
        this.running = null
      })
    return this.running
  }

  private async round(): Promise<void> {
    const todo = new Set(this.fresh.splice(0))
    const all = this.o.store.valueSegments()
    for (let i = 0; i < Math.min(PER_ROUND, all.length); i++) todo.add(all[(this.cursor + i) % all.length] as number)
    this.cursor = all.length === 0 ? 0 : (this.cursor + PER_ROUND) % all.length
    for (const seq of todo) {
      if (this.stopped) return
      if (!this.o.store.valueSegments().includes(seq)) continue
      const v = await this.check(seq)
      this.counts[v]++
    }
  }

  /** The replica whose range holds data key `k`, if this node hosts one. */
  private replicaFor(k: Buffer): RegionReplica | undefined {
    const user = k.subarray(1)
    for (const r of this.o.replicas()) if (keyInRegion(user, r.region)) return r
    return undefined
  }

  /** The current raw value of data key `k`: the replica's view (writes not landed included),
   * or the store's if no replica holds the range (conservative: a pointer found there stays
   * live). */
  private current(k: Buffer): Buffer | undefined {
    const r = this.replicaFor(k)
    return r ? r.storedRaw(k) : this.o.db.getSync(k)
  }

  private async landAll(): Promise<void> {
    for (const r of [...this.o.replicas()]) await r.landed()
  }

  /** Looks at value segment `seq`: deletes it, cleans it, or keeps it. */
  async check(seq: number): Promise<Verdict> {
    await this.landAll()
    const live: { k: Buffer; raw: Buffer; p: Pointer }[] = []
    const records: BatchOp[] = []
    let liveBytes = 0
    for await (const [pk, k] of this.o.db.iterator({ gte: pointerKey(seq, 0), lt: pointerKey(seq + 1, 0) })) {
      records.push({ type: 'del', key: Buffer.from(pk) })
      const raw = this.current(k)
      if (raw === undefined || !isPointer(raw)) continue
      const p = decodePointer(raw)
      if (p.seq !== seq || p.off !== pk.readUInt32BE(9)) continue
      live.push({ k: Buffer.from(k), raw, p })
      liveBytes += p.len
    }
    const size = this.o.store.valueSegmentBytes(seq)
    if (live.length > 0 && liveBytes >= size * CLEAN_BELOW) return 'kept'
    if (live.length > 0) {
      // Read every live value first (asynchronously), then rewrite them inline in one
      // synchronous pass: a key written meanwhile is dead now and is left alone.
      const values = await Promise.all(live.map((l) => this.o.store.readValueAsync(seq, l.p.off, l.p.len)))
      for (let i = 0; i < live.length; i++) {
        const l = live[i] as (typeof live)[number]
        if (crc32c(values[i] as Buffer) !== l.p.crc) {
          // Never copy a bad value over its pointer: the read path names the key; keep the file.
          this.o.logger.error({ segment: seq, offset: l.p.off }, 'value segment: a live value fails its checksum; segment kept')
          return 'kept'
        }
      }
      let copied = 0
      for (let i = 0; i < live.length; i++) {
        const l = live[i] as (typeof live)[number]
        const value = values[i] as Buffer
        const inline = Buffer.allocUnsafe(8 + value.length)
        inline.writeBigUInt64BE(BigInt(l.p.version), 0)
        value.copy(inline, 8)
        const r = this.replicaFor(l.k)
        if (r === undefined) {
          this.o.logger.warn({ segment: seq }, 'value segment: a live key belongs to no open replica; segment kept')
          return 'kept'
        }
        if (r.rewriteInline(l.k, l.raw, inline)) copied += value.length
      }
      this.counts.copiedBytes += copied
    }
    // Every write that killed a pointer (or copied its value) lands, and the synced batch that
    // drops the records makes them durable before the file goes.
    await this.landAll()
    await this.o.store.deleteValueSegment(seq, records)
    this.o.logger.info({ segment: seq, liveValues: live.length, liveBytes, bytes: size }, live.length > 0 ? 'value segment cleaned' : 'value segment deleted')
    return live.length > 0 ? 'cleaned' : 'deleted'
  }
}
