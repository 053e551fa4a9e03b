// Crash and restart: what was fsynced survives kill -9 of the filesystem process; a clean
// SIGTERM with writes in flight flushes them and unmounts.
import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import * as fs from 'node:fs'
import path from 'node:path'
import { test } from 'node:test'
import { isMounted, startLocalMount, waitFor } from '../helpers/mount'

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex')

test('restart: everything fsynced survives kill -9 of the mount process', async (t) => {
  const m = await startLocalMount(t)
  const files = new Map<string, string>()
  fs.mkdirSync(path.join(m.mnt, 'dir', 'sub'), { recursive: true })
  for (let i = 0; i < 50; i++) {
    const name = path.join('dir', i % 2 ? 'sub' : '', `f${i}`)
    const data = Buffer.alloc(1000 + i * 7919, i)
    const fd = fs.openSync(path.join(m.mnt, name), 'w')
    fs.writeSync(fd, data)
    fs.fsyncSync(fd)
    fs.closeSync(fd)
    files.set(name, sha(data))
  }
  fs.renameSync(path.join(m.mnt, 'dir', 'f0'), path.join(m.mnt, 'dir', 'renamed'))
  files.set(path.join('dir', 'renamed'), files.get(path.join('dir', 'f0')) as string)
  files.delete(path.join('dir', 'f0'))
  fs.symlinkSync('renamed', path.join(m.mnt, 'dir', 'link'))
  const dfd = fs.openSync(path.join(m.mnt, 'dir'), 'r')
  fs.fsyncSync(dfd)
  fs.closeSync(dfd)
  await m.kill9()
  assert.equal(isMounted(m.mnt), false)
  await m.start()
  for (const [name, digest] of files) assert.equal(sha(fs.readFileSync(path.join(m.mnt, name))), digest, name)
  assert.equal(fs.readlinkSync(path.join(m.mnt, 'dir', 'link')), 'renamed')
  assert.equal(fs.readdirSync(path.join(m.mnt, 'dir', 'sub')).length, 25)
})

test('restart: a file unlinked while open is freed after a crash', async (t) => {
  const m = await startLocalMount(t)
  const f = path.join(m.mnt, 'tmp')
  fs.writeFileSync(f, Buffer.alloc(500_000, 1))
  const holder = spawn('sh', ['-c', `exec 3<"${f}"; rm "${f}"; echo ready; exec sleep 60`], { stdio: ['ignore', 'pipe', 'inherit'] })
  t.after(() => holder.kill('SIGKILL'))
  await new Promise((r) => holder.stdout?.once('data', r))
  const dfd = fs.openSync(m.mnt, 'r')
  fs.fsyncSync(dfd) // the unlink is durable from here on
  fs.closeSync(dfd)
  await m.kill9()
  holder.kill('SIGKILL')
  await m.start()
  await waitFor(() => /freed orphaned inode/.test(m.log()), 5000, 'the log line about the freed orphan')
  assert.deepEqual(fs.readdirSync(m.mnt), [])
})

test('restart: SIGTERM while a writer is busy flushes, unmounts and exits 0', async (t) => {
  const m = await startLocalMount(t)
  const f = path.join(m.mnt, 'stream')
  // The writer stops by itself after 64 MiB; we interrupt it long before that.
  const writer = spawn('dd', ['if=/dev/zero', `of=${f}`, 'bs=1M', 'count=64', 'conv=fsync'], { stdio: 'ignore' })
  t.after(() => writer.kill('SIGKILL'))
  await waitFor(() => fs.existsSync(f) && fs.statSync(f).size > 4 * 1024 * 1024, 20_000, 'the writer to get going')
  const code = await m.stop()
  assert.equal(code, 0)
  assert.equal(isMounted(m.mnt), false)
  await new Promise((r) => (writer.exitCode !== null ? r(null) : writer.once('exit', r)))
  await m.start()
  const size = fs.statSync(f).size
  assert.ok(size > 0 && size % 512 === 0, `size ${size}`)
  assert.ok(fs.readFileSync(f).every((b) => b === 0))
})

test('restart: an unmount from outside (fusermount -u) makes the process commit and exit', async (t) => {
  const m = await startLocalMount(t)
  const fd = fs.openSync(path.join(m.mnt, 'kept'), 'w')
  fs.writeSync(fd, 'written before the unmount')
  fs.closeSync(fd)
  const exited = new Promise<number | null>((r) => m.proc.once('exit', (code) => r(code)))
  const r = spawnSync('fusermount', ['-u', m.mnt])
  assert.equal(r.status, 0, String(r.stderr))
  assert.equal(await exited, 0)
  await m.start()
  assert.equal(fs.readFileSync(path.join(m.mnt, 'kept'), 'utf8'), 'written before the unmount')
})
