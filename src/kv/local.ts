// LocalKV: the KV interface on one classic-level (LevelDB) store, for a single machine.
//
// Concurrency control is optimistic with backward validation: a transaction remembers the
// commit sequence number that was visible when it started, the keys it read and the ranges
// it scanned. At commit it is checked against the write sets of every transaction that was
// assigned a sequence number after that; any overlap aborts it and txn() re-runs fn.
// Validation, sequence assignment and making the writes visible happen in one synchronous
// step, so there is no window between them.
//
// A commit is appended to the write-ahead log (wal.ts: a write() into the page cache, so a
// killed process loses nothing acknowledged) and applied at once to an in-memory overlay
// that every read consults first. Behind, in commit order and many commits per group (group
// commit), the log is fdatasync'ed and only then are the commits written to LevelDB, without
// syncing LevelDB: so LevelDB only ever holds commits the log has made durable, and replaying
// the log over it after a crash gives exactly the last durable commit. A commit with
// { sync: true } and sync() resolve when the log holding them is synced. If a write ever
// fails, the store refuses every later commit and sync with an IO error (docs/kv.md).
import { statfs } from 'node:fs/promises'
import { ClassicLevel } from 'classic-level'
import { metrics } from '../observe/metrics'
import { rawBatch } from '../util/leveldb'
import { keys } from './keys'
import { Wal, decodeOps } from './wal'
import { Entry, KV, KvError, LIMITS, Range, Txn, TxnOptions } from './types'
import { PatchError, PatchRange, mergePatch } from './blockvalue'

type Op = { type: 'put'; key: Buffer; value: Buffer } | { type: 'del'; key: Buffer }

interface Committed {
  readonly seq: number
  readonly keys: readonly Buffer[]
}

interface Pending {
  readonly ops: Op[]
  readonly seq: number
  readonly sync: boolean
  resolve(): void
  reject(err: Error): void
}

/** A write that is visible but maybe not yet in LevelDB. value null = deleted. */
interface Overlaid {
  readonly key: Buffer
  readonly value: Buffer | null
  readonly seq: number
}

/** Bound on queued commits per batch; a larger queue is split over several batches. */
const MAX_BATCH_COMMITS = 1024
/** Bytes of not-yet-written commits before new transactions wait for the writer. */
const MAX_OVERLAY_BYTES = 64 * 1024 * 1024
/** Size of each of the two write-ahead log files (smaller on a nearly full disk). */
const WAL_FILE_BYTES = 32 * 1024 * 1024
/**
 * How long unsynced commits may wait before the log is synced and they go to LevelDB (like a
 * local filesystem's commit interval). They are in the log's page cache already, so a killed
 * process loses none of them; a machine crash may lose up to this much of what no fsync
 * covered. Sooner when the overlay passes SOON_OVERLAY_* or a sync is asked for.
 */
const WRITE_DELAY_MS = 1000
const SOON_OVERLAY_BYTES = 16 * 1024 * 1024
const SOON_OVERLAY_ENTRIES = 20_000
/** How long synced commits wait to go to LevelDB together (see deferApply). */
const APPLY_DELAY_MS = 100

export class LocalKV implements KV {
  private lastSeq = 0
  /** Transactions re-run after a conflict (status, tests). */
  conflicts = 0
  /** Write sets of commits newer than the oldest running transaction, oldest first. */
  private log: Committed[] = []
  private readonly active = new Map<number, number>() // txn id -> start seq
  private nextTxnId = 1
  private queue: Pending[] = []
  private writing: Promise<void> | null = null
  private readonly overlay = new Map<string, Overlaid>()
  private overlayBytes = 0
  private failed: KvError | null = null
  private writeTimer: NodeJS.Timeout | null = null
  /** The chain of LevelDB writes, in commit order. */
  private applying: Promise<void> = Promise.resolve()
  /** Synced groups waiting for their LevelDB write (deferApply). */
  private toApply: Pending[] = []
  private applyTimer: NodeJS.Timeout | null = null
  private closed = false
  private appliedSeq = 0
  private readonly checkpointKey = keys.meta('wal-checkpoint')

