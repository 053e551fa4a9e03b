// Reads of several keys in one request (getMany, the get_many request of docs/protocol.md) and
// the path resolution that sends them from hints on a cluster mount (docs/posix.md, "Path
// resolution on a cluster mount"): hints made stale by another client must never give a wrong
// answer. Two clients of one 3-node cluster, each with its own FileSystem.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { FileSystem } from '../../src/fs'
import { ClusterKV, LIMITS } from '../../src/kv'
import { logger } from '../../src/util/log'
import { fullyReplicated, startNodes } from '../helpers/cluster'

const ctx = { uid: 0, gid: 0, pid: 1 }
const O_WRONLY = 1

async function errno(p: Promise<unknown>): Promise<string> {
  try {
    await p
  } catch (err) {
    return (err as { errno?: string }).errno ?? String(err)
  }
  return 'no error'
}

test('cluster: getMany answers in order, absent keys included, and path hints never give a stale answer', async (t) => {
  const c = startNodes(t, 3)
  await fullyReplicated(c)
  const make = () => new ClusterKV({ clients: c.clients, waypoints: c.waypoints.map((w) => w.address), logger: logger('test') })
  const ka = make()
  const kb = make()
  await ka.connect()
  await kb.connect()
  const a = await FileSystem.open(ka, { shared: true })
  const b = await FileSystem.open(kb, { shared: true })
  t.after(async () => {
    await a.close()
    await b.close()
  })

  await t.test('getMany', async () => {
    const k = (s: string) => Buffer.from(`zz-getmany-${s}`)
    await ka.txn(async (tx) => {
      tx.put(k('1'), Buffer.from('one'))
      tx.put(k('3'), Buffer.alloc(0))
    })
    const got = await kb.getMany([k('3'), k('2'), k('1'), k('1')])
    assert.deepEqual(got.map((v) => v?.toString()), ['', undefined, 'one', 'one'], 'in order; an empty value is not an absent one')
    assert.deepEqual(await kb.getMany([]), [])
    await assert.rejects(kb.getMany(Array.from({ length: LIMITS.getManyKeys + 1 }, (_, i) => k(String(i)))), /TOO_LARGE/)
  })

  await t.test('stale hints', async () => {
    await a.mkdir(ctx, '/p', 0o755)
    await a.mkdir(ctx, '/p/q', 0o755)
    await a.mkdir(ctx, '/p/q/r', 0o755)
    await a.release(ctx, await a.create(ctx, '/p/q/r/f', 0o644, O_WRONLY))
    // A resolves everything once: its hints now name /p, /p/q and /p/q/r.
    assert.equal((await a.getattr(ctx, '/p/q/r/f')).size, 0)
    const oldR = (await a.getattr(ctx, '/p/q/r')).ino

    // B moves /p/q away and puts a new /p/q, with another r, in its place.
    await b.rename(ctx, '/p/q', '/p/old')
    await b.mkdir(ctx, '/p/q', 0o755)
    await b.mkdir(ctx, '/p/q/r', 0o755)
    const fh = await b.create(ctx, '/p/q/r/g', 0o644, O_WRONLY)
    await b.write(ctx, fh, Buffer.from('new'), 3, 0)
    await b.release(ctx, fh)

    // A's hints for /p/q and /p/q/r are wrong now: every answer must be the current one.
    assert.equal(await errno(a.getattr(ctx, '/p/q/r/f')), 'ENOENT', 'the old file is not under the new directory')
    assert.equal((await a.getattr(ctx, '/p/q/r/g')).size, 3)
    assert.notEqual((await a.getattr(ctx, '/p/q/r')).ino, oldR, 'the new directory, not the hinted one')
    assert.equal((await a.getattr(ctx, '/p/old/r/f')).size, 0, 'the old tree under its new name')
    assert.deepEqual((await a.readdir(ctx, '/p/q/r')).names.filter((n: string) => !n.startsWith('.')).sort(), ['g'])

    // A directory replaced by a file of the same name: ENOTDIR below it, the file's own stat.
    await b.unlink(ctx, '/p/q/r/g')
    await b.rmdir(ctx, '/p/q/r')
    await b.release(ctx, await b.create(ctx, '/p/q/r', 0o644, O_WRONLY))
    assert.equal(await errno(a.getattr(ctx, '/p/q/r/g')), 'ENOTDIR')
    assert.equal((await a.getattr(ctx, '/p/q/r')).mode & 0o170000, 0o100000)
    // And back: a directory again, found through the fresh entry.
    await b.unlink(ctx, '/p/q/r')
    await b.mkdir(ctx, '/p/q/r', 0o755)
    await b.release(ctx, await b.create(ctx, '/p/q/r/h', 0o644, O_WRONLY))
    assert.equal((await a.getattr(ctx, '/p/q/r/h')).size, 0)
    // A create through hints that went stale lands in the current directory.
    await b.rename(ctx, '/p/q', '/p/q2')
    await b.mkdir(ctx, '/p/q', 0o755)
    await b.mkdir(ctx, '/p/q/r', 0o755)
    await a.release(ctx, await a.create(ctx, '/p/q/r/made-by-a', 0o644, O_WRONLY))
    assert.equal((await b.getattr(ctx, '/p/q/r/made-by-a')).size, 0)
    assert.equal(await errno(b.getattr(ctx, '/p/q2/r/made-by-a')), 'ENOENT')
  })
})
