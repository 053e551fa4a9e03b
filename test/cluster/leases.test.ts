// Read leases on a real 3-node cluster (docs/metadata-leases.md): two clients on one process's
// sessions (so the leader tells them apart by holder, not by stream), and a holder that never
// answers its revoke.
import assert from 'node:assert/strict'
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