  private constructor(
    private readonly db: ClassicLevel<Buffer, Buffer>,
    private readonly wal: Wal,
    readonly dir: string,
  ) {}

  static async open(dir: string, opts: { walFileBytes?: number } = {}): Promise<LocalKV> {
    // A 64 MiB memtable between flushes (the default is 4 MiB); data blocks are checksummed,
    // mostly incompressible data, so no snappy on every write.
    const db = new ClassicLevel<Buffer, Buffer>(dir, {
      keyEncoding: 'buffer',
      valueEncoding: 'buffer',
      writeBufferSize: 64 * 1024 * 1024,
      cacheSize: 64 * 1024 * 1024,
      maxFileSize: 16 * 1024 * 1024,
      compression: false,
    })
    try {
      await db.open()
    } catch (err) {
      throw new KvError('IO', `cannot open store at ${dir}: ${(err as Error).message}`)
    }
    try {
      return await LocalKV.recover(db, dir, opts.walFileBytes)
    } catch (err) {
      await db.close()
      throw err instanceof KvError ? err : new KvError('IO', `cannot recover the store at ${dir}: ${(err as Error).message}`)
    }
  }

  /** Replays the log's commits newer than the checkpoint into LevelDB, syncs, starts a new epoch. */
  private static async recover(db: ClassicLevel<Buffer, Buffer>, dir: string, walFileBytes?: number): Promise<LocalKV> {
    const checkpointKey = keys.meta('wal-checkpoint')
    const cp = db.getSync(checkpointKey)
    const checkpoint = cp ? cp.readUInt32BE(0) * 0x100000000 + cp.readUInt32BE(4) : 0
    const s = await statfs(dir)
    const fileBytes = walFileBytes ?? Math.max(4 << 20, Math.min(WAL_FILE_BYTES, Math.floor((s.bavail * s.bsize) / 16)))
    const { wal, recovered } = Wal.open(dir, fileBytes, checkpoint)
    for (const payload of recovered.payloads) await rawBatch(db, decodeOps(payload), false)
    const mark = Buffer.alloc(8)
    mark.writeUInt32BE(Math.floor(recovered.maxEpoch / 0x100000000), 0)
    mark.writeUInt32BE(recovered.maxEpoch >>> 0, 4)
    await rawBatch(db, [{ type: 'put', key: checkpointKey, value: mark }], true)
    wal.start(recovered.maxEpoch)
    await wal.sync()
    return new LocalKV(db, wal, dir)
  }

  async get(key: Buffer): Promise<Buffer | undefined> {
    this.checkOpen()
    return this.read(key)
  }

  async getMany(keys: readonly Buffer[]): Promise<(Buffer | undefined)[]> {
    this.checkOpen()
    if (keys.length > LIMITS.getManyKeys) throw new KvError('TOO_LARGE', `getMany of ${keys.length} keys (at most ${LIMITS.getManyKeys})`)
    return keys.map((k) => this.read(k))
  }

  /** The newest visible value: the overlay first, then LevelDB. */
  read(key: Buffer): Buffer | undefined {
    const o = this.overlay.get(key.toString('latin1'))
    if (o) return o.value ?? undefined
    return this.db.getSync(key)
  }

  async scan(range: Range): Promise<Entry[]> {
    this.checkOpen()
    return this.scanMerged(range, null)
  }

