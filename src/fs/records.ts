// Encoders and decoders of every value PolyFS stores (docs/storage-format.md is the contract).
// Every record: version u8, type u8, body, crc32c u32 over all before it (BLOCK: crc of data
// right after the header instead). Decoders never return bytes that failed a check: they
// throw CorruptRecordError naming the key, which the filesystem turns into EIO.
import { crc32c } from '@node-rs/crc32'
import { BLOCK_VALUE_HEADER, BLOCK_VALUE_TYPE, BLOCK_VALUE_VERSION, encodeBlockValue, hexKey } from '../kv'
import { InodeFields } from './types'

/** The version byte of every record (the block value's, src/kv/blockvalue.ts, is the same). */
export const RECORD_VERSION = BLOCK_VALUE_VERSION
export const FORMAT_VERSION = 1

export const RecordType = {
  META: 1,
  COUNTER: 2,
  DIRSELF: 3,
  DENTRY: 4,
  INODE: 5,
  BLOCK: BLOCK_VALUE_TYPE,
  ORPHAN: 7,
  VOLUME: 8,
} as const
export type RecordType = (typeof RecordType)[keyof typeof RecordType]

export const DentryForm = { INLINE: 1, REF: 2 } as const
export type DentryForm = (typeof DentryForm)[keyof typeof DentryForm]

export class CorruptRecordError extends Error {
  constructor(
    readonly key: Buffer | undefined,
    reason: string,
  ) {
    super(`corrupt record${key ? ` at key ${hexKey(key)}` : ''}: ${reason}`)
    this.name = 'CorruptRecordError'
  }
}

/** An inode's attributes, wherever they are stored. */
export interface Attrs extends InodeFields {
  /** Symlink target; empty for everything else. */
  target: Buffer
  /** Extended attributes by name. */
  xattrs: Map<string, Buffer>
}

export interface DirSelf {
  ino: number
  parent: number
  attrs: Attrs
}

export type Dentry =
  | { form: typeof DentryForm.INLINE; ino: number; dtype: number; attrs: Attrs }
  | { form: typeof DentryForm.REF; ino: number; dtype: number }

/** A Docker volume (src/plugin): its options, its state and who has it mounted. */
export interface VolumeRecord {
  createdSec: number
  createdNsec: number
  /** 1 ready, 2 being removed. */
  state: number
  /** The validated `-o` options it was created with, sorted by name. */
  options: [string, string][]
  /** Mounts by Docker mount id, each with the node that made it and when. */
  mounts: { node: number; id: string; sinceSec: number }[]
}

export const VolumeState = { READY: 1, REMOVING: 2 } as const

export interface Meta {
  format: number
  blockSizeBytes: number
  chunkBlocks: number
  createdSec: number
}

// ---- a tiny growable writer and a bounds-checked reader ----

class Writer {
  private buf: Buffer
  private pos = 0
  constructor(size: number) {
    this.buf = Buffer.allocUnsafe(size)
  }
  private room(n: number): void {
    if (this.pos + n <= this.buf.length) return
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n))
    this.buf.copy(next, 0, 0, this.pos)
    this.buf = next
  }
  u8(v: number): void {
    this.room(1)
    this.buf[this.pos++] = v
  }
  u16(v: number): void {
    this.room(2)
    this.buf.writeUInt16BE(v, this.pos)
    this.pos += 2
  }
  u32(v: number): void {
    this.room(4)
    this.buf.writeUInt32BE(v >>> 0, this.pos)
    this.pos += 4
  }
  u64(v: number): void {
    this.u32(Math.floor(v / 0x100000000))
    this.u32(v >>> 0)
  }
  i64(v: number): void {
    const hi = Math.floor(v / 0x100000000)
    this.room(8)
    this.buf.writeInt32BE(hi, this.pos)
    this.buf.writeUInt32BE((v - hi * 0x100000000) >>> 0, this.pos + 4)
    this.pos += 8
  }
  bytes(b: Uint8Array): void {
    this.room(b.length)
    this.buf.set(b, this.pos)
    this.pos += b.length
  }
  /** Appends crc32c of everything so far and returns the record. */
  seal(): Buffer {
    const crc = crc32c(this.buf.subarray(0, this.pos))
    this.u32(crc)
    return this.buf.subarray(0, this.pos)
  }
}

