// crc32cCombine and valueCrc (src/kv/crc.ts) against crc32c over the whole bytes.
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { test } from 'node:test'
import { crc32c } from '@node-rs/crc32'
import { crc32cCombine, encodeBlockValue, keys, valueCrc } from '../../src/kv'
import { rng } from '../helpers/mount'

test('crc32cCombine: equals crc32c of the concatenation, for parts of every size up to 70,000 bytes', () => {
  const r = rng(11)
  const lengths = [0, 1, 2, 3, 4, 5, 7, 8, 31, 32, 33, 255, 256, 4096, 16384, 16390, 65536, 70000]
  for (let i = 0; i < 200; i++) lengths.push(Math.floor(r() * 70000))
  for (const la of [0, 1, 6, 1000]) {
    for (const lb of lengths) {
      const a = randomBytes(la)
      const b = randomBytes(lb)
      assert.equal(crc32cCombine(crc32c(a), crc32c(b), b.length), crc32c(Buffer.concat([a, b])), `|A| ${la}, |B| ${lb}`)
    }
  }
})

test('crc32cCombine: all-zero and all-one parts, and a bad length refused', () => {
  for (const lb of [1, 100, 16384]) {
    for (const fill of [0x00, 0xff]) {
      const a = Buffer.alloc(6, fill ^ 0xff)
      const b = Buffer.alloc(lb, fill)
      assert.equal(crc32cCombine(crc32c(a), crc32c(b), lb), crc32c(Buffer.concat([a, b])), `${lb} x ${fill}`)
    }
  }
  assert.throws(() => crc32cCombine(1, 2, -1), RangeError)
  assert.throws(() => crc32cCombine(1, 2, 1.5), RangeError)
})

test('valueCrc: a sound block value under a block key gets crc32c of its bytes, a damaged one a crc its bytes do not match; anything else its crc32c', () => {
  const blockKey = keys.block(7, 3)
  for (const n of [0, 1, 4096, 16384, 12345]) {
    const block = encodeBlockValue(randomBytes(n))
    assert.equal(valueCrc(blockKey, block), crc32c(block), `block of ${n}`)
    if (n > 0) {
      const bad = Buffer.from(block)
      bad[bad.length - 1] ^= 0x01 // a payload bit flipped after its crc was made
      assert.notEqual(valueCrc(blockKey, bad), crc32c(bad), `damaged block of ${n}`)
    }
  }
  for (const other of [Buffer.alloc(0), Buffer.from([1]), Buffer.from([1, 6, 0]), Buffer.from([2, 6, 0, 0, 0, 0, 9]), randomBytes(5000)]) {
    assert.equal(valueCrc(blockKey, other), crc32c(other), `not a block: ${other.subarray(0, 8).toString('hex')}`)
  }
  // Under any other key, bytes that merely look like a block header are data: their crc is theirs.
  const lookalike = Buffer.concat([Buffer.from([1, 6, 0xde, 0xad, 0xbe, 0xef]), randomBytes(8000)])
  for (const key of [keys.inode(7), keys.dentry(1, Buffer.from('name')), Buffer.alloc(0), Buffer.from([4])]) {
    assert.equal(valueCrc(key, lookalike), crc32c(lookalike), `key ${key.toString('hex')}`)
  }
})
