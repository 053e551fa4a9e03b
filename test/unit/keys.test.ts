import assert from 'node:assert/strict'
import { test } from 'node:test'
import { BLOCK_SIZE, CHUNK_BLOCKS, Kind, blockSpan, keys, murmur3, parseKey, prefixEnd, readU64, u64 } from '../../src/kv'
import { rng, testSeed } from '../helpers/mount'

test('keys: murmur3 matches the published test vectors', () => {
  assert.equal(murmur3(Buffer.from(''), 0), 0)
  assert.equal(murmur3(Buffer.from(''), 1), 0x514e28b7)
  assert.equal(murmur3(Buffer.from('hello'), 0), 0x248bfa47)
  assert.equal(murmur3(Buffer.from('The quick brown fox jumps over the lazy dog'), 0x9747b28c), 0x2fa826cd)
})

/** The naive reference: the layout written out byte by byte from docs/storage-format.md. */
function reference(kind: number, partition: Buffer, suffix: Buffer): Buffer {
  const h = Buffer.alloc(8)
  h.writeUInt32BE(murmur3(partition, 0), 0)
  h.writeUInt32BE(murmur3(partition, 0x9747b28c), 4)
  return Buffer.concat([h, Buffer.from([kind]), partition, suffix])
}

test('keys: every key builder agrees with the reference layout (random inputs)', () => {
  const seed = testSeed()
  const r = rng(seed)
  for (let i = 0; i < 2000; i++) {
    const ino = Math.floor(r() * 2 ** 53)
    const name = Buffer.from(Array.from({ length: 1 + Math.floor(r() * 255) }, () => 1 + Math.floor(r() * 255)))
    const block = Math.floor(r() * 2 ** 30)
    const inoB = Buffer.alloc(8)
    inoB.writeBigUInt64BE(BigInt(ino))
    assert.ok(keys.dentry(ino, name).equals(reference(Kind.DENTRY, inoB, name)), `seed ${seed}`)
    assert.ok(keys.dirSelf(ino).equals(reference(Kind.DIRSELF, inoB, Buffer.alloc(0))))
    assert.ok(keys.inode(ino).equals(reference(Kind.INODE, inoB, Buffer.alloc(0))))
    const part = Buffer.alloc(12)
    part.writeBigUInt64BE(BigInt(ino))
    part.writeUInt32BE(Math.floor(block / CHUNK_BLOCKS), 8)
    const suf = Buffer.alloc(2)
    suf.writeUInt16BE(block % CHUNK_BLOCKS)
    assert.ok(keys.block(ino, block).equals(reference(Kind.BLOCK, part, suf)))
    assert.equal(readU64(u64(ino), 0), ino)
    const parsed = parseKey(keys.dentry(ino, name))
    assert.equal(parsed.kind, Kind.DENTRY)
    assert.ok(parsed.rest.equals(Buffer.concat([inoB, name])))
  }
})

test('keys: a directory sorts DIRSELF first, then its entries in name order, all inside dentryRange', () => {
  const dir = 4242
  const names = ['b', 'a', 'zz', 'a0', '\u00e9t\u00e9'].map((n) => Buffer.from(n))
  const { start, end } = keys.dentryRange(dir)
  const sorted = names.map((n) => keys.dentry(dir, n)).sort(Buffer.compare)
  assert.deepEqual(
    sorted.map((k) => k.subarray(start.length).toString()),
    names.map((n) => n.toString()).sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y))),
  )
  for (const k of sorted) assert.ok(Buffer.compare(k, start) >= 0 && Buffer.compare(k, end) < 0)
  assert.ok(Buffer.compare(keys.dirSelf(dir), start) < 0)
  assert.ok(keys.dirSelf(dir).subarray(0, 8).equals(start.subarray(0, 8)), 'same hash8: same region')
  assert.ok(Buffer.compare(keys.dentry(dir + 1, Buffer.from('a')), start) < 0 || Buffer.compare(keys.dentry(dir + 1, Buffer.from('a')), end) >= 0)
})

test('keys: the blocks of one 4 MiB chunk share a partition; the next chunk does not', () => {
  const a = keys.block(7, 0).subarray(0, 8)
  assert.ok(keys.block(7, CHUNK_BLOCKS - 1).subarray(0, 8).equals(a))
  assert.ok(!keys.block(7, CHUNK_BLOCKS).subarray(0, 8).equals(a))
})

test('keys: block math', () => {
  assert.deepEqual(blockSpan(0, 1), { first: 0, last: 0 })
  assert.deepEqual(blockSpan(BLOCK_SIZE - 1, 2), { first: 0, last: 1 })
  assert.deepEqual(blockSpan(BLOCK_SIZE, BLOCK_SIZE), { first: 1, last: 1 })
  assert.deepEqual(blockSpan(10, 0), { first: 0, last: -1 })
  assert.deepEqual(blockSpan(3 * BLOCK_SIZE + 5, 2 * BLOCK_SIZE), { first: 3, last: 5 })
  assert.ok(prefixEnd(Buffer.from([1, 0xff])).equals(Buffer.from([2])))
  assert.throws(() => prefixEnd(Buffer.from([0xff])))
  assert.throws(() => parseKey(Buffer.alloc(3)), /too short/)
})
