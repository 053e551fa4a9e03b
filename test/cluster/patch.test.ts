// Partial block writes through a cluster mount (docs/posix.md, "Data and durability"): small
// writes into a file larger than what a mount keeps of it go to the store as patches, merged by
// the region leader. Checked against a model of the file: reads on the writing mount between
// the writes and the fsyncs (the partial blocks are then read and completed), and the whole
// file from a second mount after close.
import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import path from 'node:path'
import { test } from 'node:test'
import { dumpLogs, fullyReplicated, startNodes } from '../helpers/cluster'
import { rng } from '../helpers/mount'

test('cluster: small writes into a large file are merged where the block is, and read back right', async (t) => {
  const c = startNodes(t, 3)
  try {
    await fullyReplicated(c)
    const a = (await c.mount()).mnt
    const b = (await c.mount()).mnt
    const rand = rng(20261203)
    const file = path.join(a, 'db.bin')
    // 8 MiB and a bit: more than the 4 MiB of committed images a mount keeps per open file.
    let model = Buffer.alloc(8 * 1024 * 1024 + 5000)
    for (let i = 0; i < model.length; i++) model[i] = (i * 31 + 7) & 0xff
    fs.writeFileSync(file, model)

    const fd = fs.openSync(file, 'r+')
    let writes = 0
    let reads = 0
    try {
      for (let op = 0; op < 700; op++) {
        const r = rand()
        if (r < 0.55) {
          // Mostly small writes (a database page or less), some across block edges, some past the end.
          const len = rand() < 0.8 ? 1 + Math.floor(rand() * 8192) : 1 + Math.floor(rand() * 40_000)
          const at = Math.floor(rand() * (model.length + 6000))
          const data = Buffer.alloc(len)
          for (let i = 0; i < len; i++) data[i] = Math.floor(rand() * 256)
          assert.equal(fs.writeSync(fd, data, 0, len, at), len)
          if (at + len > model.length) {
            const grown = Buffer.alloc(at + len)
            model.copy(grown)
            model = grown
          }
          data.copy(model, at)
          writes++
        } else if (r < 0.9) {
          const len = 1 + Math.floor(rand() * 20_000)
          const at = Math.floor(rand() * model.length)
          const got = Buffer.alloc(len)
          const n = fs.readSync(fd, got, 0, len, at)
          const want = model.subarray(at, Math.min(model.length, at + len))
          assert.equal(n, want.length, `read of ${len} at ${at}`)
          assert.ok(got.subarray(0, n).equals(want), `op ${op}: read of ${len} at ${at} differs from the model`)
          reads++
        } else if (r < 0.98) {
          fs.fsyncSync(fd)
        } else {
          const size = Math.floor(model.length * (0.9 + rand() * 0.2))
          fs.ftruncateSync(fd, size)
          const next = Buffer.alloc(size)
          model.copy(next, 0, 0, Math.min(size, model.length))
          model = next
        }
      }
      // A sequential reader (our read-ahead on) over blocks written in part, before and after
      // their commit: the read-ahead must never hand out a block's bytes from before a patch.
      for (let round = 0; round < 2; round++) {
        for (let i = 0; i < 60; i++) {
          const at = Math.floor(rand() * (model.length - 100))
          const data = Buffer.alloc(1 + Math.floor(rand() * 99), 0x5a + round)
          fs.writeSync(fd, data, 0, data.length, at)
          data.copy(model, at)
        }
        if (round === 1) fs.fsyncSync(fd)
        const chunk = Buffer.alloc(64 * 1024)
        for (let at = 0; at < model.length; at += chunk.length) {
          const n = fs.readSync(fd, chunk, 0, chunk.length, at)
          assert.ok(chunk.subarray(0, n).equals(model.subarray(at, at + chunk.length)), `sequential round ${round}: read at ${at} differs from the model`)
        }
      }
    } finally {
      fs.closeSync(fd)
    }
    console.log(`${writes} writes, ${reads} reads checked; file of ${model.length} bytes`)
    assert.ok(fs.readFileSync(path.join(b, 'db.bin')).equals(model), 'the other mount reads the model')
    assert.ok(fs.readFileSync(file).equals(model), 'the writing mount reads the model after close')
  } catch (err) {
    console.error(dumpLogs(c))
    throw err
  }
})
