// File data: open files, the write-back buffer, reads with checksums, truncation.
//
// Data lives in blocks of BLOCK_SIZE (16 KiB) keyed by (ino, chunk, block) (src/kv/keys.ts).
// Writes go into per-inode block images held in memory (every handle of the inode shares
// them, so a host sees its own writes at once) and are committed in one transaction together
// with the file's size and mtime when a bound is passed, or on flush, fsync and release.
// Invariant: the store never holds bytes past the file's stored size; truncate trims.
import { BLOCK_SIZE, KV, Txn, blockSpan, keys, patchRange } from '../kv'
import { FsError } from './errors'
import { Node, getInode, killSuid, locate, storeAttrs, touch } from './nodes'
import { decodeBlock, encodeBlock } from './records'
import { Timespec } from './types'

/** Dirty blocks per file before a write waits for them to be committed (8 MiB). */
export const MAX_DIRTY_BLOCKS_PER_FILE = (8 * 1024 * 1024) / BLOCK_SIZE
/** Dirty blocks at which a write starts committing them in the background (2 MiB): large
 * commits, overlapped with the writer filling the next batch. */
export const FLUSH_BEHIND_BLOCKS = (2 * 1024 * 1024) / BLOCK_SIZE
/** Committed block images kept per open file to serve rewrites without a read (4 MiB). */
export const MAX_CLEAN_BLOCKS_PER_FILE = (4 * 1024 * 1024) / BLOCK_SIZE

/** Read-ahead for a sequential reader (docs/posix.md, "Read-ahead"): the window starts at
 * READ_AHEAD_MIN past the read and doubles with each sequential read up to the file system's
 * bound; each request to the store asks for READ_AHEAD_BATCH blocks (512 KiB). */
export const READ_AHEAD_MIN = 256 * 1024
export const READ_AHEAD_BATCH = (512 * 1024) / BLOCK_SIZE
/** A read that starts or ends within this distance of where the reads so far ended is part
 * of the same sequential stream. */
const READ_AHEAD_NEAR = 1024 * 1024

/** The extended attribute the kernel reads before every write. */
export const CAPS_XATTR = 'security.capability'

/** Where an open file's attributes live: its single dentry, or its INODE record. */
export type Loc = { parent: number; name: Buffer } | null

/** A block written in part without its stored bytes being read (docs/posix.md, "Data and
 * durability"): `image` holds the written bytes at their offsets, `ranges` where they are
 * (sorted, disjoint, merged). The rest of the block is whatever the store holds. */
export interface PartialBlock {
  readonly image: Buffer
  ranges: [number, number][]
}

/** One per inode with open handles; shared by all of them. */
export class OpenFile {
  refs = 0
  unlinked = false
  /** Block index -> full BLOCK_SIZE image, not yet committed. */
  dirty = new Map<number, Buffer>()
  /** Images being committed right now (still the newest data until that commit lands). */
  inflight: Map<number, Buffer> | null = null
  /** Block index -> the ranges written into it, not yet committed; the commit sends them as a
   * patch the store merges. Never a block that is also in `dirty`. */
  partial = new Map<number, PartialBlock>()
  /** Patches being committed right now: a read of such a block waits for that commit. */
  inflightPartial: Map<number, PartialBlock> | null = null
  flushing: Promise<void> | null = null
  /** Size including buffered writes. */
  size: number
  /** mtime of the newest buffered write, when there is one. */
  mtime: Timespec | null = null
  /** Set-ID bits must be cleared at the next commit (written by a non-root caller). */
  killSuid = false
  /** The file's security.capability as of its last load or commit (null: none; undefined:
   * not known). The kernel asks for it before every write (to drop it on a write); this
   * answers from the open file instead of a lookup in the store (docs/posix.md). */
  get caps(): Buffer | null | undefined {
    return this.capsNow
  }
  set caps(v: Buffer | null | undefined) {
    const same = v === null && this.capsNow === null // still none: nothing to tell
    this.capsNow = v
    if (!same) this.onCaps?.(this)
  }
  private capsNow: Buffer | null | undefined = undefined
  /** Told of every change of caps (FileSystem mirrors what it knows into the mount). */
  onCaps: ((f: OpenFile) => void) | null = null
  /** The paths FileSystem.openPaths maps to this file (so release forgets them in O(paths)). */
  readonly openPaths = new Set<string>()

