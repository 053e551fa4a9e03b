// The key layout of the whole keyspace, in one place. docs/storage-format.md is the contract.
//
//   key = hash8(partition) ++ kind ++ partition ++ suffix
//
// | kind | name    | partition                    | suffix               | holds                         |
// | 0x00 | META    | ascii "meta"                 | ascii name           | format record, inode counter  |
// | 0x01 | DIRSELF | dir ino u64                  | (empty)              | a directory's own attributes  |
// | 0x02 | DENTRY  | parent ino u64               | name bytes           | entry (+ inline inode)        |
// | 0x03 | INODE   | ino u64                      | (empty)              | multi-link / orphan attributes|
// | 0x04 | BLOCK   | ino u64 ++ chunk u32         | block-in-chunk u16   | <= 16 KiB of data + crc32c    |
// | 0x05 | ORPHAN  | ascii "orphans"              | ino u64              | unlinked-while-open marker    |
// | 0x06 | VOLUME  | ascii "volumes"              | volume name          | a Docker volume and its mounts|
//
// hash8 spreads partitions over the keyspace; DIRSELF sorts just before the directory's
// DENTRY keys (same partition, same hash8), so a directory and its entries share a region.

export const Kind = {
  META: 0x00,
  DIRSELF: 0x01,
  DENTRY: 0x02,
  INODE: 0x03,
  BLOCK: 0x04,
  ORPHAN: 0x05,
  VOLUME: 0x06,
} as const
export type Kind = (typeof Kind)[keyof typeof Kind]

/** Data block size: small enough that a database page write rewrites little (docs/storage-format.md). */
export const BLOCK_SIZE = 16 * 1024
export const CHUNK_BLOCKS = 256 // 4 MiB chunks
export const MAX_NAME_BYTES = 255

/** MurmurHash3 x86 32-bit: stable, fast in JS, well distributed. Part of the on-disk format. */
export function murmur3(data: Uint8Array, seed: number): number {
  let h = seed >>> 0
  const n = data.length
  const blocks = n & ~3
  for (let i = 0; i < blocks; i += 4) {
    let k = data[i] | (data[i + 1] << 8) | (data[i + 2] << 16) | (data[i + 3] << 24)
    k = Math.imul(k, 0xcc9e2d51)
    k = (k << 15) | (k >>> 17)
    k = Math.imul(k, 0x1b873593)
    h ^= k
    h = (h << 13) | (h >>> 19)
    h = (Math.imul(h, 5) + 0xe6546b64) | 0
  }
  const tail = n & 3
  if (tail > 0) {
    let k = 0
    if (tail === 3) k ^= data[blocks + 2] << 16
    if (tail >= 2) k ^= data[blocks + 1] << 8
    k ^= data[blocks]
    k = Math.imul(k, 0xcc9e2d51)
    k = (k << 15) | (k >>> 17)
    k = Math.imul(k, 0x1b873593)
    h ^= k
  }
  h ^= n
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  h ^= h >>> 16
  return h >>> 0
}

const SEED_HI = 0
const SEED_LO = 0x9747b28c

/** Builds hash8(partition) ++ kind ++ partition ++ suffix. */
export function makeKey(kind: Kind, partition: Uint8Array, suffix?: Uint8Array): Buffer {
  const slen = suffix ? suffix.length : 0
  const key = Buffer.allocUnsafe(9 + partition.length + slen)
  key.writeUInt32BE(murmur3(partition, SEED_HI), 0)
  key.writeUInt32BE(murmur3(partition, SEED_LO), 4)
  key[8] = kind
  key.set(partition, 9)
  if (suffix) key.set(suffix, 9 + partition.length)
  return key
}

/** u64 big-endian for inode numbers up to 2^53. */
export function u64(n: number): Buffer {
  const b = Buffer.allocUnsafe(8)
  b.writeUInt32BE(Math.floor(n / 0x100000000), 0)
  b.writeUInt32BE(n >>> 0, 4)
  return b
}

export function readU64(b: Uint8Array, off: number): number {
  const v = Buffer.from(b.buffer, b.byteOffset, b.byteLength)
  return v.readUInt32BE(off) * 0x100000000 + v.readUInt32BE(off + 4)
}

const META_PARTITION = Buffer.from('meta', 'ascii')
const ORPHAN_PARTITION = Buffer.from('orphans', 'ascii')
const VOLUME_PARTITION = Buffer.from('volumes', 'ascii')

