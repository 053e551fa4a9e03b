// Block values and the patches that merge into them (docs/kv.md, "Partial block writes").
//
// A block value is version u8 = 1, type u8 = 6, crc32c u32 of the payload, the payload: the
// filesystem's BLOCK record (docs/storage-format.md). The store knows this one layout so that
// it can merge a small write into a block where the block already is, instead of the client
// reading the whole block first. Both stores (LocalKV, a region leader for ClusterKV) merge
// with mergePatch; nothing else here touches a block's bytes.
import { crc32c } from '@node-rs/crc32'
import { BLOCK_SIZE } from './keys'

export const BLOCK_VALUE_VERSION = 1
export const BLOCK_VALUE_TYPE = 6
export const BLOCK_VALUE_HEADER = 6
/** The largest payload a patch may produce (one file block). */
export const BLOCK_PATCH_MAX = BLOCK_SIZE

/** Bytes to write at `offset` of a block's payload, with the crc32c of `data` made by the
 * writer when it made the patch (checked where the patch is merged). */
export interface PatchRange {
  readonly offset: number
  readonly data: Buffer
  readonly crc: number
}

/** A patch that cannot be merged: a range out of bounds or failing its crc, or an old value
 * that is not a sound block. Nothing is written. */
export class PatchError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'PatchError'
  }
}

/** A block value holding `payload`. */
export function encodeBlockValue(payload: Uint8Array): Buffer {
  const buf = Buffer.allocUnsafe(BLOCK_VALUE_HEADER + payload.length)
  buf[0] = BLOCK_VALUE_VERSION
  buf[1] = BLOCK_VALUE_TYPE
  buf.writeUInt32BE(crc32c(payload), 2)
  buf.set(payload, BLOCK_VALUE_HEADER)
  return buf
}

/** A range for `data` at `offset`, its crc computed now. */
export function patchRange(offset: number, data: Buffer): PatchRange {
  return { offset, data, crc: crc32c(data) }
}

/** Checks a patch's ranges on their own (bounds, crcs); throws PatchError. */
export function checkPatch(ranges: readonly PatchRange[]): void {
  if (ranges.length === 0) throw new PatchError('a patch without ranges')
  for (const r of ranges) {
    if (!Number.isSafeInteger(r.offset) || r.offset < 0 || r.data.length === 0 || r.offset + r.data.length > BLOCK_PATCH_MAX) {
      throw new PatchError(`a patch range of ${r.data.length} bytes at ${r.offset} is outside a block of ${BLOCK_PATCH_MAX} bytes`)
    }
    if (crc32c(r.data) !== r.crc >>> 0) throw new PatchError(`a patch range of ${r.data.length} bytes at ${r.offset} fails its checksum`)
  }
}

/**
 * The block value `old` (undefined: absent) with `ranges` written into its payload in order:
 * the payload is extended with zeros to the furthest range's end when shorter, and gets a new
 * crc32c. Checks each range's crc and the old value's layout and crc first; throws PatchError.
 */
export function mergePatch(old: Buffer | undefined, ranges: readonly PatchRange[]): Buffer {
  checkPatch(ranges)
  let base: Buffer = Buffer.alloc(0)
  if (old !== undefined) {
    if (old.length < BLOCK_VALUE_HEADER || old[0] !== BLOCK_VALUE_VERSION || old[1] !== BLOCK_VALUE_TYPE) throw new PatchError('the value to patch is not a block')
    base = old.subarray(BLOCK_VALUE_HEADER)
    if (base.length > BLOCK_PATCH_MAX) throw new PatchError(`the block to patch holds ${base.length} bytes, over ${BLOCK_PATCH_MAX}`)
    if (crc32c(base) !== old.readUInt32BE(2)) throw new PatchError('the block to patch fails its checksum')
  }
  let len = base.length
  for (const r of ranges) len = Math.max(len, r.offset + r.data.length)
  const out = Buffer.alloc(BLOCK_VALUE_HEADER + len)
  base.copy(out, BLOCK_VALUE_HEADER)
  for (const r of ranges) r.data.copy(out, BLOCK_VALUE_HEADER + r.offset)
  out[0] = BLOCK_VALUE_VERSION
  out[1] = BLOCK_VALUE_TYPE
  out.writeUInt32BE(crc32c(out.subarray(BLOCK_VALUE_HEADER)), 2)
  return out
}
