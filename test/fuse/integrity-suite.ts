// Data integrity, written once and run through a real FUSE mount of each kind of store
// (test/fuse/integrity.test.ts: local; test/cluster/posix.test.ts: a 3-node cluster): seeded
// random writes, truncates and reads at random offsets against an in-memory model of the file,
// buffered and with O_DIRECT. The seed is printed; POLYFS_SEED=<n> replays a run exactly.
import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import path from 'node:path'
import { test } from 'node:test'
import { rng, testSeed } from '../helpers/mount'

const MAX_SIZE = 6 * 1024 * 1024 // crosses the 4 MiB chunk boundary
const MAX_IO = 300 * 1024 // spans up to four 128 KiB blocks

function run(mnt: string, name: string, extraFlags: number, ops: number): void {
  const seed = testSeed()
  const r = rng(seed)
  const where = `${name}, POLYFS_SEED=${seed}`
  console.log(`integrity ${where}`)
  const file = path.join(mnt, name)
  const open = () => fs.openSync(file, fs.constants.O_RDWR | fs.constants.O_CREAT | extraFlags, 0o644)
  let model = Buffer.alloc(0)
  let fd = open()
  try {
    for (let i = 0; i < ops; i++) {
      const op = r()
      if (op < 0.45) {
        const off = Math.floor(r() * MAX_SIZE)
        const len = 1 + Math.floor(r() * MAX_IO)
        const data = Buffer.alloc(len)
        let x = (r() * 2 ** 32) >>> 0
        for (let j = 0; j < len; j++) {
          if ((j & 3) === 0) x = (Math.imul(x, 1103515245) + 12345) >>> 0
          data[j] = x >>> ((j & 3) * 8)
        }
        assert.equal(fs.writeSync(fd, data, 0, len, off), len, `op ${i} ${where}`)
        if (off + len > model.length) {
          const grown = Buffer.alloc(off + len)
          model.copy(grown)
          model = grown
        }
        data.copy(model, off)
      } else if (op < 0.55) {
        const size = Math.floor(r() * MAX_SIZE)
        fs.ftruncateSync(fd, size)
        const next = Buffer.alloc(size)
        model.copy(next, 0, 0, Math.min(size, model.length))
        model = next
      } else if (op < 0.9) {
        const off = Math.floor(r() * (model.length + 1000))
        const len = 1 + Math.floor(r() * MAX_IO)
        const buf = Buffer.alloc(len)
        const n = fs.readSync(fd, buf, 0, len, off)
        const want = model.subarray(Math.min(off, model.length), Math.min(off + len, model.length))
        assert.equal(n, want.length, `op ${i}: read length at ${off} ${where}`)
        assert.ok(buf.subarray(0, n).equals(want), `op ${i}: read ${len} at ${off} differs from the model ${where}`)
      } else if (op < 0.95) {
        fs.fsyncSync(fd)
      } else {
        fs.closeSync(fd)
        fd = open()
        assert.equal(fs.fstatSync(fd).size, model.length, `op ${i}: size after reopen ${where}`)
      }
    }
  } finally {
    fs.closeSync(fd)
  }
  assert.ok(fs.readFileSync(file).equals(model), `whole file differs from the model ${where}`)
}

/** Defines the two integrity tests; `mnt()` is the mountpoint once the tests run. */
export function integritySuite(mnt: () => string, o: { ops: number }): void {
  test('integrity: random writes, truncates and reads match the model (buffered)', () => run(mnt(), 'buffered', 0, o.ops))

  test('integrity: random writes, truncates and reads match the model (O_DIRECT)', () => run(mnt(), 'direct', fs.constants.O_DIRECT, Math.ceil(o.ops / 2)))
}
