// The transactions' read cache of ClusterKV (src/kv/remote.ts): a read served from it is only
// a guess that the region checks at commit. Two clients of one 3-node cluster race on one key.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { ClusterKV, keys } from '../../src/kv'
import { connectKV, fullyReplicated, startNodes } from '../helpers/cluster'

const KEY = keys.meta('readcache-test-counter')

async function increment(kv: ClusterKV): Promise<number> {
  return kv.txn(async (tx) => {
    const v = await tx.get(KEY)
    const next = (v ? v.readUInt32BE(0) : 0) + 1
    const b = Buffer.alloc(4)
    b.writeUInt32BE(next, 0)
    tx.put(KEY, b)
    return next
  })
}

test('cluster: a transaction on a stale cached read conflicts, re-reads and never loses an update', async (t) => {
  const c = startNodes(t, 3)
  await fullyReplicated(c)
  const a = await connectKV(t, c)
  const b = await connectKV(t, c)

  assert.equal(await increment(a), 1)
  assert.equal(await increment(a), 2, 'A\'s own commit filled its cache')
  assert.ok(a.cacheHits >= 1, 'the second increment read from the cache')
  const conflictsBefore = a.conflicts
  // B moves the key on; A's cache still holds 2.
  assert.equal(await increment(b), 3)
  assert.equal(await increment(b), 4)
  assert.equal(await increment(a), 5, 'A conflicted on its stale read and re-ran on the fresh value')
  assert.equal(a.conflicts, conflictsBefore + 1)

  // A read-only transaction on a stale cached read is confirmed, not trusted.
  assert.equal(await increment(b), 6)
  const seen = await a.txn(async (tx) => (await tx.get(KEY))?.readUInt32BE(0))
  assert.equal(seen, 6)

  // An error decided on a stale cached read is decided again on a fresh one (as EEXIST from a
  // stale "exists" must not reach a caller).
  const refuseOdd = () => a.txn(async (tx) => {
    const v = (await tx.get(KEY))?.readUInt32BE(0) ?? 0
    if (v % 2 === 1) throw new Error(`odd: ${v}`)
    const b = Buffer.alloc(4)
    b.writeUInt32BE(v + 2, 0)
    tx.put(KEY, b)
    return v + 2
  })
  assert.equal(await increment(a), 7, 'A caches an odd value')
  assert.equal(await increment(b), 8)
  assert.equal(await refuseOdd(), 10, 'A decided on the fresh value 8, not its cached 7')
  assert.equal(await increment(b), 11)
  await assert.rejects(refuseOdd(), /odd: 11/, 'a fresh read that is odd is refused')

  // Interleaved increments from both, many rounds: the count is exact.
  const rounds = 40
  await Promise.all([0, 1].map(async (who) => {
    for (let i = 0; i < rounds; i++) await increment(who === 0 ? a : b)
  }))
  const final = (await a.get(KEY))?.readUInt32BE(0)
  assert.equal(final, 11 + 2 * rounds)
})
