// A data region's replica on this node: the state machine of one region Raft group. It holds
// the region's keys under `z` in the node's store (docs/node-store.md), each with the Raft
// index that wrote it (its version), applies optimistic transactions by checking their reads
// against those versions, and dumps/restores itself for snapshots.
//
// Every replica applies the same log in the same order and validates against the same state,
// so every replica accepts and refuses the same commits: validation needs no coordination.
import { crc32c } from '@node-rs/crc32'
import type { ClassicLevel } from 'classic-level'
import { counterCell, dropSeries, metrics, type CounterCell } from '../observe/metrics'
import type { Entry, Loc, Snapshot } from '../raft'
import { decode, encode, ErrorCode, keyInRegion, type CommitOp, type RegionDescriptor } from '../rpc'
import { valueCrc } from '../kv'
import { rawBatch } from '../util/leveldb'
import type { GroupStateMachine } from './host'

type Db = ClassicLevel<Buffer, Buffer>

/** Where pointer values are read from: the node's Raft log segments (SegmentRaftStore). */
export interface ValueSource {
  readValue(seq: number, off: number, len: number): Buffer
  readValueAsync(seq: number, off: number, len: number): Promise<Buffer>
}
type Op = { type: 'put'; key: Buffer; value: Buffer } | { type: 'del'; key: Buffer }

export const DATA_PREFIX = 0x7a // 'z'
/** The reverse index of pointer values: `P ++ seq u64 ++ offset u32` -> the `z` key. */
export const POINTER_PREFIX = 0x50 // 'P'
/** Put values at least this long are kept in the Raft log and pointed at (docs/node-store.md). */
export const POINTER_MIN_BYTES = 4096
/** A pointer's length: version (top bit set), segment, offset, length, crc32c. */
export const POINTER_BYTES = 28
/** Bytes of a segment record's header before its payload (SegmentRaftStore). */
const RECORD_HEADER_BYTES = 33
const TOP_BIT = 0x80
export const META_PREFIX = 0x6d // 'm'
const META_FORMAT = 1
const STATE_NORMAL = 0
const STATE_TOMBSTONE = 1
/** Transaction ids remembered for answering retried commits (in memory, per replica). */
const MAX_REMEMBERED_TXNS = 100_000
/** Bytes of applied writes waiting for LevelDB before an apply waits for them to land. */
const MAX_QUEUED_BYTES = 64 * 1024 * 1024
/** How long applied writes may wait in memory to go to LevelDB together: without it a serial
 * workload makes one LevelDB write (a batch, a thread-pool job, a log write) per commit on every
 * replica. Sooner past LAND_SOON_BYTES, or when something waits for them (landed()). */
const LAND_LINGER_MS = 50
const LAND_SOON_BYTES = 4 * 1024 * 1024
/** Bound on entries one scan returns. */
export const MAX_SCAN_ENTRIES = 10_000

/** The outcome of one applied command, handed to whoever proposed it. */
export type ApplyResult = { ok: true; index: number } | { ok: false; code: string; message: string }

export function dataKey(userKey: Buffer): Buffer {
  const k = Buffer.allocUnsafe(userKey.length + 1)
  k[0] = DATA_PREFIX
  userKey.copy(k, 1)
  return k
}

export function metaKey(group: number): Buffer {
  const k = Buffer.alloc(9)
  k[0] = META_PREFIX
  k.writeBigUInt64BE(BigInt(group), 1)
  return k
}

/** The end of a region's data range in the store (exclusive). */
function dataEnd(endKey: Buffer | undefined): Buffer {
  return endKey && endKey.length > 0 ? dataKey(endKey) : Buffer.from([DATA_PREFIX + 1])
}

export interface ReplicaMeta {
  readonly state: 'normal' | 'tombstone'
  readonly applied: number
  readonly region: RegionDescriptor
}

/** The last descriptor encoded, by object: a replica's descriptor object changes only with its
 * membership or range, while its meta record is rewritten with every applied batch (encoding it
 * each time was a fifth of an apply's CPU). */
let lastDesc: { region: RegionDescriptor; bytes: Buffer } | null = null

