// Reads of several keys in one request (getMany, the get_many request of docs/protocol.md) and
// the path resolution that sends them from hints on a cluster mount (docs/posix.md, "Path
// resolution on a cluster mount"): hints made stale by another client must never give a wrong
// answer. Two clients of one 3-node cluster, each with its own FileSystem.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { FileSystem } from '../../src/fs'
import { KvError, LIMITS } from '../../src/kv'
import { ErrorCode, NO_OPERATION } from '../../src/rpc'
import { connectKV, fullyReplicated, startNodes } from '../helpers/cluster'

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
  // Registered first, so it runs before connectKV's close of the stores under them.
  const mounted: FileSystem[] = []
  t.after(async () => {
    for (const fs of mounted) await fs.close()
  })
  const ka = await connectKV(t, c)
  const kb = await connectKV(t, c)
  const a = await FileSystem.open(ka, { shared: true })
  const b = await FileSystem.open(kb, { shared: true })
  mounted.push(a, b)

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

  await t.test('getMany: an answer over the leader\'s 32 MiB bound is refused, one under it is not', async () => {
    const k = (i: number) => Buffer.from(`zz-getmany-big-${String(i).padStart(3, '0')}`)
    const mib = Buffer.alloc(1024 * 1024, 0x61)
    for (let batch = 0; batch < 4; batch++) {
      await ka.txn(async (tx) => {
        for (let i = batch * 10; i < batch * 10 + 10; i++) tx.put(k(i), mib)
      })
    }
    const under = await kb.getMany(Array.from({ length: 20 }, (_, i) => k(i)))
    assert.ok(under.every((v) => v?.length === mib.length))
    // 40 MiB asked: the leader stops reading once the answer is over its bound (docs/protocol.md).
    await assert.rejects(kb.getMany(Array.from({ length: 40 }, (_, i) => k(i))), /TOO_LARGE/)
  })

  await t.test('a node without get_many: one get per key, from then on', async () => {
    const k = (s: string) => Buffer.from(`zz-getmany-old-${s}`)
    await ka.txn(async (tx) => {
      tx.put(k('1'), Buffer.from('one'))
      tx.put(k('2'), Buffer.from('two'))
    })
    // What a node answers a request whose operation it does not know (a node older than
    // get_many answers exactly this, from the same code path).
    const old = await connectKV(t, c)
    type Request = (key: Buffer, op: { op?: string }, same?: readonly Buffer[]) => Promise<unknown>
    const raw = old as unknown as { request: Request }
    const real = raw.request.bind(old)
    let refused = 0
    raw.request = (key, op, same) => {
      if (op.op !== 'getMany') return real(key, op, same)
      refused++
      // How request() reports that answer (an application error it does not retry).
      return Promise.reject(new KvError('IO', `${ErrorCode.INVALID}: ${NO_OPERATION}`))
    }
    assert.deepEqual((await old.getMany([k('2'), k('none'), k('1')])).map((v) => v?.toString()), ['two', undefined, 'one'])
    assert.deepEqual((await old.getMany([k('1'), k('2')])).map((v) => v?.toString()), ['one', 'two'])
    assert.equal(refused, 1, 'after the first refusal, no get_many is sent again')
  })

  await t.test('a request without an operation is refused with INVALID naming it', async () => {
    const region = (await fullyReplicated(c)).regions?.find((r) => r.id !== 0)
    assert.ok(region, 'a data region')
    for (const n of c.nodes) {
      const res = await c.clients.kv(n.address).call({ regionId: region.id, epoch: region.epoch })
      const code = res.error?.code
      // Only the leader reaches the operation; the others answer where the leader is.
      assert.ok(code === ErrorCode.NOT_LEADER || (code === ErrorCode.INVALID && res.error?.message === NO_OPERATION), `${n.address}: ${code} ${res.error?.message}`)
    }
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