class Reader {
  pos = 2
  constructor(
    readonly buf: Buffer,
    readonly end: number,
    readonly key: Buffer | undefined,
  ) {}
  private need(n: number): void {
    if (this.pos + n > this.end) throw new CorruptRecordError(this.key, 'record is truncated')
  }
  u8(): number {
    this.need(1)
    return this.buf[this.pos++]
  }
  u16(): number {
    this.need(2)
    const v = this.buf.readUInt16BE(this.pos)
    this.pos += 2
    return v
  }
  u32(): number {
    this.need(4)
    const v = this.buf.readUInt32BE(this.pos)
    this.pos += 4
    return v
  }
  u64(): number {
    const hi = this.u32()
    return hi * 0x100000000 + this.u32()
  }
  i64(): number {
    this.need(8)
    const hi = this.buf.readInt32BE(this.pos)
    const lo = this.buf.readUInt32BE(this.pos + 4)
    this.pos += 8
    return hi * 0x100000000 + lo
  }
  bytes(n: number): Buffer {
    this.need(n)
    const b = this.buf.subarray(this.pos, this.pos + n)
    this.pos += n
    return b
  }
  done(): void {
    if (this.pos !== this.end) throw new CorruptRecordError(this.key, `${this.end - this.pos} unexpected trailing bytes`)
  }
}

function open(buf: Buffer, type: RecordType, key: Buffer | undefined): Reader {
  if (buf.length < 6) throw new CorruptRecordError(key, `record of ${buf.length} bytes is too short`)
  if (buf[0] !== RECORD_VERSION) throw new CorruptRecordError(key, `unknown record version ${buf[0]} (this build reads ${RECORD_VERSION})`)
  if (buf[1] !== type) throw new CorruptRecordError(key, `record type ${buf[1]} where ${type} was expected`)
  const end = buf.length - 4
  if (crc32c(buf.subarray(0, end)) !== buf.readUInt32BE(end)) throw new CorruptRecordError(key, 'checksum mismatch')
  return new Reader(buf, end, key)
}

function header(type: RecordType, size: number): Writer {
  const w = new Writer(size)
  w.u8(RECORD_VERSION)
  w.u8(type)
  return w
}

// ---- attributes ----

function writeAttrs(w: Writer, a: Attrs): void {
  w.u32(a.mode)
  w.u32(a.uid)
  w.u32(a.gid)
  w.u32(a.nlink)
  w.u64(a.size)
  w.u32(a.rdev)
  w.i64(a.atimeSec)
  w.u32(a.atimeNsec)
  w.i64(a.mtimeSec)
  w.u32(a.mtimeNsec)
  w.i64(a.ctimeSec)
  w.u32(a.ctimeNsec)
  w.u16(a.target.length)
  w.bytes(a.target)
  const names = [...a.xattrs.keys()].sort()
  w.u16(names.length)
  for (const name of names) {
    const nb = Buffer.from(name, 'utf8')
    const v = a.xattrs.get(name) as Buffer
    w.u8(nb.length)
    w.bytes(nb)
    w.u32(v.length)
    w.bytes(v)
  }
}

function readAttrs(r: Reader): Attrs {
  const a: Attrs = {
    mode: r.u32(),
    uid: r.u32(),
    gid: r.u32(),
    nlink: r.u32(),
    size: r.u64(),
    rdev: r.u32(),
    atimeSec: r.i64(),
    atimeNsec: r.u32(),
    mtimeSec: r.i64(),
    mtimeNsec: r.u32(),
    ctimeSec: r.i64(),
    ctimeNsec: r.u32(),
    target: Buffer.alloc(0),
    xattrs: new Map(),
  }
  a.target = Buffer.from(r.bytes(r.u16()))
  const n = r.u16()
  for (let i = 0; i < n; i++) {
    const name = r.bytes(r.u8()).toString('utf8')
    a.xattrs.set(name, Buffer.from(r.bytes(r.u32())))
  }
  if (a.atimeNsec > 999_999_999 || a.mtimeNsec > 999_999_999 || a.ctimeNsec > 999_999_999) {
    throw new CorruptRecordError(r.key, 'nanoseconds out of range')
  }
  return a
}

function attrsSize(a: Attrs): number {
  let n = 64 + a.target.length
  for (const [k, v] of a.xattrs) n += 5 + k.length * 3 + v.length
  return n
}

// ---- records ----

export function encodeMeta(m: Meta): Buffer {
  const w = header(RecordType.META, 32)
  w.u32(m.format)
  w.u32(m.blockSizeBytes)
  w.u32(m.chunkBlocks)
  w.u64(m.createdSec)
  return w.seal()
}

export function decodeMeta(buf: Buffer, key?: Buffer): Meta {
  const r = open(buf, RecordType.META, key)
  const m = { format: r.u32(), blockSizeBytes: r.u32(), chunkBlocks: r.u32(), createdSec: r.u64() }
  r.done()
  return m
}

export function encodeCounter(next: number): Buffer {
  const w = header(RecordType.COUNTER, 16)
  w.u64(next)
  return w.seal()
}

export function decodeCounter(buf: Buffer, key?: Buffer): number {
  const r = open(buf, RecordType.COUNTER, key)
  const next = r.u64()
  r.done()
  return next
}

export function encodeDirSelf(d: DirSelf): Buffer {
  const w = header(RecordType.DIRSELF, 24 + attrsSize(d.attrs))
  w.u64(d.ino)
  w.u64(d.parent)
  writeAttrs(w, d.attrs)
  return w.seal()
}

