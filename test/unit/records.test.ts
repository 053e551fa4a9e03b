import assert from 'node:assert/strict'
import { test } from 'node:test'
import { CorruptRecordError, records } from '../../src/fs'

const attrs = (): records.Attrs => ({
  mode: 0o100644,
  uid: 1000,
  gid: 100,
  nlink: 1,
  size: 2 ** 40 + 3,
  rdev: 0x0801,
  atimeSec: -5,
  atimeNsec: 999_999_999,
  mtimeSec: 2 ** 33,
  mtimeNsec: 1,
  ctimeSec: 1_700_000_000,
  ctimeNsec: 123_456_789,
  target: Buffer.from('../some/where'),
  xattrs: new Map([
    ['user.a', Buffer.from('x')],
    ['user.empty', Buffer.alloc(0)],
  ]),
})

const samples: Array<[string, Buffer, (b: Buffer) => unknown]> = [
  ['META', records.encodeMeta({ format: 1, blockSizeBytes: 131072, chunkBlocks: 32, createdSec: 1_800_000_000 }), (b) => records.decodeMeta(b)],
  ['COUNTER', records.encodeCounter(2 ** 50), (b) => records.decodeCounter(b)],
  ['DIRSELF', records.encodeDirSelf({ ino: 9, parent: 1, attrs: attrs() }), (b) => records.decodeDirSelf(b)],
  ['DENTRY inline', records.encodeDentry({ form: 1, ino: 2 ** 52, dtype: 8, attrs: attrs() }), (b) => records.decodeDentry(b)],
  ['DENTRY ref', records.encodeDentry({ form: 2, ino: 77, dtype: 4 }), (b) => records.decodeDentry(b)],
  ['INODE', records.encodeInode(5, attrs()), (b) => records.decodeInode(b)],
  ['ORPHAN', records.encodeOrphan(), (b) => records.decodeOrphan(b)],
  ['BLOCK', records.encodeBlock(Buffer.from('some data')), (b) => records.decodeBlock(b)],
]

test('records: every record round-trips', () => {
  assert.deepEqual(records.decodeDirSelf(records.encodeDirSelf({ ino: 9, parent: 1, attrs: attrs() })), { ino: 9, parent: 1, attrs: attrs() })
  assert.deepEqual(records.decodeDentry(records.encodeDentry({ form: 1, ino: 2 ** 52, dtype: 8, attrs: attrs() })), { form: 1, ino: 2 ** 52, dtype: 8, attrs: attrs() })
  assert.deepEqual(records.decodeInode(records.encodeInode(5, attrs())), { ino: 5, attrs: attrs() })
  assert.equal(records.decodeCounter(records.encodeCounter(2 ** 50)), 2 ** 50)
  assert.deepEqual(records.decodeMeta(records.encodeMeta({ format: 1, blockSizeBytes: 131072, chunkBlocks: 32, createdSec: 1_800_000_000 })), {
    format: 1,
    blockSizeBytes: 131072,
    chunkBlocks: 32,
    createdSec: 1_800_000_000,
  })
  assert.equal(records.decodeBlock(records.encodeBlock(Buffer.from('some data'))).toString(), 'some data')
  assert.equal(records.decodeBlock(records.encodeBlock(Buffer.alloc(0))).length, 0)
})

test('records: any flipped byte, truncation or wrong type is rejected with the key in the error', () => {
  const key = Buffer.from('0102', 'hex')
  for (const [name, buf, decode] of samples) {
    for (let i = 0; i < buf.length; i++) {
      for (const bit of [0x01, 0x80]) {
        const bad = Buffer.from(buf)
        bad[i] ^= bit
        assert.throws(() => decode(bad), CorruptRecordError, `${name}: flipped bit ${bit} of byte ${i} was accepted`)
      }
    }
    for (let n = 0; n < buf.length; n++) assert.throws(() => decode(buf.subarray(0, n)), CorruptRecordError, `${name}: truncated to ${n} accepted`)
  }
  assert.throws(() => records.decodeInode(records.encodeCounter(1), key), /at key 0102: record type 2 where 5 was expected/)
  const v2 = Buffer.from(records.encodeOrphan())
  v2[0] = 2
  assert.throws(() => records.decodeOrphan(v2, key), /unknown record version 2/)
})
