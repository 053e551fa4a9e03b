// crc32c of a concatenation from the crcs of its parts, so a value whose parts are already
// checksummed needs no second pass over its bytes (docs/node-store.md, "A pointer value").
//
// crc32c(A ++ B) = shift(crc32c(A), |B|) xor crc32c(B), where shift(c, n) is what feeding n zero
// bytes does to a crc register holding c, minus the effect of the register's initial value
// (which cancels, for CRC-32C's init = xorout = 0xffffffff, as in zlib's crc32_combine). shift
// is linear over GF(2): a 32x32 bit matrix, the operator for one zero byte raised to the n-th
// power by squaring. The operator for each length is kept (a block value's payload has a few
// lengths: 16 KiB, and the tails of files).
import { crc32c } from '@node-rs/crc32'
import { BLOCK_VALUE_HEADER, BLOCK_VALUE_TYPE, BLOCK_VALUE_VERSION } from './blockvalue'
import { Kind } from './keys'

/** CRC-32C's polynomial, reflected (Castagnoli). */
const POLY = 0x82f63b78

/** mat (32 columns, column i the image of bit i) times vec. */
function times(mat: Uint32Array, vec: number): number {
  let sum = 0
  for (let i = 0; vec !== 0; i++, vec >>>= 1) if (vec & 1) sum ^= mat[i] as number
  return sum >>> 0
}

/** a * b (apply b, then a). */
function compose(a: Uint32Array, b: Uint32Array): Uint32Array {
  const out = new Uint32Array(32)
  for (let i = 0; i < 32; i++) out[i] = times(a, b[i] as number)
  return out
}

/** The operator for one zero bit, then for one zero byte (8 bits). */
const ONE_BIT = (() => {
  const m = new Uint32Array(32)
  m[0] = POLY
  for (let i = 1; i < 32; i++) m[i] = (1 << (i - 1)) >>> 0
  return m
})()
const ONE_BYTE = compose(compose(compose(ONE_BIT, ONE_BIT), compose(ONE_BIT, ONE_BIT)), compose(compose(ONE_BIT, ONE_BIT), compose(ONE_BIT, ONE_BIT)))

const MAX_KEPT = 256
const kept = new Map<number, Uint32Array>()

/** The operator for n zero bytes. */
function zeros(n: number): Uint32Array {
  let op = kept.get(n)
  if (op) return op
  let result: Uint32Array | null = null
  let square = ONE_BYTE
  for (let k = n; k > 0; k = Math.floor(k / 2)) {
    if (k % 2 === 1) result = result ? compose(square, result) : square
    if (k > 1) square = compose(square, square)
  }
  op = result ?? identity()
  if (kept.size >= MAX_KEPT) kept.delete(kept.keys().next().value as number)
  kept.set(n, op)
  return op
}

function identity(): Uint32Array {
  const m = new Uint32Array(32)
  for (let i = 0; i < 32; i++) m[i] = (1 << i) >>> 0
  return m
}

/** crc32c(A ++ B) from crc32c(A), crc32c(B) and B's length. */
export function crc32cCombine(crcA: number, crcB: number, lenB: number): number {
  if (!Number.isSafeInteger(lenB) || lenB < 0) throw new RangeError(`crc32cCombine: length ${lenB}`)
  if (lenB === 0) return crcA >>> 0
  return (times(zeros(lenB), crcA >>> 0) ^ crcB) >>> 0
}

/**
 * crc32c of a value stored at `key`. A file block (a BLOCK key, whose value is by contract a
 * block value, docs/kv.md: version 1, type 6, crc32c of the payload, the payload) carries its
 * payload's crc, made by the writer: the value's crc is combined from it and the 6-byte header's,
 * without reading the payload again. So it equals crc32c(value) exactly when the block's own crc
 * is right; a block whose bytes do not match its crc gets a crc its bytes do not match either,
 * and fails every check against it (a read of it is refused, as the filesystem would refuse the
 * block itself). Any other value, under any other key, is checksummed byte by byte: only a BLOCK
 * key says that its first six bytes are a header and not data that looks like one.
 */
export function valueCrc(key: Uint8Array, value: Buffer): number {
  const block = key.length > KIND_AT && key[KIND_AT] === Kind.BLOCK
  if (block && value.length >= BLOCK_VALUE_HEADER && value[0] === BLOCK_VALUE_VERSION && value[1] === BLOCK_VALUE_TYPE) {
    return crc32cCombine(crc32c(value.subarray(0, BLOCK_VALUE_HEADER)), value.readUInt32BE(2), value.length - BLOCK_VALUE_HEADER)
  }
  return crc32c(value)
}

/** Where a key's kind is (after its 8-byte partition hash, src/kv/keys.ts). */
const KIND_AT = 8