  /**
   * LevelDB's view merged with the overlay (and a transaction's own writes). The iterator's
   * snapshot and the overlay copy are taken in the same tick, so together they are one state.
   */
  async scanMerged(range: Range, own: Map<string, Op> | null): Promise<Entry[]> {
    const limit = range.limit ?? Infinity
    const layered = new Map<string, Buffer | null>()
    for (const [k, o] of this.overlay) if (inRange(o.key, range)) layered.set(k, o.value)
    if (own) for (const [k, op] of own) if (inRange(op.key, range)) layered.set(k, op.type === 'put' ? op.value : null)
    let deletes = 0
    for (const v of layered.values()) if (v === null) deletes++
    const storeLimit = limit === Infinity ? -1 : limit + deletes
    const it = this.db.iterator({ gte: range.start, lt: range.end, limit: storeLimit })
    const rows = await it.all()
    if (layered.size === 0) {
      const out = rows.map(([key, value]) => ({ key, value }))
      return limit === Infinity ? out : out.slice(0, limit)
    }
    const merged = new Map<string, Entry>()
    for (const [key, value] of rows) merged.set(key.toString('latin1'), { key, value })
    for (const [k, v] of layered) {
      if (v === null) merged.delete(k)
      else merged.set(k, { key: Buffer.from(k, 'latin1'), value: v })
    }
    const out = [...merged.values()].sort((a, b) => Buffer.compare(a.key, b.key))
    return limit === Infinity ? out : out.slice(0, limit)
  }

  async txn<T>(fn: (tx: Txn) => Promise<T>, opts: TxnOptions = {}): Promise<T> {
    const attempts = opts.maxAttempts ?? LIMITS.defaultAttempts
    for (let attempt = 1; ; attempt++) {
      this.checkOpen()
      if (this.overlayBytes > MAX_OVERLAY_BYTES) {
        this.startWriting()
        if (this.writing) await this.writing.catch(() => undefined)
        this.flushApply()
        await this.applying
      }
      const id = this.nextTxnId++
      const tx = new LocalTxn(this, this.lastSeq)
      this.active.set(id, tx.startSeq)
      let result: T
      let commit: Promise<void> | null
      try {
        result = await fn(tx)
        commit = this.tryCommit(tx, opts.sync === true)
      } finally {
        this.active.delete(id)
        this.pruneLog()
      }
      if (commit) {
        await commit
        return result
      }
      this.conflicts++
      metrics.kvConflicts.inc()
      if (attempt >= attempts) throw new KvError('CONFLICT', `transaction conflicted ${attempts} times`)
      if (attempt > 2) await new Promise((r) => setTimeout(r, Math.min(50, attempt * Math.random() * 2)))
      else await new Promise((r) => setImmediate(r))
    }
  }

  async sync(): Promise<void> {
    this.checkOpen()
    // Commits already in LevelDB went there after the log holding them was synced: only the
    // queued ones need the log synced, which the next group does.
    if (this.queue.length === 0 && !this.writing) return
    await this.enqueue([], this.lastSeq, true)
    if (this.failed) throw this.failed
  }

  async usage(): Promise<{ usedBytes: number; freeBytes: number; totalBytes: number }> {
    const s = await statfs(this.dir)
    const totalBytes = s.blocks * s.bsize
    const freeBytes = s.bavail * s.bsize
    return { totalBytes, freeBytes, usedBytes: totalBytes - s.bfree * s.bsize }
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.startWriting()
    while (this.writing) await this.writing.catch(() => undefined)
    this.flushApply()
    await this.applying
    this.closed = true
    if (!this.failed) await this.checkpoint(this.wal.epoch).catch(() => undefined)
    this.wal.close()
    await this.db.close()
  }

  /** Records in LevelDB (synced) that every commit of `epoch` and before is in it. */
  private async checkpoint(epoch: number): Promise<void> {
    const mark = Buffer.alloc(8)
    mark.writeUInt32BE(Math.floor(epoch / 0x100000000), 0)
    mark.writeUInt32BE(epoch >>> 0, 4)
    await this.writeBatch([{ type: 'put', key: this.checkpointKey, value: mark }], true)
    this.wal.checkpointed(epoch)
  }

  private checkOpen(): void {
    if (this.closed) throw new KvError('CLOSED', 'store is closed')
    if (this.failed) throw this.failed
  }