  constructor(
    readonly ino: number,
    public loc: Loc,
    storedSize: number,
  ) {
    this.size = storedSize
  }

  /** Blocks read ahead of a sequential reader: block -> its stored data (undefined: a hole),
   * fetched after this file's latest open on this mount. A read takes its block out; a write
   * or truncate through this mount drops it, so nothing here is older than our own writes. */
  readonly ahead = new Map<number, Promise<Buffer | undefined>>()
  /** The first block not yet asked for ahead. */
  aheadTo = 0
  /** Where the last read ended (a read starting here is sequential), and the window. */
  readEnd = 0
  window = 0

  /** Forgets everything read ahead (a new open, a truncate, a non-sequential read). */
  dropAhead(): void {
    this.ahead.clear()
    this.aheadTo = 0
    this.window = 0
  }

  /** Recently committed block images (bounded, oldest dropped first). */
  readonly clean = new Map<number, Buffer>()

  rememberClean(b: number, image: Buffer): void {
    this.clean.delete(b)
    this.clean.set(b, image)
    if (this.clean.size > MAX_CLEAN_BLOCKS_PER_FILE) this.clean.delete(this.clean.keys().next().value as number)
  }

  get hasPending(): boolean {
    return this.dirty.size > 0 || this.partial.size > 0 || this.mtime !== null || this.killSuid
  }

  /** Blocks buffered for the next commit, whole or in part. */
  get pendingBlocks(): number {
    return this.dirty.size + this.partial.size
  }
}

/** Loads a file's node (attributes) from its current location. */
export async function loadFileNode(g: { get(key: Buffer): Promise<Buffer | undefined> }, f: OpenFile): Promise<Node> {
  if (f.loc) {
    const node = await locate(g, f.loc.parent, f.loc.name)
    if (node && node.ino === f.ino) return node
    throw new FsError('ESTALE', `open file ${f.ino} is no longer at its name`)
  }
  const attrs = await getInode(g, f.ino)
  return {
    parent: 0,
    name: Buffer.alloc(0),
    dentryKey: Buffer.alloc(0),
    dentry: { form: 2, ino: f.ino, dtype: attrs.mode >> 12 },
    ino: f.ino,
    attrs,
    where: 'inode',
  }
}

export async function readBlock(kv: { get(key: Buffer): Promise<Buffer | undefined> }, ino: number, index: number): Promise<Buffer | undefined> {
  const key = keys.block(ino, index)
  const buf = await kv.get(key)
  return buf === undefined ? undefined : decodeBlock(buf, key)
}

/** The pieces of [offset, offset + len) that fall in each block, in order. */
function* pieces(offset: number, len: number): Generator<{ b: number; inBlock: number; n: number }> {
  const { first, last } = blockSpan(offset, len)
  for (let b = first; b <= last; b++) {
    const start = Math.max(offset, b * BLOCK_SIZE)
    const end = Math.min(offset + len, (b + 1) * BLOCK_SIZE)
    yield { b, inBlock: start - b * BLOCK_SIZE, n: end - start }
  }
}

/** Copies up to `len` bytes at `offset` into `dst`; holes and short blocks read as zeros.
 * With `readAhead` > 0, a sequential reader's next blocks (up to that many bytes past the read)
 * are fetched while it is served. */
