// The write-ahead log of LocalKV: two preallocated files written in place, used in turn.
//
// Why: a synced LevelDB write appends to LevelDB's log and fsyncs it (332 us measured for a
// 16 KiB value); an overwrite inside a file whose blocks already exist needs only an
// fdatasync of the data (143 us). Every commit is appended here first (a write() into the
// page cache, so kill -9 loses nothing acknowledged); a sync is one fdatasync; LevelDB gets
// the commits after the log holding them is synced, without syncing LevelDB itself.
//
// File layout (docs/storage-format.md, "Write-ahead log"):
//   header (4 KiB): magic u32 "PWAL", version u32 = 1, epoch u64, crc32c u32 of the 16 bytes before
//   records:        magic u32 "PREC", length u32, epoch u64, seq u64, crc32c u32 of epoch, seq and payload, payload,
//                   zeros up to the next 4 KiB boundary (every record starts on a page)
// A file's records count only while their epoch equals the header's; recovery stops at the
// first record that fails a check (a torn write at the end). A file may be reused once
// every commit in it is durable in LevelDB: LevelDB's META "wal-checkpoint" holds the
// highest epoch whose records are all there.
import { closeSync, fdatasync, fstatSync, openSync, readSync, writeSync } from 'node:fs'
import path from 'node:path'
import { promisify } from 'node:util'
import { crc32c } from '@node-rs/crc32'
import { counterCell, histogramCell, metrics } from '../observe/metrics'

const HEADER_BYTES = 4096
const FILE_MAGIC = 0x5057414c // "PWAL"
const RECORD_MAGIC = 0x50524543 // "PREC"
const RECORD_HEADER = 28
const VERSION = 1
/** Records up to this size (every metadata commit, and data commits of a few blocks) reuse one buffer. */
const SCRATCH_BYTES = 1 << 20
const fdatasyncAsync = promisify(fdatasync)
const fsyncs = counterCell(metrics.storeFsyncs)
const syncSeconds = histogramCell(metrics.storeFsyncSeconds)

interface WalFile {
  readonly fd: number
  readonly name: string
  epoch: number
  pos: number
  /** Bytes written since the last fdatasync. */
  dirty: boolean
  /** Highest seq appended to this file in its current epoch (0: none). */
  lastSeq: number
}

export interface Recovered {
  /** Payloads of every valid record newer than the checkpoint, oldest first. */
  readonly payloads: Buffer[]
  /** The highest epoch seen; everything up to it is in LevelDB after the replay. */
  readonly maxEpoch: number
}

export class Wal {
  private cur: 0 | 1 = 0
  /** Epoch of the file not in use that still holds commits LevelDB has not made durable. */
  private pendingCheckpoint: { epoch: number; lastSeq: number } | null = null

  private constructor(
    private readonly files: [WalFile, WalFile],
    private readonly fileBytes: number,
  ) {}

  /**
   * Opens (creating and preallocating when missing) the two files in `dir` and reads every
   * record newer than `checkpointEpoch`. The caller replays them into LevelDB, syncs it with
   * the new checkpoint (Recovered.maxEpoch) and then calls start().
   */
  static open(dir: string, fileBytes: number, checkpointEpoch: number): { wal: Wal; recovered: Recovered } {
    const files = [0, 1].map((i) => openFile(path.join(dir, `polyfs-wal-${i}`), fileBytes)) as [WalFile, WalFile]
    const live = files.filter((f) => f.epoch > checkpointEpoch).sort((a, b) => a.epoch - b.epoch)
    const payloads: Buffer[] = []
    let prevSeq = -1
    for (const f of live) {
      const recs = readRecords(f)
      // Both live files come from one process lifetime (recovery checkpoints everything it
      // replays), so their sequence numbers continue: a gap means the older file lost its
      // tail, and nothing after the gap may be replayed.
      if (prevSeq >= 0 && recs.length > 0 && recs[0].seq !== prevSeq + 1) break
      for (const r of recs) payloads.push(r.payload)
      if (recs.length > 0) prevSeq = recs[recs.length - 1].seq
    }
    const maxEpoch = Math.max(checkpointEpoch, files[0].epoch, files[1].epoch)
    return { wal: new Wal(files, fileBytes), recovered: { payloads, maxEpoch } }
  }

  /** Begins a new epoch after recovery; both files are free (their epochs <= the checkpoint). */
  start(maxEpoch: number): void {
    const f = this.files[0]
    this.cur = 0
    beginEpoch(f, maxEpoch + 1)
    this.files[1].lastSeq = 0
  }

