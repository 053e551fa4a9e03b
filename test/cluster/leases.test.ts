// Read leases on a real 3-node cluster (docs/metadata-leases.md): two clients on one process's
// sessions (so the leader tells them apart by holder, not by stream), and a holder that never
// answers its revoke.
import assert from 'node:assert/strict'
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync, unlinkSync, writeFileSync } from 'node:fs'
import { test } from 'node:test'
import { ClusterKV, keys } from '../../src/kv'
import type { KvResponse, RegionDescriptor } from '../../src/rpc'
import { connectKV, fullyReplicated, startNodes } from '../helpers/cluster'

const LEASED = { lease: true }

async function put(kv: ClusterKV, key: Buffer, n: number): Promise<void> {
  const b = Buffer.alloc(4)
  b.writeUInt32BE(n, 0)
  await kv.txn(async (tx) => tx.put(key, b))
}
const num = (b: Buffer | undefined) => (b ? b.readUInt32BE(0) : 0)
const holderOf = (kv: ClusterKV) => (kv as unknown as { holder: number }).holder

test('cluster: a read lease answers from memory until another client writes; the write revokes it first', async (t) => {
  const c = startNodes(t, 3)
  await fullyReplicated(c)
  const a = await connectKV(t, c)
  const b = await connectKV(t, c)
  const revokes: KvResponse[] = []
  const stop = c.clients.onKvPush((res) => void revokes.push(res))
  t.after(stop)
  const K = keys.meta('lease-test')

  await put(b, K, 1)
  assert.equal(num(await a.get(K, LEASED)), 1)
  const hits = a.leases.hits
  assert.equal(num(await a.get(K, LEASED)), 1)
  assert.equal(a.leases.hits, hits + 1, 'the second read came from the lease')
  assert.equal(num((await a.getMany([K, keys.meta('lease-absent')], LEASED))[0]), 1)

  // B's write returns only after A dropped its lease: A's next read is the new value.
  await put(b, K, 2)
  assert.ok(revokes.some((r) => r.revoke?.leaseHolder === holderOf(a)), 'A was sent a revoke')
  assert.equal(num(await a.get(K, LEASED)), 2)
  for (let i = 3; i < 20; i++) {
    await put(i % 2 ? a : b, K, i)
    assert.equal(num(await a.get(K, LEASED)), i, `A after write ${i}`)
    assert.equal(num(await b.get(K, LEASED)), i, `B after write ${i}`)
  }

  // A's own write revokes nothing of A's, and leaves A a lease on what it wrote.
  await a.get(K, LEASED)
  const before = revokes.filter((r) => r.revoke?.leaseHolder === holderOf(a)).length
  await put(a, K, 100)
  assert.equal(revokes.filter((r) => r.revoke?.leaseHolder === holderOf(a)).length, before)
  const h2 = a.leases.hits
  assert.equal(num(await a.get(K, LEASED)), 100)
  assert.equal(a.leases.hits, h2 + 1, 'served from the lease its commit was granted')
})

test('cluster: a holder that never releases is sent a revoke, and the write lands once its lease runs out', async (t) => {
  const c = startNodes(t, 3)
  await fullyReplicated(c)
  const a = await connectKV(t, c)
  const K = keys.meta('lease-silent')
  await put(a, K, 1)
  // A silent holder: asks the leader for a lease on K itself and ignores the revoke.
  const region = (a as unknown as { locate(k: Buffer): RegionDescriptor }).locate(K)
  const SILENT = 424242
  const pushed: number[] = []
  const stop = c.clients.onKvPush((res) => {
    if (res.revoke?.leaseHolder === SILENT) pushed.push(res.revoke.revokeId)
  })
  t.after(stop)
  let granted = 0
  for (const n of c.nodes) {
    const res = await c.clients.kv(n.address).call({ regionId: region.id, epoch: region.epoch, op: 'get', get: { key: K }, leaseMs: 1000, leaseHolder: SILENT })
    if (!res.error?.code) granted = res.leaseMs
  }
  assert.equal(granted, 1000, 'the leader granted the silent holder a lease')
  await put(a, K, 2)
  assert.equal(pushed.length, 1, 'the silent holder was sent a revoke before the write returned')
  assert.equal(num(await a.get(K)), 2)
})

test('cluster: file data blocks are never leased: the leader refuses them, and a commit of a block and an inode leases the inode only', async (t) => {
  const c = startNodes(t, 3)
  await fullyReplicated(c)
  const a = await connectKV(t, c)
  const ino = 4242
  const block = keys.block(ino, 0)
  const inode = keys.inode(ino)
  await put(a, keys.meta('lease-blocks'), 1) // past a new leader's wait, which outlasts a lease
  await a.txn(async (tx) => {
    tx.put(block, Buffer.alloc(3000, 7))
    tx.put(inode, Buffer.from('attrs'))
  })
  assert.ok(a.leases.lookup(inode.toString('latin1')), 'the commit leased the inode')
  assert.equal(a.leases.lookup(block.toString('latin1')), null, 'and not the block')
  // Asked directly, the leader grants nothing on a block, and leases the inode.
  const region = (a as unknown as { locate(k: Buffer): RegionDescriptor }).locate(block)
  const granted = async (op: 'get' | 'getMany', ks: Buffer[]) => {
    for (const n of c.nodes) {
      const res = await c.clients.kv(n.address).call({ regionId: region.id, epoch: region.epoch, op, ...(op === 'get' ? { get: { key: ks[0] } } : { getMany: { keys: ks } }), leaseMs: 1000, leaseHolder: 515151 })
      if (!res.error?.code) return res.leaseMs
    }
    throw new Error('no leader answered')
  }
  assert.equal(await granted('get', [block]), 0)
  assert.equal(await granted('getMany', [inode, block]), 0)
  assert.equal(await granted('get', [inode]), 1000)
})