export async function readData(kv: KV, f: OpenFile, dst: Buffer, len: number, offset: number, readAhead = 0): Promise<number> {
  if (offset >= f.size) return 0
  const parts = [...pieces(offset, Math.min(len, f.size - offset))]
  await settlePartials(kv, f, parts.map(({ b }) => b))
  const lastBlock = (parts[parts.length - 1] as { b: number }).b
  if (readAhead > 0) {
    // The kernel sends the reads of its own read-ahead concurrently, so they come out of
    // order: a read near where the reads so far ended is sequential, and "near" grows with
    // the window (a larger kernel read-ahead sends reads a few MiB apart in any order).
    const end = offset + Math.min(len, f.size - offset)
    const near = nearBytes(f)
    if (offset <= f.readEnd + near && end + near >= f.readEnd) {
      if (end > f.readEnd) {
        f.window = Math.min(readAhead, Math.max(READ_AHEAD_MIN, f.window * 2))
        f.readEnd = end
      }
    } else {
      f.dropAhead()
      f.readEnd = end
    }
  }
  // The blocks neither in memory nor read ahead are read all at once: a 128 KiB read is one
  // request to the store for its eight blocks (getMany), not eight one after the other.
  // early[i]: null if the block is in memory, else its read-ahead fetch if there is one.
  const early = parts.map(({ b }) => (inMemory(f, b) ? null : f.ahead.get(b)))
  for (const { b } of parts) f.ahead.delete(b)
  const want = parts.flatMap((_, i) => (early[i] === undefined ? [i] : []))
  const wantKeys = want.map((i) => keys.block(f.ino, (parts[i] as { b: number }).b))
  const fetching = want.length > 0 ? kv.getMany(wantKeys) : null
  if (f.window > 0) readAhead1(kv, f, lastBlock)
  const fetched: (Buffer | undefined | null)[] = parts.map(() => null)
  if (fetching) {
    const vals = await fetching
    want.forEach((i, j) => {
      const buf = vals[j]
      fetched[i] = buf === undefined ? undefined : decodeBlock(buf, wantKeys[j] as Buffer)
    })
  }
  for (let i = 0; i < parts.length; i++) {
    const p = early[i]
    if (p) {
      // Fetched ahead; if that failed (a leader change, a bad block), read it again now so
      // the answer, or the error, is today's.
      fetched[i] = await p.catch(() => readBlock(kv, f.ino, (parts[i] as { b: number }).b))
    }
  }
  let out = 0
  for (let i = 0; i < parts.length; i++) {
    const { b, inBlock, n } = parts[i] as { b: number; inBlock: number; n: number }
    // Memory first, looked up again: a write may have buffered the block meanwhile.
    const image = f.dirty.get(b) ?? f.inflight?.get(b) ?? f.clean.get(b)
    if (image) {
      image.copy(dst, out, inBlock, inBlock + n)
    } else {
      // In memory when the reads went out, dropped since (a bounded cache): read it now.
      const data = fetched[i] !== null ? fetched[i] : await readBlock(kv, f.ino, b)
      const have = data ? Math.max(0, Math.min(data.length - inBlock, n)) : 0
      if (data && have > 0) data.copy(dst, out, inBlock, inBlock + have)
      if (have < n) dst.fill(0, out + have, out + n)
    }
    out += n
  }
  return out
}

/** A read within this many bytes of where the reads so far ended is part of the stream. */
function nearBytes(f: OpenFile): number {
  return Math.max(READ_AHEAD_NEAR, 2 * f.window)
}

function inMemory(f: OpenFile, b: number): boolean {
  return f.dirty.has(b) || f.inflight?.has(b) === true || f.clean.has(b)
}

/** Asks for the blocks of f's window past `lastBlock` not yet asked for, when at least half a
 * window is missing (so requests are large), in requests of READ_AHEAD_BATCH blocks. */
function readAhead1(kv: KV, f: OpenFile, lastBlock: number): void {
  const endBlock = Math.ceil(f.size / BLOCK_SIZE) - 1
  const target = Math.min(endBlock, lastBlock + Math.ceil(f.window / BLOCK_SIZE))
  const from = Math.max(f.aheadTo, lastBlock + 1)
  if (from > target) return
  if (target < endBlock && target - from + 1 < Math.ceil(f.window / BLOCK_SIZE / 2)) return
  // Blocks a stream passed by long ago (skipped, or read through a cache) are let go; not the
  // ones just behind the furthest read, which out-of-order reads may still ask for.
  const stale = Math.floor((f.readEnd - nearBytes(f)) / BLOCK_SIZE)
  for (const b of [...f.ahead.keys()]) if (b < stale) f.ahead.delete(b)
  f.aheadTo = target + 1
  for (let start = from; start <= target; start += READ_AHEAD_BATCH) {
    const blocks: number[] = []
    // Not a block written in part either: its stored bytes are about to change under us.
    for (let b = start; b <= Math.min(target, start + READ_AHEAD_BATCH - 1); b++) if (!inMemory(f, b) && !f.partial.has(b) && f.inflightPartial?.has(b) !== true) blocks.push(b)
    if (blocks.length === 0) continue
    const ks = blocks.map((b) => keys.block(f.ino, b))
    const all = kv.getMany(ks)
    blocks.forEach((b, j) => {
      const one = all.then((vals) => {
        const buf = vals[j]
        return buf === undefined ? undefined : decodeBlock(buf, ks[j] as Buffer)
      })
      one.catch(() => undefined) // a read that uses it reads again and reports; unused, it is dropped
      f.ahead.set(b, one)
    })
  }
}

