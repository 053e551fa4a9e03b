// valueRuns (src/cluster/region.ts): a get_many's pointers grouped into runs read with one pread.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { valueRuns } from '../../src/cluster/region'

const ptr = (seq: number, off: number, len: number) => ({ p: { version: 1, seq, off, len, crc: 0 } })
const shape = (runs: ReturnType<typeof valueRuns<ReturnType<typeof ptr>>>) => runs.map((r) => r.items.map(({ p }) => `${p.seq}:${p.off}`))

test('valueRuns: neighbours in one segment make one run, in file order; a gap, another segment or the size bound starts another', () => {
  // One commit's 16 KiB blocks, 50 bytes of key between them, asked for out of order.
  const blocks = [3, 0, 2, 1].map((i) => ptr(7, 1000 + i * (16390 + 50), 16390))
  assert.deepEqual(shape(valueRuns(blocks)), [['7:1000', '7:17440', '7:33880', '7:50320']])
  // A gap over 4 KiB, and a value in another segment.
  assert.deepEqual(shape(valueRuns([ptr(7, 0, 100), ptr(7, 100 + 4096, 10), ptr(7, 100 + 4096 + 10 + 4097, 10), ptr(8, 0, 10)])), [['7:0', '7:4196'], ['7:8303'], ['8:0']])
  // At most 1 MiB per read: 80 blocks of 16 KiB end to end make two runs.
  const many = Array.from({ length: 80 }, (_, i) => ptr(1, i * 16384, 16384))
  const runs = valueRuns(many)
  assert.equal(runs.length, 2)
  for (const r of runs) {
    assert.ok(r.to - r.from <= 1024 * 1024, `${r.to - r.from} bytes`)
    // The span is exactly what its values cover.
    assert.equal(r.from, Math.min(...r.items.map(({ p }) => p.off)))
    assert.equal(r.to, Math.max(...r.items.map(({ p }) => p.off + p.len)))
  }
  assert.equal(runs.flatMap((r) => r.items).length, 80)
  // Overlapping or repeated places (two keys pointing at one value) stay in one run.
  const overlapping = valueRuns([ptr(2, 50, 100), ptr(2, 0, 200), ptr(2, 50, 100)])
  assert.deepEqual(shape(overlapping), [['2:0', '2:50', '2:50']])
  assert.deepEqual([overlapping[0]?.from, overlapping[0]?.to], [0, 200])
  assert.deepEqual(valueRuns([]), [])
})