export function encodeMeta(m: ReplicaMeta): Buffer {
  if (lastDesc?.region !== m.region) lastDesc = { region: m.region, bytes: encode('RegionDescriptor', m.region) }
  const desc = lastDesc.bytes
  const out = Buffer.alloc(1 + 1 + 8 + desc.length + 4)
  out[0] = META_FORMAT
  out[1] = m.state === 'normal' ? STATE_NORMAL : STATE_TOMBSTONE
  out.writeBigUInt64BE(BigInt(m.applied), 2)
  desc.copy(out, 10)
  out.writeUInt32BE(crc32c(out.subarray(0, out.length - 4)), out.length - 4)
  return out
}

export function decodeMeta(buf: Buffer): ReplicaMeta {
  if (buf.length < 14 || buf.readUInt32BE(buf.length - 4) !== crc32c(buf.subarray(0, buf.length - 4))) throw new Error('corrupt replica meta record')
  if (buf[0] !== META_FORMAT) throw new Error(`replica meta format ${buf[0]} is not known to this version (want ${META_FORMAT})`)
  return {
    state: buf[1] === STATE_NORMAL ? 'normal' : 'tombstone',
    applied: Number(buf.readBigUInt64BE(2)),
    region: decode<RegionDescriptor>('RegionDescriptor', buf.subarray(10, buf.length - 4)),
  }
}

/** The version of a stored value, inline or pointer. */
export function versionOf(raw: Buffer): number {
  return (raw.readUInt32BE(0) & 0x7fffffff) * 2 ** 32 + raw.readUInt32BE(4)
}

export function isPointer(raw: Buffer): boolean {
  return raw.length === POINTER_BYTES && ((raw[0] as number) & TOP_BIT) !== 0
}

export interface Pointer {
  readonly version: number
  readonly seq: number
  readonly off: number
  readonly len: number
  readonly crc: number
}

export function decodePointer(raw: Buffer): Pointer {
  return { version: versionOf(raw), seq: versionOf(raw.subarray(8)), off: raw.readUInt32BE(16), len: raw.readUInt32BE(20), crc: raw.readUInt32BE(24) }
}

function encodePointer(p: Pointer): Buffer {
  const out = Buffer.allocUnsafe(POINTER_BYTES)
  out.writeUInt32BE(Math.floor(p.version / 2 ** 32) + 0x80000000, 0)
  out.writeUInt32BE(p.version % 2 ** 32, 4)
  out.writeBigUInt64BE(BigInt(p.seq), 8)
  out.writeUInt32BE(p.off, 16)
  out.writeUInt32BE(p.len, 20)
  out.writeUInt32BE(p.crc, 24)
  return out
}

/** Pointers read together when the next starts at most this far past the last one's end. */
const RUN_GAP_BYTES = 4096
/** The most one read of a run spans. */
const RUN_MAX_BYTES = 1024 * 1024

/** Nearby values in one segment, read with one pread of [from, to). */
export interface ValueRun<T> {
  readonly seq: number
  readonly from: number
  readonly to: number
  /** In file order. */
  readonly items: T[]
}

/** Pointers grouped into runs of nearby values in one segment. */
export function valueRuns<T extends { p: Pointer }>(pointed: readonly T[]): ValueRun<T>[] {
  const sorted = [...pointed].sort((a, b) => a.p.seq - b.p.seq || a.p.off - b.p.off)
  const runs: { seq: number; from: number; to: number; items: T[] }[] = []
  for (const x of sorted) {
    const p = x.p
    const run = runs[runs.length - 1]
    if (run !== undefined && p.seq === run.seq && p.off <= run.to + RUN_GAP_BYTES && Math.max(run.to, p.off + p.len) - run.from <= RUN_MAX_BYTES) {
      run.items.push(x)
      run.to = Math.max(run.to, p.off + p.len)
    } else runs.push({ seq: p.seq, from: p.off, to: p.off + p.len, items: [x] })
  }
  return runs
}

/** The reverse-index key of a pointer to (seq, off). */
export function pointerKey(seq: number, off: number): Buffer {
  const k = Buffer.allocUnsafe(13)
  k[0] = POINTER_PREFIX
  k.writeBigUInt64BE(BigInt(seq), 1)
  k.writeUInt32BE(off, 9)
  return k
}