/**
 * Makes the named blocks whole in memory before a read: waits for a commit carrying a patch
 * of one of them, then reads the stored bytes of each partial one and lays its written ranges
 * over them (it becomes a dirty image).
 */
async function settlePartials(kv: KV, f: OpenFile, blocks: readonly number[]): Promise<void> {
  for (;;) {
    if (f.flushing && blocks.some((b) => f.inflightPartial?.has(b) === true)) {
      await f.flushing.catch(() => undefined)
      continue
    }
    const todo = blocks.filter((b) => f.partial.has(b))
    if (todo.length === 0) return
    const ks = todo.map((b) => keys.block(f.ino, b))
    const stored = await kv.getMany(ks)
    todo.forEach((b, i) => {
      const part = f.partial.get(b)
      if (!part) return // a commit took it meanwhile: the next round waits for that commit
      const image = Buffer.alloc(BLOCK_SIZE)
      const buf = stored[i]
      if (buf !== undefined) {
        const data = decodeBlock(buf, ks[i] as Buffer)
        data.copy(image, 0, 0, Math.min(data.length, BLOCK_SIZE))
      }
      for (const [start, end] of part.ranges) part.image.copy(image, start, start, end)
      f.partial.delete(b)
      f.dirty.set(b, image)
    })
  }
}

/** Adds [start, end) to a partial block's ranges (kept sorted, disjoint and merged). */
function addRange(part: PartialBlock, start: number, end: number): void {
  const out: [number, number][] = []
  for (const [s, e] of part.ranges) {
    if (e < start || s > end) out.push([s, e])
    else {
      start = Math.min(start, s)
      end = Math.max(end, e)
    }
  }
  out.push([start, end])
  out.sort((x, y) => x[0] - y[0])
  part.ranges = out
}

/** Buffers a write. Returns once the bytes are in the file's block images. */
export async function writeData(kv: KV, f: OpenFile, src: Buffer, len: number, offset: number, now: Timespec): Promise<number> {
  let pos = 0
  for (const { b, inBlock, n } of pieces(offset, len)) {
    f.ahead.delete(b)
    const whole = inBlock === 0 && n === BLOCK_SIZE
    let image = f.dirty.get(b)
    if (!image) {
      const part = f.partial.get(b)
      if (part && !whole) {
        src.copy(part.image, inBlock, pos, pos + n)
        addRange(part, inBlock, inBlock + n)
        pos += n
        continue
      }
      if (part) f.partial.delete(b) // overwritten whole
      else if (!whole && b * BLOCK_SIZE < f.size && !f.inflight?.has(b) && !f.clean.has(b)) {
        // Part of a block whose stored bytes we do not hold: keep only what is written, and
        // let the store merge it at the commit (no read now).
        const fresh: PartialBlock = { image: Buffer.alloc(BLOCK_SIZE), ranges: [[inBlock, inBlock + n]] }
        src.copy(fresh.image, inBlock, pos, pos + n)
        f.partial.set(b, fresh)
        pos += n
        continue
      }
      image = await blockImage(kv, f, b, whole)
    }
    src.copy(image, inBlock, pos, pos + n)
    pos += n
  }
  if (offset + len > f.size) f.size = offset + len
  f.mtime = now
  return len
}

/** A fresh image of block b to write into: from the in-flight commit, the store, or zeros. */
async function blockImage(kv: KV, f: OpenFile, b: number, whole: boolean): Promise<Buffer> {
  const flying = f.inflight?.get(b)
  const clean = f.clean.get(b)
  let image: Buffer
  if (flying) {
    image = Buffer.from(flying)
  } else if (clean) {
    f.clean.delete(b) // it becomes the dirty image; committed bytes are unchanged until flush
    image = clean
  } else {
    image = Buffer.alloc(BLOCK_SIZE)
    if (!whole && b * BLOCK_SIZE < f.size) {
      const data = await readBlock(kv, f.ino, b)
      if (data) data.copy(image, 0, 0, Math.min(data.length, BLOCK_SIZE))
    }
  }
  // Another write may have made the image while we were reading: use theirs.
  const raced = f.dirty.get(b)
  if (raced) return raced
  f.dirty.set(b, image)
  return image
}

