// LocalKV: the KV interface on one classic-level (LevelDB) store, for a single machine.
//
// Concurrency control is optimistic with backward validation: a transaction remembers the
// commit sequence number that was visible when it started (appliedSeq), the keys it read and
// the ranges it scanned. At commit it is checked against the write sets of every transaction
// that was assigned a sequence number after that; any overlap aborts it and txn() re-runs fn.
// Validation and sequence assignment happen in one synchronous step, so there is no window
// between them. Commits are group-committed: while one LevelDB batch is being written, the
// next commits queue and go together in one batch.
import { statfs } from 'node:fs/promises'
import { ClassicLevel } from 'classic-level'
import { keys } from './keys'
import { Entry, KV, KvError, LIMITS, Range, Txn, TxnOptions } from './types'

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

/** Bound on queued commits per batch; a larger queue is split over several batches. */
const MAX_BATCH_COMMITS = 1024

export class LocalKV implements KV {
  private lastSeq = 0
  private appliedSeq = 0
  /** Write sets of commits newer than the oldest running transaction, oldest first. */
  private log: Committed[] = []
  private readonly active = new Map<number, number>() // txn id -> start seq
  private nextTxnId = 1
  private queue: Pending[] = []
  private writing: Promise<void> | null = null
  private closed = false
  private readonly syncKey = keys.meta('sync')

  private constructor(
    private readonly db: ClassicLevel<Buffer, Buffer>,
    readonly dir: string,
  ) {}

  static async open(dir: string): Promise<LocalKV> {
    // A 64 MiB memtable takes 512 data blocks between flushes (the default 4 MiB took 32);
    // blocks are checksummed, mostly incompressible data, so no snappy on every write.
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
    return new LocalKV(db, dir)
  }

  async get(key: Buffer): Promise<Buffer | undefined> {
    this.checkOpen()
    return this.db.getSync(key)
  }

  async scan(range: Range): Promise<Entry[]> {
    this.checkOpen()
    const out: Entry[] = []
    const it = this.db.iterator({ gte: range.start, lt: range.end, limit: range.limit ?? -1 })
    for (const [key, value] of await it.all()) out.push({ key, value })
    return out
  }

  async txn<T>(fn: (tx: Txn) => Promise<T>, opts: TxnOptions = {}): Promise<T> {
    const attempts = opts.maxAttempts ?? LIMITS.defaultAttempts
    for (let attempt = 1; ; attempt++) {
      this.checkOpen()
      const id = this.nextTxnId++
      const tx = new LocalTxn(this.db, this.appliedSeq)
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
      if (attempt >= attempts) throw new KvError('CONFLICT', `transaction conflicted ${attempts} times`)
      // Let the commits we collided with land before trying again, then back off a little.
      if (this.writing) await this.writing.catch(() => undefined)
      if (attempt > 2) await new Promise((r) => setTimeout(r, Math.min(50, attempt * Math.random() * 2)))
    }
  }

  async sync(): Promise<void> {
    this.checkOpen()
    // LevelDB skips empty batches, so a sync is a synced delete of a reserved key that never
    // holds a value (META "sync"); it flushes the whole log, and with it every earlier commit.
    await this.enqueue([{ type: 'del', key: this.syncKey }], ++this.lastSeq, true)
  }

  async usage(): Promise<{ usedBytes: number; freeBytes: number; totalBytes: number }> {
    const s = await statfs(this.dir)
    const totalBytes = s.blocks * s.bsize
    const freeBytes = s.bavail * s.bsize
    return { totalBytes, freeBytes, usedBytes: totalBytes - s.bfree * s.bsize }
  }

  async close(): Promise<void> {
    if (this.closed) return
    while (this.writing) await this.writing.catch(() => undefined)
    this.closed = true
    await this.db.close()
  }

  private checkOpen(): void {
    if (this.closed) throw new KvError('CLOSED', 'store is closed')
  }

  /** Validates and, when valid, queues the write set. Null means conflict. Synchronous. */
  private tryCommit(tx: LocalTxn, sync: boolean): Promise<void> | null {
    for (let i = this.log.length - 1; i >= 0 && this.log[i].seq > tx.startSeq; i--) {
      if (tx.conflictsWith(this.log[i].keys)) return null
    }
    const ops = tx.ops()
    if (ops.length === 0) return sync ? this.sync() : Promise.resolve()
    const seq = ++this.lastSeq
    this.log.push({ seq, keys: ops.map((o) => o.key) })
    return this.enqueue(ops, seq, sync)
  }

  private enqueue(ops: Op[], seq: number, sync: boolean): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ ops, seq, sync, resolve, reject })
      if (!this.writing) this.writing = this.writeLoop()
    })
  }

  private async writeLoop(): Promise<void> {
    while (this.queue.length > 0) {
      const group = this.queue.splice(0, MAX_BATCH_COMMITS)
      const ops: Op[] = []
      let sync = false
      for (const p of group) {
        for (const op of p.ops) ops.push(op)
        sync ||= p.sync
      }
      try {
        await this.db.batch(ops, { sync })
        this.appliedSeq = Math.max(this.appliedSeq, group[group.length - 1].seq)
        for (const p of group) p.resolve()
      } catch (err) {
        const e = new KvError('IO', `batch write failed: ${(err as Error).message}`)
        for (const p of group) p.reject(e)
      }
    }
    this.writing = null
  }

  private pruneLog(): void {
    let oldest = this.appliedSeq
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
    private readonly db: ClassicLevel<Buffer, Buffer>,
    readonly startSeq: number,
  ) {}

  async get(key: Buffer): Promise<Buffer | undefined> {
    const k = key.toString('latin1')
    const w = this.writes.get(k)
    if (w) return w.type === 'put' ? w.value : undefined
    this.readKeys.add(k)
    return this.db.getSync(key)
  }

  async scan(range: Range): Promise<Entry[]> {
    this.readRanges.push(range)
    const limit = range.limit ?? Infinity
    // Read enough from the store to still return `limit` entries after our own deletes.
    let deletes = 0
    for (const op of this.writes.values()) if (op.type === 'del' && inRange(op.key, range)) deletes++
    const storeLimit = limit === Infinity ? -1 : limit + deletes
    const it = this.db.iterator({ gte: range.start, lt: range.end, limit: storeLimit })
    const merged = new Map<string, Entry>()
    for (const [key, value] of await it.all()) merged.set(key.toString('latin1'), { key, value })
    for (const [k, op] of this.writes) {
      if (!inRange(op.key, range)) continue
      if (op.type === 'put') merged.set(k, { key: op.key, value: op.value })
      else merged.delete(k)
    }
    const out = [...merged.values()].sort((a, b) => Buffer.compare(a.key, b.key))
    return limit === Infinity ? out : out.slice(0, limit)
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