/** A value read through a pointer failed its check: never handed out as data. */
export class CorruptValueError extends Error {}

function versioned(version: number, value: Buffer): Buffer {
  const out = Buffer.allocUnsafe(8 + value.length)
  out.writeBigUInt64BE(BigInt(version), 0)
  value.copy(out, 8)
  return out
}

export interface VersionedValue {
  readonly value: Buffer
  readonly version: number
}

/** The file offset of `value` in the segment record at `loc` holding entry `e`, or -1 if the
 * value is not a view into the entry's payload (then it is stored inline) or too small. */
function valueOffset(e: Entry, loc: Loc, value: Buffer): number {
  if (value.length < POINTER_MIN_BYTES) return -1
  const data = e.data
  if (value.buffer !== data.buffer) return -1
  const rel = value.byteOffset - data.byteOffset
  if (rel < 0 || rel + value.length > data.byteLength) return -1
  if (loc.len !== RECORD_HEADER_BYTES + data.byteLength) return -1
  return loc.off + RECORD_HEADER_BYTES + rel
}

function unversion(buf: Buffer): VersionedValue {
  return { version: Number(buf.readBigUInt64BE(0)), value: buf.subarray(8) }
}

export class RegionReplica implements GroupStateMachine {
  appliedIndex: number
  region: RegionDescriptor
  /** Outcomes of recently applied transactions by id (hex), oldest first. */
  private readonly txns = new Map<string, ApplyResult>()
  /** Approximate bytes of keys and values, for heartbeats. */
  sizeBytes = 0
  /** An applied membership change removed this node: the replica should go. */
  removedSelf = false
  /**
   * Applied writes whose LevelDB write has not landed, by store key (latin1): the newest
   * versioned value, or null for a delete, and the number of the LevelDB write carrying it.
   * applyEntries answers before its write lands (the Raft log already holds the entries
   * durably), and point reads and validation look here first, so neither waits for a write in
   * flight and none can miss an applied write. One LevelDB write at a time; the applies made
   * meanwhile go together in the next one (group commit).
   */
  private readonly unlanded = new Map<string, { value: Buffer | null; write: number }>()
  /** Ops of applies not yet handed to LevelDB; they go in write number `nextWrite`. */
  private queued: Op[] = []
  private queuedBytes = 0
  private nextWrite = 0
  /** The LevelDB write in flight. */
  private writing: Promise<void> | null = null
  /** Starts the next write when LAND_LINGER_MS have passed. */
  private lingering: NodeJS.Timeout | null = null
  /** A LevelDB write failed: every later read and apply fails with it (the host then stops). */
  private failed: Error | null = null
  /** The region label of this replica's metrics, and their cells. */
  private readonly label: { region: string }
  private readonly writes: CounterCell
  private readonly reads: CounterCell

  constructor(private readonly db: Db, region: RegionDescriptor, applied: number, private readonly selfId = 0, private readonly values: ValueSource | null = null) {
    this.region = region
    this.appliedIndex = applied
    this.label = { region: String(region.id) }
    this.writes = counterCell(metrics.regionWrites, this.label)
    this.reads = counterCell(metrics.regionReads, this.label)
    metrics.regionBytes.set(this.label, this.sizeBytes)
  }

  get id(): number {
    return this.region.id
  }

  /** Resolves once every applied batch is in the store; rejects if writing one failed. */
  async landed(): Promise<void> {
    for (;;) {
      if (this.failed) throw this.failed
      this.startWrite()
      if (!this.writing) return
      await this.writing
    }
  }

  /** Hands what the applies queued to LevelDB, unless a write is in flight (its completion
   * starts the next one). */
  private startWrite(): void {
    if (this.lingering) {
      clearTimeout(this.lingering)
      this.lingering = null
    }
    if (this.writing || this.failed || this.queued.length === 0) return
    const ops = this.queued
    const n = this.nextWrite++
    this.queued = []
    this.queuedBytes = 0
    this.writing = rawBatch(this.db, ops, false).then(
      () => {
        for (const op of ops) {
          const k = op.key.toString('latin1')
          if (this.unlanded.get(k)?.write === n) this.unlanded.delete(k)
        }
        this.writing = null
        this.startWriteSoon()
      },
      (err: Error) => {
        this.failed = err
        this.writing = null
      },
    )
  }