export const keys = {
  meta: (name: string): Buffer => makeKey(Kind.META, META_PARTITION, Buffer.from(name, 'ascii')),
  dirSelf: (ino: number): Buffer => makeKey(Kind.DIRSELF, u64(ino)),
  dentry: (parent: number, name: Uint8Array): Buffer => makeKey(Kind.DENTRY, u64(parent), name),
  inode: (ino: number): Buffer => makeKey(Kind.INODE, u64(ino)),
  block: (ino: number, blockIndex: number): Buffer => {
    const part = Buffer.allocUnsafe(12)
    part.writeUInt32BE(Math.floor(ino / 0x100000000), 0)
    part.writeUInt32BE(ino >>> 0, 4)
    part.writeUInt32BE(Math.floor(blockIndex / CHUNK_BLOCKS), 8)
    const suffix = Buffer.allocUnsafe(2)
    suffix.writeUInt16BE(blockIndex % CHUNK_BLOCKS, 0)
    return makeKey(Kind.BLOCK, part, suffix)
  },
  orphan: (ino: number): Buffer => makeKey(Kind.ORPHAN, ORPHAN_PARTITION, u64(ino)),
  volume: (name: string): Buffer => makeKey(Kind.VOLUME, VOLUME_PARTITION, Buffer.from(name, 'utf8')),
  /** [start, end) covering every VOLUME record, in name order (one partition: one scan). */
  volumeRange: (): { start: Buffer; end: Buffer } => {
    const start = makeKey(Kind.VOLUME, VOLUME_PARTITION)
    return { start, end: prefixEnd(start) }
  },
  /** [start, end) covering every DENTRY of a directory, in name order. */
  dentryRange: (parent: number): { start: Buffer; end: Buffer } => {
    const start = makeKey(Kind.DENTRY, u64(parent))
    return { start, end: prefixEnd(start) }
  },
  /** The dentryRange of the directory a DENTRY key is in; undefined for any other key. */
  dentryRangeOf: (key: Buffer): { start: Buffer; end: Buffer } | undefined => {
    if (key.length < 17 || key[8] !== Kind.DENTRY) return undefined
    const start = key.subarray(0, 17)
    return { start, end: prefixEnd(start) }
  },
  /** [start, end) covering every ORPHAN marker. */
  orphanRange: (): { start: Buffer; end: Buffer } => {
    const start = makeKey(Kind.ORPHAN, ORPHAN_PARTITION)
    return { start, end: prefixEnd(start) }
  },
}

/** Whether a key is a file data block's (kind BLOCK): never leased (docs/metadata-leases.md,
 * "No leases on file data"). */
export function isBlockKey(key: Uint8Array): boolean {
  return key.length > 8 && key[8] === Kind.BLOCK
}

/** Whether [start, end) could hold a BLOCK key: unless start and end agree on their first 9
 * bytes (hash8 and kind) and that kind is not BLOCK, some key between them may be one. */
export function rangeMayHoldBlocks(start: Uint8Array, end: Uint8Array): boolean {
  if (start.length < 9 || end.length < 9) return true
  for (let i = 0; i < 9; i++) if (start[i] !== end[i]) return true
  return start[8] === Kind.BLOCK
}

/** The smallest key greater than every key starting with `prefix`. */
export function prefixEnd(prefix: Uint8Array): Buffer {
  const end = Buffer.from(prefix)
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i] !== 0xff) {
      end[i]++
      return end.subarray(0, i + 1)
    }
  }
  throw new Error('prefixEnd: prefix is all 0xff')
}

/** Splits a key back into its parts; throws on a key too short to be one of ours. */
export function parseKey(key: Uint8Array): { kind: number; hash: Buffer; rest: Buffer } {
  if (key.length < 9) throw new Error(`key too short (${key.length} bytes)`)
  const b = Buffer.from(key.buffer, key.byteOffset, key.byteLength)
  return { hash: b.subarray(0, 8), kind: b[8], rest: b.subarray(9) }
}

/** Block index math: which blocks cover [offset, offset + length). */
export function blockSpan(offset: number, length: number): { first: number; last: number } {
  if (length <= 0) return { first: 0, last: -1 }
  return { first: Math.floor(offset / BLOCK_SIZE), last: Math.floor((offset + length - 1) / BLOCK_SIZE) }
}

export function hexKey(key: Uint8Array): string {
  return Buffer.from(key.buffer, key.byteOffset, key.byteLength).toString('hex')
}
