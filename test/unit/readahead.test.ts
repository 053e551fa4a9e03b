// Read-ahead (docs/posix.md, "Read-ahead"), on LocalKV without FUSE: a sequential reader's
// next blocks are fetched early, and nothing fetched early is ever older than what the reader
// must see: its own writes and truncates, and, after an open, every commit made before it.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { FileSystem, ROOT_CTX } from '../../src/fs'
import { KV, LocalKV } from '../../src/kv'
import { rng, tempDir, testSeed } from '../helpers/mount'

const c = ROOT_CTX
const MiB = 1024 * 1024

/** LocalKV whose getMany answers late (what it read at the call, after a random delay), as a
 * network would: a write and its commit can land while a read-ahead is on its way. */
function slowKV(kv: LocalKV, r: () => number): KV & { manyCalls: number; manyKeys: number } {
  const out = Object.create(kv) as KV & { manyCalls: number; manyKeys: number }
  out.manyCalls = 0
  out.manyKeys = 0
  out.getMany = async (keys) => {
    out.manyCalls++
    out.manyKeys += keys.length
    const vals = await kv.getMany(keys)
    await new Promise((res) => setTimeout(res, Math.floor(r() * 4)))
    return vals
  }
  return out
}

function pattern(len: number, r: () => number): Buffer {
  const b = Buffer.alloc(len)
  let x = (r() * 2 ** 32) >>> 0
  for (let i = 0; i < len; i++) {
    if ((i & 3) === 0) x = (Math.imul(x, 1103515245) + 12345) >>> 0
    b[i] = x >>> ((i & 3) * 8)
  }
  return b
}

test('readahead: a sequential read of a file is served mostly from blocks fetched ahead, in large requests', async (t) => {
  const kv = slowKV(await LocalKV.open(tempDir(t)), () => 0)
  const fs = await FileSystem.open(kv, { readAhead: 4 * MiB })
  t.after(() => fs.close().catch(() => undefined))
  const r = rng(1)
  const data = pattern(16 * MiB, r)
  const fh = await fs.create(c, '/f', 0o644, 0)
  await fs.write(c, fh, data, data.length, 0)
  await fs.release(c, fh)
  const rh = await fs.openFile(c, '/f', 0)
  const buf = Buffer.alloc(128 * 1024)
  kv.manyCalls = 0
  for (let off = 0; off < data.length; off += buf.length) {
    assert.equal(await fs.read(c, rh, buf, buf.length, off), buf.length)
    assert.ok(buf.equals(data.subarray(off, off + buf.length)), `read at ${off}`)
  }
  await fs.release(c, rh)
  // 128 reads of eight blocks each: one request per read without read-ahead.
  assert.ok(kv.manyCalls < 128 / 2, `getMany calls: ${kv.manyCalls}`)
  assert.ok(kv.manyKeys <= 1024 + 256, `blocks asked for: ${kv.manyKeys}`) // each about once
})

test('readahead: reads out of order by up to 2 MiB, as a larger kernel read-ahead sends them, stay one stream', async (t) => {
  const kv = slowKV(await LocalKV.open(tempDir(t)), () => 0)
  const fs = await FileSystem.open(kv, { readAhead: 8 * MiB })
  t.after(() => fs.close().catch(() => undefined))
  const r = rng(2)
  const data = pattern(32 * MiB, r)
  const fh = await fs.create(c, '/f', 0o644, 0)
  await fs.write(c, fh, data, data.length, 0)
  await fs.release(c, fh)
  const rh = await fs.openFile(c, '/f', 0)
  const piece = 128 * 1024
  // The first 2 MiB in order (the kernel's read-ahead starts small), then each next 2 MiB in
  // a shuffled order, as a 4 MiB kernel read-ahead sends them: reads up to 2 MiB apart.
  const order: number[] = []
  for (let off = 0; off < 2 * MiB; off += piece) order.push(off)
  for (let w = 2 * MiB; w < data.length; w += 2 * MiB) {
    const win: number[] = []
    for (let off = w; off < w + 2 * MiB; off += piece) win.push(off)
    for (let i = win.length - 1; i > 0; i--) {
      const j = Math.floor(r() * (i + 1))
      ;[win[i], win[j]] = [win[j] as number, win[i] as number]
    }
    order.push(...win)
  }
  kv.manyCalls = 0
  kv.manyKeys = 0
  const buf = Buffer.alloc(piece)
  for (const off of order) {
    assert.equal(await fs.read(c, rh, buf, piece, off), piece)
    assert.ok(buf.equals(data.subarray(off, off + piece)), `read at ${off}`)
  }
  await fs.release(c, rh)
  // 256 reads of eight blocks each. A stream dropped at every out-of-order read would ask again
  // for what it fetched ahead, and per read.
  assert.ok(kv.manyCalls < 256 / 2, `getMany calls: ${kv.manyCalls}`)
  assert.ok(kv.manyKeys <= 2048 + 512, `blocks asked for: ${kv.manyKeys}`) // each about once
})