  /** startWrite, after LAND_LINGER_MS unless much is queued. */
  private startWriteSoon(): void {
    if (this.queuedBytes >= LAND_SOON_BYTES || LAND_LINGER_MS <= 0) return this.startWrite()
    if (this.lingering || this.writing || this.failed || this.queued.length === 0) return
    this.lingering = setTimeout(() => {
      this.lingering = null
      this.startWrite()
    }, LAND_LINGER_MS)
    this.lingering.unref()
  }

  /** The store's record at a data key, applied writes not yet landed included. */
  private stored(k: Buffer): Buffer | undefined {
    const u = this.unlanded.get(k.toString('latin1'))
    if (u) return u.value ?? undefined
    // Synchronous: a point read from LevelDB's caches is cheaper than the thread-pool round
    // trip of the async get (two cross-thread wake-ups per read).
    return this.db.getSync(k)
  }

  /** The store's raw record at a data key (a pointer stays a pointer), for the value keeper. */
  storedRaw(k: Buffer): Buffer | undefined {
    return this.stored(k)
  }

  /** A raw record as version and value: a pointer is followed (one synchronous pread) and
   * its value checked against its crc. */
  private resolve(k: Buffer, raw: Buffer): VersionedValue {
    if (!isPointer(raw)) return unversion(raw)
    const p = decodePointer(raw)
    if (!this.values) throw new CorruptValueError(`key ${k.subarray(1).toString('hex')}: a pointer value in a store without segments`)
    return { version: p.version, value: this.checked(k.subarray(1), p, this.values.readValue(p.seq, p.off, p.len)) }
  }

  /** A pointer's value, checked against its crc (`key`: the user key, for the error). */
  private checked(key: Buffer, p: Pointer, value: Buffer): Buffer {
    if (crc32c(value) !== p.crc) throw new CorruptValueError(`key ${key.toString('hex')}: its value in segment ${p.seq} at ${p.off} fails its checksum`)
    return value
  }

  async get(key: Buffer): Promise<VersionedValue | undefined> {
    this.reads.inc()
    if (this.failed) throw this.failed
    const k = dataKey(key)
    const raw = this.stored(k)
    return raw === undefined ? undefined : this.resolve(k, raw)
  }

  /**
   * Several gets at once (a get_many). Values applied but not yet in LevelDB come from memory;
   * the others from LevelDB in one thread-pool job, so a read that misses LevelDB's caches
   * (a cold sequential read) does not stop this node's loop, and several get_manys read in
   * parallel. Each answer is the key's value at some point after the caller's read barrier.
   */
  async getMany(keys: readonly Buffer[]): Promise<(VersionedValue | undefined)[]> {
    this.reads.inc(keys.length)
    if (this.failed) throw this.failed
    const raws: (Buffer | undefined)[] = new Array(keys.length)
    const fromDb: number[] = []
    const dbKeys: Buffer[] = []
    for (let i = 0; i < keys.length; i++) {
      const k = dataKey(keys[i])
      const u = this.unlanded.get(k.toString('latin1'))
      if (u) raws[i] = u.value ?? undefined
      else {
        fromDb.push(i)
        dbKeys.push(k)
      }
    }
    if (dbKeys.length > 0) {
      const vs = await this.db.getMany(dbKeys)
      for (let j = 0; j < fromDb.length; j++) raws[fromDb[j]] = vs[j] ?? undefined
    }
    const out: (VersionedValue | undefined)[] = new Array(keys.length)
    const pointed: { i: number; p: Pointer }[] = []
    for (let i = 0; i < raws.length; i++) {
      const raw = raws[i]
      if (raw === undefined) out[i] = undefined
      else if (!isPointer(raw)) out[i] = unversion(raw)
      else pointed.push({ i, p: decodePointer(raw) })
    }
    if (pointed.length === 0) return out
    const values = this.values
    if (!values) throw new CorruptValueError(`key ${keys[pointed[0]!.i]?.toString('hex')}: a pointer value in a store without segments`)
    // Values near each other in one segment (the blocks one commit wrote lie one after the
    // other in its entry, a key's bytes between them) are read with one pread; the runs are
    // read in parallel.
    await Promise.all(
      valueRuns(pointed).map(async ({ seq, from, to, items }) => {
        const buf = await values.readValueAsync(seq, from, to - from)
        for (const { i, p } of items) out[i] = { version: p.version, value: this.checked(keys[i] as Buffer, p, buf.subarray(p.off - from, p.off - from + p.len)) }
      }),
    )
    return out
  }

