// Bad input: clear CLI errors for unusable mountpoints, EIO (never bad data, never a crash)
// for corrupt records and blocks, with a log line that names the key.
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { test } from 'node:test'
import { BLOCK_SIZE, keys, LocalKV } from '../../src/kv'
import { LocalMount, POLYFS, startLocalMount, tempDir, waitFor } from '../helpers/mount'

function polyfs(...args: string[]): { status: number | null; stderr: string } {
  const r = spawnSync(process.execPath, [POLYFS, ...args], { encoding: 'utf8', timeout: 30_000 })
  return { status: r.status, stderr: r.stderr }
}

test('cli: a missing, non-empty, non-directory or busy mountpoint is refused with a clear message', async (t) => {
  const dir = tempDir(t)
  let r = polyfs('mount', '--local', path.join(dir, 'data'), path.join(dir, 'nope'))
  assert.equal(r.status, 1)
  assert.match(r.stderr, /mountpoint .*nope does not exist/)
  fs.mkdirSync(path.join(dir, 'full'))
  fs.writeFileSync(path.join(dir, 'full', 'x'), '')
  r = polyfs('mount', '--local', path.join(dir, 'data'), path.join(dir, 'full'))
  assert.equal(r.status, 1)
  assert.match(r.stderr, /is not empty/)
  r = polyfs('mount', '--local', path.join(dir, 'data'), path.join(dir, 'full', 'x'))
  assert.equal(r.status, 1)
  assert.match(r.stderr, /is not a directory/)
  assert.equal(fs.existsSync(path.join(dir, 'data')), false, 'nothing was created for a refused mount')
  const m = await startLocalMount(t)
  r = polyfs('mount', '--local', path.join(dir, 'data2'), m.mnt)
  assert.equal(r.status, 1)
  assert.match(r.stderr, /is busy/)
  r = polyfs('mount', '--local', path.join(dir, 'data3'), '--bogus', path.join(dir, 'x'))
  assert.notEqual(r.status, 0)
  assert.match(r.stderr, /unknown option/)
  r = polyfs('mount', '--local', path.join(dir, 'data3'), '--attr-timeout', 'soon', path.join(dir, 'x'))
  assert.equal(r.status, 1)
  assert.match(r.stderr, /argument 'soon' is invalid. expected a number of seconds/)
})

/** Flips one byte of the value at `key` in a stopped store. */
async function corrupt(dataDir: string, key: Buffer, at: (len: number) => number): Promise<void> {
  const kv = await LocalKV.open(dataDir)
  const v = await kv.get(key)
  assert.ok(v, 'the key exists')
  const bad = Buffer.from(v)
  bad[at(bad.length)] ^= 0x40
  await kv.txn(async (tx) => tx.put(key, bad))
  await kv.close()
}

test('corruption: a bad block checksum is EIO with the key logged; a bad entry is EIO too', async (t) => {
  const m = await startLocalMount(t)
  fs.writeFileSync(path.join(m.mnt, 'data'), Buffer.alloc(300_000, 7))
  fs.writeFileSync(path.join(m.mnt, 'meta'), 'x')
  const ino = fs.statSync(path.join(m.mnt, 'data')).ino
  assert.equal(await m.stop(), 0)
  const blockKey = keys.block(ino, 1)
  await corrupt(m.dataDir, blockKey, (len) => len - 10)
  await corrupt(m.dataDir, keys.dentry(1, Buffer.from('meta')), (len) => len - 6)
  await m.start()
  const fd = fs.openSync(path.join(m.mnt, 'data'), 'r')
  const buf = Buffer.alloc(4096)
  assert.equal(fs.readSync(fd, buf, 0, 4096, 0), 4096, 'the good block still reads')
  assert.ok(buf.every((b) => b === 7))
  assert.throws(() => fs.readSync(fd, buf, 0, 4096, BLOCK_SIZE + 100), { code: 'EIO' })
  fs.closeSync(fd)
  assert.throws(() => fs.statSync(path.join(m.mnt, 'meta')), { code: 'EIO' })
  await waitFor(() => m.log().includes(blockKey.toString('hex')), 5000, 'the log line naming the corrupt block key')
  assert.match(m.log(), /corrupt record/)
  fs.writeFileSync(path.join(m.mnt, 'still-works'), 'yes')
  assert.equal(fs.readFileSync(path.join(m.mnt, 'still-works'), 'utf8'), 'yes')
})

test('full disk: fsync reports the error (ENOSPC/EIO) and everything fsynced before survives', async (t) => {
  const disk = fs.mkdtempSync(path.join(tmpdir(), 'polyfs-smalldisk-'))
  const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=24m', 'tmpfs', disk])
  assert.equal(mounted.status, 0, String(mounted.stderr))
  let m: LocalMount | undefined
  t.after(async () => {
    await m?.cleanup() // the filesystem first, then its disk, then the directory
    spawnSync('umount', ['-l', disk])
    fs.rmSync(disk, { recursive: true, force: true })
  })
  m = await startLocalMount(undefined, [], path.join(disk, 'data'))
  const kept = Buffer.alloc(1 << 20, 0x5a)
  const fdA = fs.openSync(path.join(m.mnt, 'kept'), 'w')
  fs.writeSync(fdA, kept)
  fs.fsyncSync(fdA)
  fs.closeSync(fdA)
  let failure: NodeJS.ErrnoException | null = null
  const fdB = fs.openSync(path.join(m.mnt, 'filler'), 'w')
  const chunk = Buffer.alloc(1 << 20, 1)
  for (let i = 0; i < 64 && !failure; i++) {
    try {
      fs.writeSync(fdB, chunk)
      fs.fsyncSync(fdB)
    } catch (err) {
      failure = err as NodeJS.ErrnoException
    }
  }
  try {
    fs.closeSync(fdB)
  } catch {
    // close reports the same failure again
  }
  assert.ok(failure, 'a 24 MiB disk cannot take 64 MiB: some write or fsync must fail')
  assert.ok(['ENOSPC', 'EIO'].includes(String(failure.code)), `got ${failure.code}`)
  await waitFor(() => /store is full|writing to the store failed/.test(m?.log() ?? ''), 5000, 'the log line about the full store')
  await m.stop()
  // Give the disk room again: the store reopens and what was fsynced is intact.
  assert.equal(spawnSync('mount', ['-o', 'remount,size=128m', disk]).status, 0)
  await m.start()
  assert.ok(fs.readFileSync(path.join(m.mnt, 'kept')).equals(kept))
})