test('readahead: sequential scans interleaved with writes, truncates and reopens match a model', async (t) => {
  const seed = testSeed()
  const r = rng(seed)
  const where = `POLYFS_SEED=${seed}`
  const kv = slowKV(await LocalKV.open(tempDir(t)), r)
  const fs = await FileSystem.open(kv, { readAhead: 2 * MiB })
  t.after(() => fs.close().catch(() => undefined))
  let model = Buffer.alloc(0)
  const grow = (size: number) => {
    if (size <= model.length) return
    const next = Buffer.alloc(size)
    model.copy(next)
    model = next
  }
  let fh = await fs.create(c, '/f', 0o644, 0)
  const first = pattern(6 * MiB, r)
  await fs.write(c, fh, first, first.length, 0)
  grow(first.length)
  first.copy(model)
  for (let scan = 0; scan < 60; scan++) {
    let pos = Math.floor(r() * model.length)
    const step = [4096, 65536, 131072][Math.floor(r() * 3)] as number
    for (let i = 0; i < 40 && pos < model.length + step; i++) {
      const x = r()
      if (x < 0.15) {
        // A write just ahead of the reader, where read-ahead has (or is fetching) the blocks.
        const off = pos + Math.floor(r() * 2 * MiB)
        const d = pattern(1 + Math.floor(r() * 40000), r)
        await fs.write(c, fh, d, d.length, off)
        grow(off + d.length)
        d.copy(model, off)
        if (r() < 0.5) await fs.fsync(c, fh)
        if (r() < 0.3) {
          // A large write elsewhere pushes the blocks just written out of the file's cache of
          // committed images, so a later read of them goes past memory.
          const big = pattern(4 * MiB + Math.floor(r() * MiB), r)
          const at = 8 * MiB + Math.floor(r() * MiB)
          await fs.write(c, fh, big, big.length, at)
          await fs.fsync(c, fh)
          grow(at + big.length)
          big.copy(model, at)
        }
      } else if (x < 0.2) {
        // Down and back up again (a hole where read-ahead may hold the old bytes), or anywhere.
        const sizes = r() < 0.5 ? [Math.min(model.length, pos + Math.floor(r() * MiB)), model.length] : [Math.floor(r() * 8 * MiB)]
        for (const size of sizes) {
          await fs.ftruncate(c, fh, size)
          const next = Buffer.alloc(size)
          model.copy(next, 0, 0, Math.min(size, model.length))
          model = next
        }
      } else if (x < 0.23) {
        await fs.release(c, fh)
        fh = await fs.openFile(c, '/f', 2)
      } else {
        const buf = Buffer.alloc(step)
        const n = await fs.read(c, fh, buf, step, pos)
        const want = model.subarray(Math.min(pos, model.length), Math.min(pos + step, model.length))
        assert.equal(n, want.length, `scan ${scan} read ${i} at ${pos} length, ${where}`)
        assert.ok(buf.subarray(0, n).equals(want), `scan ${scan} read ${i} at ${pos} differs from the model, ${where}`)
        pos += step
      }
    }
  }
  await fs.release(c, fh)
  assert.ok(kv.manyCalls > 0)
})

test('readahead: an open sees what another mount committed before it, though this mount read ahead on another handle', async (t) => {
  const kv = await LocalKV.open(tempDir(t))
  const a = await FileSystem.open(kv, { shared: true })
  const b = await FileSystem.open(kv, { shared: true })
  t.after(async () => {
    await a.close().catch(() => undefined)
  })
  const r = rng(2)
  const old = pattern(8 * MiB, r)
  const fresh = pattern(8 * MiB, r)
  const w = await a.create(c, '/f', 0o644, 0)
  await a.write(c, w, old, old.length, 0)
  await a.release(c, w)
  // Handle 1 of mount a reads the first MiB sequentially: read-ahead now holds blocks past it.
  const h1 = await a.openFile(c, '/f', 0)
  const buf = Buffer.alloc(128 * 1024)
  for (let off = 0; off < MiB; off += buf.length) await a.read(c, h1, buf, buf.length, off)
  // Mount b rewrites the whole file and closes it: committed.
  const bw = await b.openFile(c, '/f', 2)
  await b.write(c, bw, fresh, fresh.length, 0)
  await b.release(c, bw)
  // A new open on mount a (close-to-open) reads b's data, not what was fetched ahead before it.
  const h2 = await a.openFile(c, '/f', 0)
  for (let off = MiB; off < 3 * MiB; off += buf.length) {
    await a.read(c, h2, buf, buf.length, off)
    assert.ok(buf.equals(fresh.subarray(off, off + buf.length)), `read at ${off} after the open`)
  }
  await a.release(c, h1)
  await a.release(c, h2)
})
