// The filesystem layer on LocalKV directly, without FUSE: the rules that are easy to get wrong.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { FileSystem, FsError, ROOT_CTX } from '../../src/fs'
import { LocalKV } from '../../src/kv'
import { tempDir } from '../helpers/mount'

const c = ROOT_CTX
const errno = (code: string) => (err: unknown) => err instanceof FsError && err.errno === code

async function open(t: { after(fn: () => unknown): void }, dir = tempDir(t)): Promise<FileSystem> {
  const fs = await FileSystem.openLocal(dir)
  t.after(() => fs.close().catch(() => undefined))
  return fs
}

test('fs: libfuse hidden-name rename is an unlink: the entry is gone, the data stays until release', async (t) => {
  const fs = await open(t)
  const fh = await fs.create(c, '/f', 0o644, 0)
  await fs.write(c, fh, Buffer.from('payload'), 7, 0)
  await fs.rename(c, '/f', '/.fuse_hidden0000000100000002')
  assert.deepEqual((await fs.readdir(c, '/')).names, ['.', '..'])
  assert.equal((await fs.getattr(c, '/.fuse_hidden0000000100000002')).nlink, 0)
  const buf = Buffer.alloc(7)
  assert.equal(await fs.read(c, fh, buf, 7, 0), 7)
  assert.equal(buf.toString(), 'payload')
  await fs.release(c, fh)
  await fs.unlink(c, '/.fuse_hidden0000000100000002')
  await assert.rejects(fs.getattr(c, '/.fuse_hidden0000000100000002'), errno('ENOENT'))
  assert.deepEqual(fs.stats(), { openFiles: 0, handles: 0 })
})

test('fs: an orphan left by a crash is freed when the store is opened again', async (t) => {
  const dir = tempDir(t)
  const fs1 = await FileSystem.openLocal(dir)
  const fh = await fs1.create(c, '/gone', 0o644, 0)
  await fs1.write(c, fh, Buffer.alloc(100_000, 1), 100_000, 0)
  await fs1.flush(c, fh)
  await fs1.unlink(c, '/gone')
  await fs1.kv.sync()
  await fs1.kv.close() // a "crash": the handle is never released
  const logs: string[] = []
  const log = { info: (o: unknown, m: string) => logs.push(m), error: () => undefined, warn: () => undefined } as never
  const fs2 = await FileSystem.open(await LocalKV.open(dir), { log })
  t.after(() => fs2.close())
  assert.deepEqual(logs, ['freed orphaned inode'])
  const left = await fs2.kv.scan({ start: Buffer.alloc(1), end: Buffer.alloc(9, 0xff) })
  assert.equal(left.filter((e) => e.value[1] === 6).length, 0, 'no data block is left')
})

test('fs: rename keeps an open file reachable through its handle and updates its location', async (t) => {
  const fs = await open(t)
  await fs.mkdir(c, '/a', 0o755)
  await fs.mkdir(c, '/b', 0o755)
  const fh = await fs.create(c, '/a/f', 0o644, 0)
  await fs.rename(c, '/a/f', '/b/g')
  await fs.write(c, fh, Buffer.from('x'), 1, 0)
  await fs.fsync(c, fh)
  assert.equal((await fs.getattr(c, '/b/g')).size, 1)
  assert.equal((await fs.fgetattr(c, fh)).size, 1)
  await fs.release(c, fh)
  await assert.rejects(fs.rmdir(c, '/b'), errno('ENOTEMPTY'))
  await assert.rejects(fs.rename(c, '/a', '/a/inside'), errno('EINVAL'))
  assert.equal((await fs.getattr(c, '/')).nlink, 4)
})

test('fs: access() and the ownership rules for non-root callers, without the kernel in front', async (t) => {
  const fs = await open(t)
  const alice = { uid: 1000, gid: 1000, pid: 1 }
  const bob = { uid: 1001, gid: 1001, pid: 2, groups: [1000] }
  const eve = { uid: 1002, gid: 1002, pid: 3 }
  await fs.mkdir(c, '/shared', 0o777)
  await fs.chmod(c, '/shared', 0o777)
  const fh = await fs.create(alice, '/shared/a', 0o640, 0)
  await fs.release(alice, fh)
  assert.equal((await fs.getattr(c, '/shared/a')).uid, 1000)
  await fs.access(alice, '/shared/a', 4 | 2)
  await fs.access(bob, '/shared/a', 4) // through a supplementary group
  await assert.rejects(fs.access(bob, '/shared/a', 2), errno('EACCES'))
  await assert.rejects(fs.access(eve, '/shared/a', 4), errno('EACCES'))
  await assert.rejects(fs.chmod(eve, '/shared/a', 0o666), errno('EPERM'))
  await assert.rejects(fs.chown(alice, '/shared/a', 1001, -1), errno('EPERM'), 'giving a file away')
  await assert.rejects(fs.chown(alice, '/shared/a', -1, 1002), errno('EPERM'), 'to a group one is not in')
  await fs.chmod(alice, '/shared/a', 0o6750)
  await fs.chown(c, '/shared/a', -1, 1000)
  assert.equal((await fs.getattr(c, '/shared/a')).mode & 0o7777, 0o0750, 'chown clears set-user-ID and set-group-ID')
  await assert.rejects(fs.utimens(eve, '/shared/a', { sec: 1, nsec: 0 }, 'omit'), errno('EPERM'))
  await fs.utimens(alice, '/shared/a', { sec: 1, nsec: 5 }, 'omit')
  const st = await fs.getattr(c, '/shared/a')
  assert.deepEqual([st.atimeSec, st.atimeNsec], [1, 5])
  await assert.rejects(fs.setxattr(eve, '/shared/a', 'trusted.x', Buffer.from('1'), 0), errno('EPERM'))
  await assert.rejects(fs.setxattr(c, '/shared/a', 'system.posix_acl_access', Buffer.from('1'), 0), errno('EOPNOTSUPP'))
})

test('fs: the stat kept from a create or mkdir is used once, and never after any change', async (t) => {
  const fs = await open(t)
  await fs.mkdir(c, '/x', 0o755)
  await fs.chmod(c, '/x', 0o700)
  assert.equal((await fs.getattr(c, '/x')).mode & 0o777, 0o700)
  const fh = await fs.create(c, '/f', 0o644, 0)
  await fs.write(c, fh, Buffer.from('abc'), 3, 0)
  assert.equal((await fs.fgetattr(c, fh)).size, 3, 'buffered writes show through')
  await fs.ftruncate(c, fh, 1)
  assert.equal((await fs.fgetattr(c, fh)).size, 1)
  await fs.release(c, fh)
  await fs.mknod(c, '/p', 0o010644, 0)
  await fs.rename(c, '/p', '/q')
  await assert.rejects(fs.getattr(c, '/p'), errno('ENOENT'))
  assert.equal((await fs.getattr(c, '/q')).mode, 0o010644)
})