  /** The record being written: one buffer, reused (the write is synchronous). A record larger
   * than it gets a buffer of its own, so a rare large commit does not keep its memory. */
  private readonly scratch = Buffer.alloc(SCRATCH_BYTES)

  /**
   * Appends one commit, its ops encoded straight into the record (into the page cache; durable
   * at the next sync()). Throws on I/O errors.
   */
  append(seq: number, ops: ReadonlyArray<WalOp>): void {
    let f = this.files[this.cur]
    const payloadBytes = opsBytes(ops)
    const size = RECORD_HEADER + payloadBytes
    if (f.pos + pageAlign(size) > this.fileBytes && f.lastSeq > 0 && this.pendingCheckpoint === null) {
      // Switch files. The other one is free: its commits are durable in LevelDB.
      this.pendingCheckpoint = { epoch: f.epoch, lastSeq: f.lastSeq }
      const next = this.files[this.cur === 0 ? 1 : 0]
      beginEpoch(next, f.epoch + 1)
      this.cur = this.cur === 0 ? 1 : 0
      f = next
    }
    // (When the other file is still waiting for its checkpoint, this one grows past its size:
    // slower fdatasyncs for a while, never a refused commit.)
    // One write of whole pages: a partial-page write into a page that is not cached would make
    // the kernel read it from disk first (measured: a quarter of a create's CPU time).
    const bytes = pageAlign(size)
    const rec = bytes <= SCRATCH_BYTES ? this.scratch.subarray(0, bytes) : Buffer.allocUnsafe(bytes)
    rec.writeUInt32BE(RECORD_MAGIC, 0)
    rec.writeUInt32BE(payloadBytes, 4)
    writeU64(rec, 8, f.epoch)
    writeU64(rec, 16, seq)
    const payload = rec.subarray(RECORD_HEADER, size)
    encodeOpsInto(ops, payload)
    rec.fill(0, size) // the page's tail: zeros, as the format says (no stale bytes of an earlier record)
    rec.writeUInt32BE(crc32c(payload, crc32c(rec.subarray(8, 24))), 24)
    writeAll(f.fd, rec, f.pos)
    f.pos += rec.length
    f.dirty = true
    f.lastSeq = seq
  }

  /** Makes every appended record durable: one fdatasync per file written since the last. */
  async sync(): Promise<void> {
    // Older epoch first: a newer file must never be durable past a hole in an older one.
    const ordered = this.files[0].epoch <= this.files[1].epoch ? this.files : [this.files[1], this.files[0]]
    for (const f of ordered) {
      if (!f.dirty) continue
      f.dirty = false
      try {
        const t0 = performance.now()
        await fdatasyncAsync(f.fd)
        fsyncs.inc()
        syncSeconds.observe((performance.now() - t0) / 1000)
      } catch (err) {
        f.dirty = true
        throw err
      }
    }
  }

  /** The epoch to checkpoint once LevelDB holds every commit up to `appliedSeq`, if any. */
  checkpointDue(appliedSeq: number): number | null {
    const p = this.pendingCheckpoint
    return p && p.lastSeq <= appliedSeq ? p.epoch : null
  }

  /** LevelDB now durably holds every commit of `epoch`: its file may be reused. */
  checkpointed(epoch: number): void {
    if (this.pendingCheckpoint?.epoch === epoch) this.pendingCheckpoint = null
  }

  get epoch(): number {
    return this.files[this.cur].epoch
  }

  close(): void {
    for (const f of this.files) closeSync(f.fd)
  }
}

function openFile(name: string, fileBytes: number): WalFile {
  const fd = openSync(name, 'a+')
  closeSync(fd)
  const rw = openSync(name, 'r+')
  if (fstatSync(rw).size < fileBytes) {
    // Preallocate with real zeros (not fallocate's unwritten extents), so that later writes
    // overwrite existing blocks and fdatasync has no metadata to flush.
    const zeros = Buffer.alloc(1 << 20)
    const have = fstatSync(rw).size
    for (let at = have; at < fileBytes; at += zeros.length) writeAll(rw, zeros.subarray(0, Math.min(zeros.length, fileBytes - at)), at)
  }
  const header = Buffer.alloc(HEADER_BYTES)
  readSync(rw, header, 0, HEADER_BYTES, 0)
  let epoch = 0
  if (header.readUInt32BE(0) === FILE_MAGIC && header.readUInt32BE(4) === VERSION && crc32c(header.subarray(0, 16)) === header.readUInt32BE(16)) {
    epoch = readU64(header, 8)
  }
  return { fd: rw, name, epoch, pos: HEADER_BYTES, dirty: true, lastSeq: 0 }
}

