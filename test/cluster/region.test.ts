// Unit tests of a region's state machine: validation must not depend on how entries are
// grouped into apply batches (replicas group them differently), and snapshots round-trip.
import assert from 'node:assert/strict'
import { ClassicLevel } from 'classic-level'
import path from 'node:path'
import { test } from 'node:test'
import { RegionReplica } from '../../src/cluster/region'
import type { Entry } from '../../src/raft'
import { encode, type RegionDescriptor } from '../../src/rpc'
import { tempDir } from '../helpers/mount'

const region: RegionDescriptor = { id: 1, startKey: Buffer.alloc(0), endKey: Buffer.alloc(0), epoch: { confVer: 1, version: 1 }, voters: [1], learners: [], leader: 0 }
const conf = () => ({ voters: [1], learners: [] })

function commit(index: number, reads: [string, number][], writes: [string, string][]): Entry {
  const data = encode('RegionCommand', {
    epoch: { confVer: 1, version: 1 },
    commit: { reads: reads.map(([k, v]) => ({ key: Buffer.from(k), version: v })), scans: [], writes: writes.map(([k, v]) => ({ key: Buffer.from(k), value: Buffer.from(v), delete: false })), txnId: Buffer.from(`txn-${index}`) },
  })
  return { term: 2, index, type: 'normal', data }
}

async function open(t: { after(fn: () => unknown): void }, name: string): Promise<RegionReplica> {
  const db = new ClassicLevel<Buffer, Buffer>(path.join(tempDir(t), name), { keyEncoding: 'buffer', valueEncoding: 'buffer' })
  await db.open()
  const r = new RegionReplica(db, region, 1)
  // Applied data lands in the background through classic-level's raw batch, which close()
  // does not wait for: closing under it crashed the process (SIGSEGV) now and then.
  t.after(async () => {
    await r.landed().catch(() => undefined)
    await db.close()
  })
  return r
}

test('region: a commit validates the same whether its reads were written in the same batch or an earlier one', async (t) => {
  // Entry 2 writes k; entry 3 read k at version 2 and writes it again; entry 4 read k at 3.
  const entries = [commit(2, [], [['k', 'a']]), commit(3, [['k', 2]], [['k', 'b']]), commit(4, [['k', 3]], [['j', 'c']])]
  const one = await open(t, 'one')
  const together = await one.applyEntries(entries, conf)
  const two = await open(t, 'two')
  const apart = [...(await two.applyEntries(entries.slice(0, 1), conf)), ...(await two.applyEntries(entries.slice(1, 2), conf)), ...(await two.applyEntries(entries.slice(2), conf))]
  assert.deepEqual(together, apart)
  assert.ok(together.every((r) => (r as { ok: boolean }).ok), JSON.stringify(together))
  for (const r of [one, two]) {
    assert.equal((await r.get(Buffer.from('k')))?.value.toString(), 'b')
    assert.equal((await r.get(Buffer.from('k')))?.version, 3)
    assert.equal((await r.get(Buffer.from('j')))?.version, 4)
  }
})

test('region: a stale read is refused with CONFLICT, and a retried transaction id gets its first answer', async (t) => {
  const r = await open(t, 'r')
  const res = await r.applyEntries([commit(2, [], [['k', 'a']]), commit(3, [['k', 0]], [['k', 'lost']])], conf)
  assert.deepEqual(res[1], { ok: false, code: 'CONFLICT', message: 'a key read by the transaction changed' })
  // Same txn id as entry 2 (txn-2 is in the data): the retry answers ok without applying again.
  const retry = commit(2, [], [['k', 'a']])
  const again = await r.applyEntries([{ ...retry, index: 4 }], conf)
  assert.deepEqual(again[0], { ok: true, index: 2 })
  assert.equal((await r.get(Buffer.from('k')))?.version, 2)
})

test('region: a snapshot image restores the same keys, values and versions', async (t) => {
  const a = await open(t, 'a')
  await a.applyEntries([commit(2, [], [['x', '1'], ['y', '2']]), commit(3, [], [['z', '3']])], conf)
  const image = await a.snapshotData()
  const b = await open(t, 'b')
  await b.restore({ meta: { index: 3, term: 2, confState: { voters: [1], learners: [] } }, data: image })
  assert.equal(b.appliedIndex, 3)
  assert.deepEqual(await b.scan(Buffer.alloc(0), Buffer.alloc(0), 0), await a.scan(Buffer.alloc(0), Buffer.alloc(0), 0))
  // A corrupt image is refused, never half-installed.
  const bad = Buffer.from(image)
  bad[bad.length - 10] ^= 0xff
  const c = await open(t, 'c')
  await assert.rejects(c.restore({ meta: { index: 3, term: 2, confState: { voters: [1], learners: [] } }, data: bad }), /corrupt/)
})