  /** Validates and, when valid, makes the writes visible and queues them. Null = conflict. */
  private tryCommit(tx: LocalTxn, sync: boolean): Promise<void> | null {
    for (let i = this.log.length - 1; i >= 0 && this.log[i].seq > tx.startSeq; i--) {
      if (tx.conflictsWith(this.log[i].keys)) return null
    }
    const ops = tx.ops()
    if (ops.length === 0) return sync ? this.sync() : Promise.resolve()
    if (this.failed) throw this.failed
    const seq = this.lastSeq + 1
    try {
      this.wal.append(seq, ops)
    } catch (err) {
      this.failed = new KvError('IO', `writing to the store failed: ${(err as Error).message}`)
      throw this.failed
    }
    this.lastSeq = seq
    this.log.push({ seq, keys: ops.map((o) => o.key) })
    for (const op of ops) {
      const k = op.key.toString('latin1')
      const value = op.type === 'put' ? op.value : null
      const prev = this.overlay.get(k)
      if (prev) this.overlayBytes -= prev.key.length + (prev.value?.length ?? 0)
      this.overlay.set(k, { key: op.key, value, seq })
      this.overlayBytes += op.key.length + (value?.length ?? 0)
    }
    const written = this.enqueue(ops, seq, sync)
    if (sync) return written
    written.catch(() => undefined) // reported through this.failed to every later call
    return Promise.resolve()
  }

  private enqueue(ops: Op[], seq: number, sync: boolean): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ ops, seq, sync, resolve, reject })
      if (this.writing) return
      // Unsynced commits are already visible: wait a moment so that many share one batch
      // (one wake-up of LevelDB's thread instead of one per operation). A sync goes now.
      if (sync || this.queue.length >= MAX_BATCH_COMMITS || this.overlayBytes > SOON_OVERLAY_BYTES || this.overlay.size > SOON_OVERLAY_ENTRIES) this.startWriting()
      else this.writeTimer ??= setTimeout(() => this.startWriting(), WRITE_DELAY_MS)
    })
  }

  private startWriting(): void {
    if (this.writeTimer) clearTimeout(this.writeTimer)
    this.writeTimer = null
    if (!this.writing && this.queue.length > 0) this.writing = this.writeLoop()
  }

  /**
   * Two stages in commit order: sync the log for a group (then its sync waiters may go), and
   * apply the group to LevelDB. The next group's log sync does not wait for the previous
   * group's LevelDB write; LevelDB writes stay in order on their own chain.
   */
  private async writeLoop(): Promise<void> {
    while (this.queue.length > 0) {
      const group = this.queue.splice(0, MAX_BATCH_COMMITS)
      try {
        if (this.failed) throw this.failed
        await this.wal.sync() // durable from here
      } catch (err) {
        this.failed ??= new KvError('IO', `writing to the store failed: ${(err as Error).message}`)
        for (const p of group) p.reject(this.failed)
        continue
      }
      for (const p of group) p.resolve()
      this.deferApply(group)
    }
    this.writing = null
    if (this.queue.length > 0) this.startWriting()
  }

  /**
   * Groups whose log is synced wait a moment before they go to LevelDB, so that many go in one
   * batch: writing each synced commit at once put a LevelDB batch (a thread-pool job, its
   * memtable insert and its log write) right after every fsync, on the CPU the next operation's
   * round trip through FUSE needed (docs/performance.md). They are visible from the overlay
   * meanwhile; the bounds of the overlay send them sooner.
   */
  private deferApply(group: Pending[]): void {
    for (const p of group) this.toApply.push(p)
    if (this.overlayBytes > SOON_OVERLAY_BYTES || this.overlay.size > SOON_OVERLAY_ENTRIES || this.toApply.length >= MAX_BATCH_COMMITS) return this.flushApply()
    this.applyTimer ??= setTimeout(() => this.flushApply(), APPLY_DELAY_MS)
  }

  private flushApply(): void {
    if (this.applyTimer) clearTimeout(this.applyTimer)
    this.applyTimer = null
    const group = this.toApply
    if (group.length === 0) return
    this.toApply = []
    this.applying = this.applying.then(() => this.apply(group))
  }

  /** Writes a group whose log is synced to LevelDB (unsynced), then drops it from the overlay. */
  private async apply(group: Pending[]): Promise<void> {
    if (this.failed) return
    const ops: Op[] = []
    for (const p of group) for (const op of p.ops) ops.push(op)
    const top = group[group.length - 1].seq
    try {
      if (ops.length > 0) await this.writeBatch(ops, false)
      this.appliedSeq = Math.max(this.appliedSeq, top)
      const due = this.wal.checkpointDue(this.appliedSeq)
      if (due !== null) await this.checkpoint(due)
    } catch (err) {
      // The commits are durable in the log and visible from the overlay; LevelDB failing means
      // the disk is in trouble: refuse everything from now on.
      this.failed ??= new KvError('IO', `writing to the store failed: ${(err as Error).message}`)
      return
    }
    for (const op of ops) {
      const k = op.key.toString('latin1')
      const o = this.overlay.get(k)
      if (o && o.seq <= top) {
        this.overlay.delete(k)
        this.overlayBytes -= o.key.length + (o.value?.length ?? 0)
      }
    }
  }

  /** One LevelDB batch without abstract-level's cloning (src/util/leveldb.ts says why). */
  private writeBatch(ops: Op[], sync: boolean): Promise<void> {
    return rawBatch(this.db, ops, sync)
  }

  private pruneLog(): void {
    let oldest = this.lastSeq
    for (const start of this.active.values()) oldest = Math.min(oldest, start)
    let n = 0
    while (n < this.log.length && this.log[n].seq <= oldest) n++
    if (n > 0) this.log.splice(0, n)
  }
}

