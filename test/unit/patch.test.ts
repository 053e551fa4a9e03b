// Block patches (docs/kv.md, "Partial block writes"): the merge itself, and LocalKV's Txn.patch.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { BLOCK_PATCH_MAX, KvError, LocalKV, PatchError, encodeBlockValue, mergePatch, patchRange } from '../../src/kv'
import { decodeBlock, encodeBlock } from '../../src/fs/records'
import { tempDir } from '../helpers/mount'

const fill = (n: number, byte: number) => Buffer.alloc(n, byte)

test('patch: ranges are written over the old payload in order, under a new crc', () => {
  const old = encodeBlock(fill(100, 1))
  const merged = mergePatch(old, [patchRange(10, fill(5, 2)), patchRange(12, fill(2, 3))])
  const data = decodeBlock(merged) // the filesystem's reader accepts it (crc checked)
  assert.equal(data.length, 100)
  assert.deepEqual([...data.subarray(8, 18)], [1, 1, 2, 2, 3, 3, 2, 1, 1, 1])
  assert.deepEqual(merged, encodeBlockValue(data))
})

test('patch: an absent or shorter block grows with zeros to the furthest range', () => {
  const fromNothing = decodeBlock(mergePatch(undefined, [patchRange(4096, fill(4, 9))]))
  assert.equal(fromNothing.length, 4100)
  assert.ok(fromNothing.subarray(0, 4096).every((x) => x === 0))
  assert.ok(fromNothing.subarray(4096).every((x) => x === 9))
  const grown = decodeBlock(mergePatch(encodeBlock(fill(10, 7)), [patchRange(20, fill(2, 8))]))
  assert.deepEqual([...grown], [...fill(10, 7), ...fill(10, 0), 8, 8])
  const inside = decodeBlock(mergePatch(encodeBlock(fill(BLOCK_PATCH_MAX, 5)), [patchRange(0, fill(1, 6))]))
  assert.equal(inside.length, BLOCK_PATCH_MAX)
})

test('patch: a bad range, a range failing its crc, or a corrupt old block is refused', () => {
  const good = encodeBlock(fill(64, 1))
  assert.throws(() => mergePatch(good, []), PatchError)
  assert.throws(() => mergePatch(good, [patchRange(BLOCK_PATCH_MAX - 1, fill(2, 1))]), /outside a block/)
  assert.throws(() => mergePatch(good, [patchRange(-1, fill(2, 1))]), /outside a block/)
  assert.throws(() => mergePatch(good, [{ offset: 0, data: fill(4, 1), crc: patchRange(0, fill(4, 2)).crc }]), /fails its checksum/)
  const flipped = Buffer.from(good)
  flipped[20] ^= 1
  assert.throws(() => mergePatch(flipped, [patchRange(0, fill(1, 1))]), /block to patch fails its checksum/)
  assert.throws(() => mergePatch(Buffer.from([1, 5, 0, 0, 0, 0]), [patchRange(0, fill(1, 1))]), /not a block/)
})

test('patch: LocalKV merges in the transaction; a read of the key by another commit conflicts', async (t) => {
  const kv = await LocalKV.open(tempDir(t))
  t.after(() => kv.close())
  const key = Buffer.from('blk')
  await kv.txn(async (tx) => tx.put(key, encodeBlock(fill(32, 1))))
  await kv.txn(async (tx) => tx.patch(key, [patchRange(30, fill(4, 2))]))
  assert.deepEqual([...decodeBlock((await kv.get(key)) as Buffer)], [...fill(30, 1), 2, 2, 2, 2])

  // A patch's base joins the read set: a commit to the key between its merge and its commit
  // makes it run again, on the new base.
  let runs = 0
  await kv.txn(async (tx) => {
    runs++
    tx.patch(key, [patchRange(0, fill(1, 9))])
    if (runs === 1) await kv.txn(async (other) => other.put(key, encodeBlock(fill(4, 3))))
  })
  assert.equal(runs, 2)
  assert.deepEqual([...decodeBlock((await kv.get(key)) as Buffer)], [9, 3, 3, 3])

  // A corrupt block is an IO error, and nothing of the transaction is written.
  const bad = encodeBlock(fill(8, 1))
  bad[7] ^= 0xff
  await kv.txn(async (tx) => tx.put(key, bad))
  await assert.rejects(
    kv.txn(async (tx) => {
      tx.put(Buffer.from('other'), Buffer.from('x'))
      tx.patch(key, [patchRange(0, fill(1, 1))])
    }),
    (err: unknown) => err instanceof KvError && err.code === 'IO' && /fails its checksum/.test(err.message),
  )
  assert.equal(await kv.get(Buffer.from('other')), undefined)
  // A key may be patched only once per transaction, and not after a read or write of it.
  await assert.rejects(kv.txn(async (tx) => {
    await tx.get(Buffer.from('k2'))
    tx.patch(Buffer.from('k2'), [patchRange(0, fill(1, 1))])
  }), /already read or written/)
})