function beginEpoch(f: WalFile, epoch: number): void {
  const header = Buffer.alloc(HEADER_BYTES)
  header.writeUInt32BE(FILE_MAGIC, 0)
  header.writeUInt32BE(VERSION, 4)
  writeU64(header, 8, epoch)
  header.writeUInt32BE(crc32c(header.subarray(0, 16)), 16)
  writeAll(f.fd, header, 0)
  f.epoch = epoch
  f.pos = HEADER_BYTES
  f.dirty = true
  f.lastSeq = 0
}

/** Valid records of a file's current epoch, in order, up to the first bad one. */
function readRecords(f: WalFile): Array<{ seq: number; payload: Buffer }> {
  const out: Array<{ seq: number; payload: Buffer }> = []
  const head = Buffer.alloc(RECORD_HEADER)
  const size = fstatSync(f.fd).size
  let pos = HEADER_BYTES
  let prevSeq = -1
  while (pos + RECORD_HEADER <= size) {
    readSync(f.fd, head, 0, RECORD_HEADER, pos)
    if (head.readUInt32BE(0) !== RECORD_MAGIC || readU64(head, 8) !== f.epoch) break
    const len = head.readUInt32BE(4)
    const seq = readU64(head, 16)
    if (pos + RECORD_HEADER + len > size || (prevSeq >= 0 && seq !== prevSeq + 1)) break
    const payload = Buffer.allocUnsafe(len)
    readSync(f.fd, payload, 0, len, pos + RECORD_HEADER)
    if (crc32c(payload, crc32c(head.subarray(8, 24))) !== head.readUInt32BE(24)) break
    out.push({ seq, payload })
    prevSeq = seq
    pos += pageAlign(RECORD_HEADER + len)
  }
  return out
}

const PAGE = 4096
const pageAlign = (n: number): number => Math.ceil(n / PAGE) * PAGE

function writeAll(fd: number, buf: Buffer, at: number): void {
  let done = 0
  while (done < buf.length) done += writeSync(fd, buf, done, buf.length - done, at + done)
}

function writeU64(b: Buffer, off: number, v: number): void {
  b.writeUInt32BE(Math.floor(v / 0x100000000), off)
  b.writeUInt32BE(v >>> 0, off + 4)
}

function readU64(b: Buffer, off: number): number {
  return b.readUInt32BE(off) * 0x100000000 + b.readUInt32BE(off + 4)
}

export type WalOp = { type: 'put' | 'del'; key: Buffer; value?: Buffer }

function opsBytes(ops: ReadonlyArray<WalOp>): number {
  let size = 4
  for (const op of ops) size += 3 + op.key.length + (op.type === 'put' ? 4 + (op.value as Buffer).length : 0)
  return size
}

/**
 * Ops -> WAL payload, into b (exactly opsBytes(ops) long): count u32, then per op: type u8
 * (1 put, 2 del), key u16 + bytes, [value u32 + bytes]. decodeOps is the inverse.
 */
function encodeOpsInto(ops: ReadonlyArray<WalOp>, b: Buffer): void {
  b.writeUInt32BE(ops.length, 0)
  let p = 4
  for (const op of ops) {
    b[p++] = op.type === 'put' ? 1 : 2
    b.writeUInt16BE(op.key.length, p)
    p += 2
    op.key.copy(b, p)
    p += op.key.length
    if (op.type === 'put') {
      const v = op.value as Buffer
      b.writeUInt32BE(v.length, p)
      p += 4
      v.copy(b, p)
      p += v.length
    }
  }
  if (p !== b.length) throw new Error(`WAL payload of ${b.length} bytes encoded as ${p}`)
}

export function decodeOps(b: Buffer): Array<{ type: 'put'; key: Buffer; value: Buffer } | { type: 'del'; key: Buffer }> {
  const n = b.readUInt32BE(0)
  const out: Array<{ type: 'put'; key: Buffer; value: Buffer } | { type: 'del'; key: Buffer }> = []
  let p = 4
  for (let i = 0; i < n; i++) {
    const type = b[p++]
    const klen = b.readUInt16BE(p)
    p += 2
    const key = b.subarray(p, p + klen)
    p += klen
    if (type === 1) {
      const vlen = b.readUInt32BE(p)
      p += 4
      out.push({ type: 'put', key, value: b.subarray(p, p + vlen) })
      p += vlen
    } else {
      out.push({ type: 'del', key })
    }
  }
  if (p !== b.length) throw new Error(`WAL payload has ${b.length - p} stray bytes`)
  return out
}