  /**
   * [start, end) in key order, at most `limit`: LevelDB's records with the applied writes not
   * landed yet laid over them. The copy of those and the iterator's snapshot are taken in one
   * turn of the loop, so every applied write is in one or the other (a batch landing meanwhile
   * holds the same values as the copy). Waiting for them to land instead cost a scan up to the
   * lingering time (LAND_LINGER_MS) and a LevelDB write.
   */
  async scan(start: Buffer, end: Buffer, limit: number): Promise<{ key: Buffer; value: Buffer; version: number }[]> {
    this.reads.inc()
    if (this.failed) throw this.failed
    const max = limit > 0 ? Math.min(limit, MAX_SCAN_ENTRIES) : MAX_SCAN_ENTRIES
    const lo = dataKey(start)
    const hi = end.length > 0 ? dataKey(end) : dataEnd(this.region.endKey)
    const los = lo.toString('latin1')
    const his = hi.toString('latin1')
    const over = new Map<string, Buffer | null>()
    for (const [k, u] of this.unlanded) if (k >= los && k < his) over.set(k, u.value)
    // Enough records that the overlay's deletes cannot leave fewer than `max` before LevelDB's
    // cut: the first `max` of the merge are then exact.
    const it = this.db.iterator({ gte: lo, lt: hi, limit: max + over.size })
    const merged = new Map<string, Buffer>()
    for await (const [k, v] of it) merged.set(k.toString('latin1'), v)
    for (const [k, v] of over) {
      if (v === null) merged.delete(k)
      else merged.set(k, v)
    }
    // latin1 strings compare as their bytes do.
    const ordered = over.size === 0 ? [...merged.keys()] : [...merged.keys()].sort()
    const out: { key: Buffer; value: Buffer; version: number }[] = []
    for (const k of ordered) {
      if (out.length >= max) break
      const key = Buffer.from(k, 'latin1')
      const { value, version } = this.resolve(key, merged.get(k) as Buffer)
      out.push({ key: key.subarray(1), value, version })
    }
    return out
  }

  async applyEntries(entries: readonly Entry[], confAfter: (e: Entry) => { voters: number[]; learners: number[] }, locate?: (e: Entry) => Loc | undefined): Promise<unknown[]> {
    if (this.failed) throw this.failed
    // Backpressure: LevelDB falling behind slows the applies instead of filling memory.
    if (this.queuedBytes > MAX_QUEUED_BYTES) await this.landed()
    const results: unknown[] = []
    const ops: Op[] = []
    // Writes of this batch not yet in the store: later entries must see them.
    const overlay = new Map<string, Buffer | null>()
    for (const e of entries) {
      if (e.type === 'confChange') {
        const conf = confAfter(e)
        const member = (c: { voters?: number[]; learners?: number[] }) => !!c.voters?.includes(this.selfId) || !!c.learners?.includes(this.selfId)
        if (this.selfId !== 0 && member(this.region) && !member(conf)) this.removedSelf = true
        // conf_ver is the index of the last membership change: the same on every replica,
        // however it got there (by log or by snapshot).
        const epoch = this.region.epoch ?? { confVer: 0, version: 0 }
        this.region = { ...this.region, voters: conf.voters, learners: conf.learners, epoch: { confVer: e.index, version: epoch.version } }
        results.push({ ok: true, index: e.index })
        continue
      }
      if (e.data.length === 0) {
        results.push({ ok: true, index: e.index }) // a new leader's empty entry
        continue
      }
      results.push(await this.applyCommand(e, overlay, ops, this.values ? locate?.(e) : undefined))
    }
    const last = entries[entries.length - 1]
    if (last) this.appliedIndex = Math.max(this.appliedIndex, last.index)
    // Key writes are the ops before the meta record below.
    if (ops.length > 0) {
      this.writes.inc(ops.length)
      metrics.regionBytes.set(this.label, this.sizeBytes)
    }
    ops.push(this.metaOp('normal'))
    // Answer now; the write lands in the background (one thread-pool round trip less on every
    // commit's path), together with whatever else is applied before the one in flight lands.
    const n = this.nextWrite
    for (const op of ops) this.unlanded.set(op.key.toString('latin1'), { value: op.type === 'put' ? op.value : null, write: n })
    for (const op of ops) {
      this.queued.push(op)
      this.queuedBytes += op.key.length + (op.type === 'put' ? op.value.length : 0)
    }
    this.startWriteSoon()
    return results
  }