export function decodeDirSelf(buf: Buffer, key?: Buffer): DirSelf {
  const r = open(buf, RecordType.DIRSELF, key)
  const d = { ino: r.u64(), parent: r.u64(), attrs: readAttrs(r) }
  r.done()
  return d
}

export function encodeDentry(d: Dentry): Buffer {
  const w = header(RecordType.DENTRY, 20 + (d.form === DentryForm.INLINE ? attrsSize(d.attrs) : 0))
  w.u8(d.form)
  w.u64(d.ino)
  w.u8(d.dtype)
  if (d.form === DentryForm.INLINE) writeAttrs(w, d.attrs)
  return w.seal()
}

export function decodeDentry(buf: Buffer, key?: Buffer): Dentry {
  const r = open(buf, RecordType.DENTRY, key)
  const form = r.u8()
  const ino = r.u64()
  const dtype = r.u8()
  let d: Dentry
  if (form === DentryForm.INLINE) d = { form, ino, dtype, attrs: readAttrs(r) }
  else if (form === DentryForm.REF) d = { form, ino, dtype }
  else throw new CorruptRecordError(key, `unknown dentry form ${form}`)
  r.done()
  return d
}

export function encodeInode(ino: number, attrs: Attrs): Buffer {
  const w = header(RecordType.INODE, 16 + attrsSize(attrs))
  w.u64(ino)
  writeAttrs(w, attrs)
  return w.seal()
}

export function decodeInode(buf: Buffer, key?: Buffer): { ino: number; attrs: Attrs } {
  const r = open(buf, RecordType.INODE, key)
  const d = { ino: r.u64(), attrs: readAttrs(r) }
  r.done()
  return d
}

export function encodeOrphan(): Buffer {
  return header(RecordType.ORPHAN, 8).seal()
}

export function decodeOrphan(buf: Buffer, key?: Buffer): void {
  open(buf, RecordType.ORPHAN, key).done()
}

export function encodeVolume(v: VolumeRecord): Buffer {
  const w = header(RecordType.VOLUME, 64)
  w.u64(v.createdSec)
  w.u32(v.createdNsec)
  w.u8(v.state)
  w.u16(v.options.length)
  for (const [k, val] of v.options) {
    const kb = Buffer.from(k, 'utf8')
    const vb = Buffer.from(val, 'utf8')
    w.u8(kb.length)
    w.bytes(kb)
    w.u16(vb.length)
    w.bytes(vb)
  }
  w.u16(v.mounts.length)
  for (const m of v.mounts) {
    const ib = Buffer.from(m.id, 'utf8')
    w.u64(m.node)
    w.u16(ib.length)
    w.bytes(ib)
    w.u64(m.sinceSec)
  }
  return w.seal()
}

export function decodeVolume(buf: Buffer, key?: Buffer): VolumeRecord {
  const r = open(buf, RecordType.VOLUME, key)
  const v: VolumeRecord = { createdSec: r.u64(), createdNsec: r.u32(), state: r.u8(), options: [], mounts: [] }
  if (v.state !== VolumeState.READY && v.state !== VolumeState.REMOVING) throw new CorruptRecordError(key, `unknown volume state ${v.state}`)
  for (let n = r.u16(); n > 0; n--) {
    const k = r.bytes(r.u8()).toString('utf8')
    v.options.push([k, r.bytes(r.u16()).toString('utf8')])
  }
  for (let n = r.u16(); n > 0; n--) {
    const node = r.u64()
    const id = r.bytes(r.u16()).toString('utf8')
    v.mounts.push({ node, id, sinceSec: r.u64() })
  }
  r.done()
  return v
}

const BLOCK_HEADER = BLOCK_VALUE_HEADER

/** A data block: version, type, crc32c(data), data. The writer computes the crc once. The
 * layout is the KV layer's block value (src/kv/blockvalue.ts), which a store can patch. */
export function encodeBlock(data: Uint8Array): Buffer {
  return encodeBlockValue(data)
}

/** The block's data, after checking its crc32c. Never returns unchecked bytes. */
export function decodeBlock(buf: Buffer, key?: Buffer): Buffer {
  if (buf.length < BLOCK_HEADER) throw new CorruptRecordError(key, `block of ${buf.length} bytes is too short`)
  if (buf[0] !== RECORD_VERSION) throw new CorruptRecordError(key, `unknown block version ${buf[0]}`)
  if (buf[1] !== RecordType.BLOCK) throw new CorruptRecordError(key, `record type ${buf[1]} where a block was expected`)
  const data = buf.subarray(BLOCK_HEADER)
  if (crc32c(data) !== buf.readUInt32BE(2)) throw new CorruptRecordError(key, 'block checksum mismatch')
  return data
}