class LocalTxn implements Txn {
  private readonly writes = new Map<string, Op>()
  private readonly readKeys = new Set<string>()
  private readonly readRanges: Range[] = []
  private writeBytes = 0

  constructor(
    private readonly kv: LocalKV,
    readonly startSeq: number,
  ) {}

  async get(key: Buffer): Promise<Buffer | undefined> {
    const k = key.toString('latin1')
    const w = this.writes.get(k)
    if (w) return w.type === 'put' ? w.value : undefined
    this.readKeys.add(k)
    return this.kv.read(key)
  }

  async scan(range: Range): Promise<Entry[]> {
    this.readRanges.push(range)
    return this.kv.scanMerged(range, this.writes)
  }

  put(key: Buffer, value: Buffer): void {
    if (key.length > LIMITS.keyBytes) throw new KvError('TOO_LARGE', `key of ${key.length} bytes`)
    if (value.length > LIMITS.valueBytes) throw new KvError('TOO_LARGE', `value of ${value.length} bytes`)
    this.writeBytes += key.length + value.length
    if (this.writeBytes > LIMITS.txnWriteBytes) throw new KvError('TOO_LARGE', 'transaction write set over 64 MiB')
    this.writes.set(key.toString('latin1'), { type: 'put', key, value })
  }

  del(key: Buffer): void {
    this.writes.set(key.toString('latin1'), { type: 'del', key })
  }

  /** Merged at once from the store (the read joins the read set, as a get would). */
  patch(key: Buffer, ranges: readonly PatchRange[]): void {
    const k = key.toString('latin1')
    if (this.writes.has(k) || this.readKeys.has(k)) throw new Error(`patch of key ${key.toString('hex')}, already read or written in this transaction`)
    this.readKeys.add(k)
    let merged: Buffer
    try {
      merged = mergePatch(this.kv.read(key), ranges)
    } catch (err) {
      if (err instanceof PatchError) throw new KvError('IO', `key ${key.toString('hex')}: ${err.message}`)
      throw err
    }
    this.put(key, merged)
  }

  ops(): Op[] {
    return [...this.writes.values()]
  }

  conflictsWith(written: readonly Buffer[]): boolean {
    for (const key of written) {
      if (this.readKeys.has(key.toString('latin1'))) return true
      for (const r of this.readRanges) if (inRange(key, r)) return true
    }
    return false
  }
}

function inRange(key: Buffer, r: Range): boolean {
  return Buffer.compare(key, r.start) >= 0 && Buffer.compare(key, r.end) < 0
}