  private async applyCommand(e: Entry, overlay: Map<string, Buffer | null>, ops: Op[], loc: Loc | undefined): Promise<ApplyResult> {
    let cmd
    try {
      cmd = decode<{ epoch?: { confVer: number; version: number }; cmd?: string; commit?: CommitOp }>('RegionCommand', e.data)
    } catch (err) {
      return { ok: false, code: ErrorCode.INVALID, message: `undecodable command at ${e.index}: ${(err as Error).message}` }
    }
    if (cmd.cmd !== 'commit' || !cmd.commit) return { ok: false, code: ErrorCode.INVALID, message: 'unknown region command' }
    const c = cmd.commit
    const id = c.txnId && c.txnId.length > 0 ? c.txnId.toString('hex') : ''
    const seen = id ? this.txns.get(id) : undefined
    if (seen) return seen
    if ((cmd.epoch?.version ?? 0) !== (this.region.epoch?.version ?? 0)) {
      return this.remember(id, { ok: false, code: ErrorCode.EPOCH_NOT_MATCH, message: 'region changed since the command was proposed' })
    }
    const version = (key: Buffer): number => {
      const k = dataKey(key)
      // Written earlier in this batch: its version is in the value. (Never the current entry's
      // index: the answer must not depend on how entries were grouped into batches, which
      // differs between replicas.)
      const o = overlay.get(k.toString('latin1'))
      if (o !== undefined) return o === null ? 0 : versionOf(o)
      const raw = this.stored(k)
      return raw === undefined ? 0 : versionOf(raw)
    }
    for (const r of c.reads ?? []) {
      if (version(r.key) !== (r.version ?? 0)) return this.remember(id, { ok: false, code: ErrorCode.CONFLICT, message: 'a key read by the transaction changed' })
    }
    // A scan is validated against the store itself (and this batch's writes): everything
    // applied before must have landed.
    if ((c.scans ?? []).length > 0) await this.landed()
    for (const s of c.scans ?? []) {
      if (!(await this.scanUnchanged(s.start, s.end, s.limit ?? 0, s.seen ?? [], overlay))) {
        return this.remember(id, { ok: false, code: ErrorCode.CONFLICT, message: 'a range scanned by the transaction changed' })
      }
    }
    for (const w of c.writes ?? []) {
      if (!keyInRegion(w.key, this.region)) return this.remember(id, { ok: false, code: ErrorCode.KEY_NOT_IN_REGION, message: 'a written key is outside the region' })
    }
    for (const w of c.writes ?? []) {
      const k = dataKey(w.key)
      if (w.delete) {
        ops.push({ type: 'del', key: k })
        overlay.set(k.toString('latin1'), null)
      } else {
        const value = w.value ?? Buffer.alloc(0)
        const at = loc === undefined ? -1 : valueOffset(e, loc, value)
        const v = at < 0 ? versioned(e.index, value) : encodePointer({ version: e.index, seq: loc!.seq, off: at, len: value.length, crc: valueCrc(w.key, value) })
        ops.push({ type: 'put', key: k, value: v })
        // The reverse index: which key a pointer into this place was written for.
        if (at >= 0) ops.push({ type: 'put', key: pointerKey(loc!.seq, at), value: k })
        overlay.set(k.toString('latin1'), v)
        this.sizeBytes += k.length + 8 + value.length
      }
    }
    return this.remember(id, { ok: true, index: e.index })
  }