/**
 * Commits the file's buffered blocks, size and mtime in one transaction. Concurrent callers
 * share one commit; a failed commit puts its blocks back so a later fsync retries them.
 */
export async function flushFile(kv: KV, f: OpenFile, sync = false): Promise<void> {
  while (f.flushing) await f.flushing.catch(() => undefined)
  if (!f.hasPending || f.unlinked) {
    if (sync) await kv.sync()
    return
  }
  const blocks = f.dirty
  const partials = f.partial
  const size = f.size
  const mtime = f.mtime
  const kill = f.killSuid
  f.dirty = new Map()
  f.inflight = blocks
  f.partial = new Map()
  f.inflightPartial = partials
  f.mtime = null
  f.killSuid = false
  let caps: Buffer | null | undefined
  const commit = kv.txn(async (tx) => {
    const node = await loadFileNode(tx, f)
    for (const [b, image] of blocks) {
      const len = Math.min(BLOCK_SIZE, size - b * BLOCK_SIZE)
      if (len > 0) tx.put(keys.block(f.ino, b), encodeBlock(image.subarray(0, len)))
    }
    for (const [b, part] of partials) {
      const len = Math.min(BLOCK_SIZE, size - b * BLOCK_SIZE)
      const ranges = part.ranges.filter(([start]) => start < len).map(([start, end]) => patchRange(start, part.image.subarray(start, Math.min(end, len))))
      if (ranges.length > 0) tx.patch(keys.block(f.ino, b), ranges)
    }
    node.attrs.size = size
    if (mtime) touch(node.attrs, mtime, true, true)
    if (kill) killSuid(node.attrs)
    storeAttrs(tx, node)
    caps = node.attrs.xattrs.get(CAPS_XATTR) ?? null
  }, { sync })
  f.flushing = commit
  try {
    await commit
    f.caps = caps
    // Keep the committed images: the next small write to the same block (a database page)
    // then needs no read, no checksum check and no copy of the old block.
    for (const [b, image] of blocks) f.rememberClean(b, image)
    // A patched block's merged bytes were never here; nothing read ahead of them may stay.
    for (const b of partials.keys()) f.ahead.delete(b)
  } catch (err) {
    // (A block in flight whole is never made partial: a write to it copies the image.)
    for (const [b, image] of blocks) if (!f.dirty.has(b)) f.dirty.set(b, image)
    for (const [b, part] of partials) {
      if (f.dirty.has(b)) continue // overwritten whole since
      const newer = f.partial.get(b)
      if (newer) for (const [start, end] of newer.ranges) {
        newer.image.copy(part.image, start, start, end)
        addRange(part, start, end)
      }
      f.partial.set(b, part)
    }
    if (mtime && !f.mtime) f.mtime = mtime
    f.killSuid ||= kill
    throw err
  } finally {
    f.inflight = null
    f.inflightPartial = null
    f.flushing = null
  }
}

/**
 * In transaction tx: sets the size of the file at `node` to `size`, deleting blocks past it
 * and trimming the last partial one, so bytes beyond the new size can never be read again.
 */
export async function truncateInTxn(tx: Txn, node: Node, size: number, now: Timespec): Promise<void> {
  const old = node.attrs.size
  if (size < old) {
    const keepBlocks = Math.ceil(size / BLOCK_SIZE)
    const oldBlocks = Math.ceil(old / BLOCK_SIZE)
    for (let b = keepBlocks; b < oldBlocks; b++) tx.del(keys.block(node.ino, b))
    const tail = size % BLOCK_SIZE
    if (tail !== 0) {
      const b = keepBlocks - 1
      const key = keys.block(node.ino, b)
      const buf = await tx.get(key)
      if (buf) {
        const data = decodeBlock(buf, key)
        if (data.length > tail) tx.put(key, encodeBlock(data.subarray(0, tail)))
      }
    }
  }
  node.attrs.size = size
  touch(node.attrs, now, true, true)
}

/** In transaction tx: deletes every block of a file of `size` bytes. */
export function deleteBlocks(tx: Txn, ino: number, size: number): void {
  const n = Math.ceil(size / BLOCK_SIZE)
  for (let b = 0; b < n; b++) tx.del(keys.block(ino, b))
}