test('cluster: a directory lease answers names that do not exist; another client creating one revokes it first, the holder\'s own creates keep it', async (t) => {
  const c = startNodes(t, 3)
  await fullyReplicated(c)
  const a = await connectKV(t, c)
  const b = await connectKV(t, c)
  const DIR = { lease: true, rangeOf: keys.dentryRangeOf }
  const name = (s: string) => keys.dentry(42, Buffer.from(s))
  await put(b, name('present'), 7)

  // A's first lookup in the directory is one scan of it, under a range lease.
  assert.equal(await a.get(name('x'), DIR), undefined)
  assert.equal(a.leases.rangeCount, 1, 'the directory is held')
  let hits = a.leases.hits
  assert.equal(await a.get(name('y'), DIR), undefined)
  assert.equal(num(await a.get(name('present'), DIR)), 7)
  assert.deepEqual((await a.getMany([name('y'), name('present')], DIR)).map(num), [0, 7])
  assert.equal(a.leases.hits, hits + 4, 'other names, absent or present, came from the range')

  // B creates a name A would answer as absent: A's range is revoked before B's write returns.
  await put(b, name('y'), 8)
  assert.equal(a.leases.rangeCount, 0, 'the range was revoked')
  assert.equal(num(await a.get(name('y'), DIR)), 8)

  // A's own creates in the directory go into its range (no revoke of its own).
  assert.equal(await a.get(name('z'), DIR), undefined)
  assert.equal(a.leases.rangeCount, 1)
  await put(a, name('z'), 9)
  await a.txn(async (tx) => tx.del(name('present')))
  assert.equal(a.leases.rangeCount, 1, 'its own commits keep the range')
  hits = a.leases.hits
  assert.equal(num(await a.get(name('z'), DIR)), 9)
  assert.equal(await a.get(name('present'), DIR), undefined)
  assert.ok(a.leases.hits >= hits + 2)
  // And B sees them at once.
  assert.equal(num(await b.get(name('z'), DIR)), 9)
  assert.equal(await b.get(name('present'), DIR), undefined)
  // B's delete of A's name revokes A's range again.
  await b.txn(async (tx) => tx.del(name('z')))
  assert.equal(await a.get(name('z'), DIR), undefined)

  // A directory larger than a range scan's limit is read key by key: still right.
  await b.txn(async (tx) => {
    for (let i = 0; i < 1100; i++) tx.put(keys.dentry(43, Buffer.from(`f${i}`)), Buffer.from([1]))
  })
  assert.equal(await a.get(keys.dentry(43, Buffer.from('nope')), DIR), undefined)
  assert.ok((await a.get(keys.dentry(43, Buffer.from('f5')), DIR))?.equals(Buffer.from([1])))
  assert.equal(a.leases.rangeCount <= 1, true)
  assert.equal(await a.get(keys.dentry(43, Buffer.from('f1099x')), DIR), undefined)
})

test('cluster: two mounts: a name one mount has looked up as absent, created on the other, is seen at once (open O_EXCL is EEXIST)', async (t) => {
  const c = startNodes(t, 3)
  await fullyReplicated(c)
  const a = (await c.mount()).mnt
  const b = (await c.mount()).mnt
  mkdirSync(`${a}/d`)
  for (let round = 0; round < 20; round++) {
    const f = `d/f${round}`
    assert.equal(existsSync(`${a}/${f}`), false) // A's lookup: the directory is held now
    assert.equal(existsSync(`${a}/d/other${round}`), false)
    writeFileSync(`${b}/${f}`, `from b ${round}`)
    assert.equal(readFileSync(`${a}/${f}`, 'utf8'), `from b ${round}`, `round ${round}: A sees B's new file`)
    assert.throws(() => closeSync(openSync(`${a}/${f}`, 'wx')), /EEXIST/)
    // A's own create, then B's unlink of it: A sees it gone.
    writeFileSync(`${a}/d/other${round}`, 'a')
    assert.equal(readFileSync(`${b}/d/other${round}`, 'utf8'), 'a')
    unlinkSync(`${b}/d/other${round}`)
    assert.equal(existsSync(`${a}/d/other${round}`), false, `round ${round}: A sees B's unlink`)
  }
  assert.equal(readdirSync(`${a}/d`).length, 20)
})