  /** Whether [start, end) still holds exactly the keys and versions the transaction saw. */
  private async scanUnchanged(start: Buffer, end: Buffer, limit: number, seen: { key: Buffer; version?: number }[], overlay: Map<string, Buffer | null>): Promise<boolean> {
    const lo = dataKey(start)
    const hi = end.length > 0 ? dataKey(end) : dataEnd(this.region.endKey)
    const now = new Map<string, number>()
    for await (const [k, v] of this.db.iterator({ gte: lo, lt: hi })) {
      now.set(k.toString('latin1'), versionOf(v))
      if (limit > 0 && now.size > limit + overlay.size) break
    }
    for (const [k, v] of overlay) {
      const kb = Buffer.from(k, 'latin1')
      if (Buffer.compare(kb, lo) < 0 || Buffer.compare(kb, hi) >= 0) continue
      if (v === null) now.delete(k)
      else now.set(k, versionOf(v))
    }
    const keys = [...now.keys()].sort((a, b) => Buffer.compare(Buffer.from(a, 'latin1'), Buffer.from(b, 'latin1')))
    const visible = limit > 0 ? keys.slice(0, limit) : keys
    if (visible.length !== seen.length) return false
    for (let i = 0; i < visible.length; i++) {
      const s = seen[i] as { key: Buffer; version?: number }
      if (visible[i] !== dataKey(s.key).toString('latin1') || now.get(visible[i] as string) !== (s.version ?? 0)) return false
    }
    return true
  }

  private remember(id: string, r: ApplyResult): ApplyResult {
    if (!id) return r
    this.txns.set(id, r)
    if (this.txns.size > MAX_REMEMBERED_TXNS) this.txns.delete(this.txns.keys().next().value as string)
    return r
  }

  /** Image: magic, descriptor, applied index, then every key with its version and value. */
  async snapshotData(): Promise<Uint8Array> {
    await this.landed()
    const parts: Buffer[] = []
    const desc = encode('RegionDescriptor', this.region)
    const head = Buffer.alloc(4 + 4 + 8)
    head.write('PRS1', 0, 'latin1')
    head.writeUInt32BE(desc.length, 4)
    head.writeBigUInt64BE(BigInt(this.appliedIndex), 8)
    parts.push(head, desc)
    for await (const [k, raw] of this.db.iterator({ gte: dataKey(this.region.startKey ?? Buffer.alloc(0)), lt: dataEnd(this.region.endKey) })) {
      // An image carries every value inline (its format predates pointers).
      const v = isPointer(raw) ? versioned(versionOf(raw), this.resolve(k, raw).value) : raw
      const h = Buffer.alloc(8)
      h.writeUInt32BE(k.length, 0)
      h.writeUInt32BE(v.length, 4)
      parts.push(h, k, v)
    }
    const body = Buffer.concat(parts)
    const crc = Buffer.alloc(4)
    crc.writeUInt32BE(crc32c(body), 0)
    return Buffer.concat([body, crc])
  }

  /**
   * The value keeper's cleaning: if key `k` still holds exactly `expected` (a pointer), it is
   * rewritten as `inline` (the same version, the value inline) through this replica's write
   * queue, after any write queued before. Synchronous, so no apply interleaves between the
   * check and the write. Returns whether it was rewritten.
   */
  rewriteInline(k: Buffer, expected: Buffer, inline: Buffer): boolean {
    if (this.failed) throw this.failed
    const now = this.stored(k)
    if (now === undefined || !now.equals(expected)) return false
    this.unlanded.set(k.toString('latin1'), { value: inline, write: this.nextWrite })
    this.queued.push({ type: 'put', key: k, value: inline })
    this.queuedBytes += k.length + inline.length
    this.startWriteSoon()
    return true
  }