test('region: only a membership change that drops this node marks the replica removed', async (t) => {
  const db = new ClassicLevel<Buffer, Buffer>(path.join(tempDir(t), 'self'), { keyEncoding: 'buffer', valueEncoding: 'buffer' })
  await db.open()
  // Node 3 catching up by log: not listed yet, then added, then removed.
  const r = new RegionReplica(db, { ...region, voters: [1], learners: [] }, 1, 3)
  t.after(async () => {
    await r.landed().catch(() => undefined)
    await db.close()
  })
  const cc = (index: number): Entry => ({ term: 2, index, type: 'confChange', data: new Uint8Array(9) })
  const confs = new Map<number, { voters: number[]; learners: number[] }>([
    [2, { voters: [1, 2], learners: [] }],
    [3, { voters: [1, 2], learners: [3] }],
    [4, { voters: [1, 2], learners: [] }],
  ])
  await r.applyEntries([cc(2)], (e) => confs.get(e.index)!)
  assert.equal(r.removedSelf, false, 'a change before this node was added is not a removal')
  await r.applyEntries([cc(3)], (e) => confs.get(e.index)!)
  assert.equal(r.removedSelf, false)
  assert.equal(r.region.epoch?.confVer, 3, 'conf_ver is the index of the last membership change')
  await r.applyEntries([cc(4)], (e) => confs.get(e.index)!)
  assert.equal(r.removedSelf, true)
})

test('region: reads and the next validation right after an apply see its writes, though they land in the background', async (t) => {
  const r = await open(t, 'landing')
  for (let i = 0; i < 50; i++) {
    const index = 2 + i
    // Each commit reads the key at the version the previous one wrote: it only applies if the
    // previous batch is visible to validation.
    const reads: [string, number][] = i === 0 ? [] : [['k', index - 1]]
    const [res] = (await r.applyEntries([commit(index, reads, [['k', `v${i}`]])], conf)) as { ok: boolean }[]
    assert.equal(res?.ok, true, `commit ${index}`)
    const got = await r.get(Buffer.from('k'))
    assert.equal(got?.value.toString(), `v${i}`)
    assert.equal(got?.version, index)
    assert.equal((await r.scan(Buffer.alloc(0), Buffer.alloc(0), 0)).length, 1)
  }
  await r.landed()
})

test('region: a scan sees applied writes that have not landed in LevelDB yet, puts and deletes, with and without a limit', async (t) => {
  const r = await open(t, 'scan')
  const op = (index: number, ops: [string, string | null][]): Entry => ({
    term: 2,
    index,
    type: 'normal',
    data: encode('RegionCommand', {
      epoch: { confVer: 1, version: 1 },
      commit: { reads: [], scans: [], writes: ops.map(([k, v]) => ({ key: Buffer.from(k), value: Buffer.from(v ?? ''), delete: v === null })), txnId: Buffer.from(`scan-${index}`) },
    }),
  })
  const model = new Map<string, string>()
  const names = Array.from({ length: 20 }, (_, i) => `k${String(i).padStart(2, '0')}`)
  await r.applyEntries([op(2, names.map((k) => [k, `v-${k}`]))], conf)
  for (const k of names) model.set(k, `v-${k}`)
  await r.landed()
  // Applied, not landed: puts before, between and after the landed keys, overwrites, deletes.
  const later: [string, string | null][] = [['a0', 'new'], ['k05a', 'new'], ['k03', null], ['k07', null], ['k08', 'over'], ['k99', 'new'], ['k00', null]]
  // Hold the background landing (its 50 ms timer) so that the later writes stay in memory
  // until landed() is called: the test does not race the timer.
  const held = r as unknown as { startWriteSoon(): void }
  const soon = held.startWriteSoon
  held.startWriteSoon = () => undefined
  await r.applyEntries([op(3, later)], conf)
  for (const [k, v] of later) v === null ? model.delete(k) : model.set(k, v)
  const expect = (start: string, end: string, limit: number) => {
    const ks = [...model.keys()].filter((k) => k >= start && (end === '' || k < end)).sort()
    return (limit > 0 ? ks.slice(0, limit) : ks).map((k) => `${k}=${model.get(k)}`)
  }
  const got = async (start: string, end: string, limit: number) => (await r.scan(Buffer.from(start), Buffer.from(end), limit)).map((e) => `${e.key.toString()}=${e.value.toString()}`)
  const cases: [string, string, number][] = [['', '', 0], ['', '', 3], ['', '', 5], ['k', 'l', 4], ['k04', 'k09', 0], ['k04', 'k09', 2], ['k9', '', 0], ['a', 'k01', 0]]
  const unlanded = () => (r as unknown as { unlanded: Map<string, unknown> }).unlanded.size
  assert.ok(unlanded() > 0, 'the later writes are still in memory')
  assert.deepEqual(await got('', '', 0), expect('', '', 0))
  assert.ok(unlanded() > 0, 'the scan did not wait for them to land')
  for (const [s, e, l] of cases) assert.deepEqual(await got(s, e, l), expect(s, e, l), `scan [${s}, ${e}) limit ${l} before landing`)
  held.startWriteSoon = soon
  await r.landed()
  assert.equal(unlanded(), 0)
  for (const [s, e, l] of cases) assert.deepEqual(await got(s, e, l), expect(s, e, l), `scan [${s}, ${e}) limit ${l} after landing`)
})