  /** The write of this replica's meta record as it is now. */
  private metaOp(state: ReplicaMeta['state']): Op {
    return { type: 'put', key: metaKey(this.region.id), value: encodeMeta({ state, applied: this.appliedIndex, region: this.region }) }
  }

  /** Everything applied, synced: one synced write of the meta record after the applied writes
   * (LevelDB's log is one sequence, so its sync covers every write before it). */
  async persistApplied(): Promise<void> {
    await this.landed()
    await rawBatch(this.db, [this.metaOp('normal')], true)
  }

  async restore(snap: Snapshot): Promise<void> {
    await this.landed()
    const buf = Buffer.from(snap.data.buffer, snap.data.byteOffset, snap.data.byteLength)
    if (buf.length === 0 && snap.meta.index > 1) {
      // A compaction snapshot: its state is this store's, which must be at least that far.
      throw new Error(`region ${this.region.id}: the log was compacted at ${snap.meta.index} with the state in this store, but the store has applied only ${this.appliedIndex} (synced writes were lost)`)
    }
    if (buf.length === 0) return this.restoreEmpty(snap) // a group's bootstrap snapshot
    if (buf.length < 20 || buf.toString('latin1', 0, 4) !== 'PRS1' || buf.readUInt32BE(buf.length - 4) !== crc32c(buf.subarray(0, buf.length - 4))) {
      throw new Error(`region snapshot at ${snap.meta.index} is corrupt`)
    }
    const descLen = buf.readUInt32BE(4)
    const region = decode<RegionDescriptor>('RegionDescriptor', buf.subarray(16, 16 + descLen))
    const ops: Op[] = []
    // Drop what this replica held in the range, then write the image.
    for await (const k of this.db.keys({ gte: dataKey(region.startKey ?? Buffer.alloc(0)), lt: dataEnd(region.endKey) })) ops.push({ type: 'del', key: k })
    let off = 16 + descLen
    let size = 0
    while (off < buf.length - 4) {
      const kl = buf.readUInt32BE(off)
      const vl = buf.readUInt32BE(off + 4)
      const k = buf.subarray(off + 8, off + 8 + kl)
      const v = buf.subarray(off + 8 + kl, off + 8 + kl + vl)
      ops.push({ type: 'put', key: Buffer.from(k), value: Buffer.from(v) })
      size += kl + vl
      off += 8 + kl + vl
    }
    this.region = { ...region, voters: [...snap.meta.confState.voters], learners: [...snap.meta.confState.learners] }
    this.appliedIndex = snap.meta.index
    this.sizeBytes = size
    metrics.regionBytes.set(this.label, size)
    ops.push(this.metaOp('normal'))
    await rawBatch(this.db, ops, false)
    this.txns.clear()
  }

  private async restoreEmpty(snap: Snapshot): Promise<void> {
    await this.landed()
    const ops: Op[] = []
    for await (const k of this.db.keys({ gte: dataKey(this.region.startKey ?? Buffer.alloc(0)), lt: dataEnd(this.region.endKey) })) ops.push({ type: 'del', key: k })
    const version = this.region.epoch?.version ?? 1
    this.region = { ...this.region, voters: [...snap.meta.confState.voters], learners: [...snap.meta.confState.learners], epoch: { confVer: snap.meta.index, version } }
    this.appliedIndex = snap.meta.index
    this.sizeBytes = 0
    metrics.regionBytes.set(this.label, 0)
    ops.push(this.metaOp('normal'))
    await rawBatch(this.db, ops, false)
  }

  /** Removes the replica's data and leaves a tombstone (the replica was removed from the group). */
  async destroy(): Promise<void> {
    await this.landed()
    const ops: Op[] = []
    for await (const k of this.db.keys({ gte: dataKey(this.region.startKey ?? Buffer.alloc(0)), lt: dataEnd(this.region.endKey) })) ops.push({ type: 'del', key: k })
    ops.push(this.metaOp('tombstone'))
    await rawBatch(this.db, ops, true)
    // The replica is gone: so are its series (region label values stay bounded).
    for (const m of [metrics.regionBytes, metrics.regionWrites, metrics.regionReads]) dropSeries(m, this.label)
  }
}
