// Pointer values and value segments (docs/node-store.md, "Steps 2-3"): a region replica over
// the node's segment store keeps block values in the Raft log and pointers in LevelDB; the
// value keeper deletes segments nothing points into any more and cleans mostly dead ones; all
// of it survives a restart, and a damaged value is an error, never data.
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { openSync, closeSync, writeSync, readSync, readdirSync } from 'node:fs'
import path from 'node:path'
import { test, type TestContext } from 'node:test'
import { ClassicLevel } from 'classic-level'
import { CorruptValueError, RegionReplica, dataKey, decodePointer, isPointer } from '../../src/cluster/region'
import { ValueKeeper } from '../../src/cluster/values'
import { SegmentRaftStore, type Entry, type SegmentGroupStorage } from '../../src/raft'
import { encode, type RegionDescriptor } from '../../src/rpc'
import { logger as rootLogger } from '../../src/util/log'
import { tempDir } from '../helpers/mount'

type Db = ClassicLevel<Buffer, Buffer>
const region: RegionDescriptor = { id: 1, startKey: Buffer.alloc(0), endKey: Buffer.alloc(0), epoch: { confVer: 1, version: 1 }, voters: [1], learners: [], leader: 0 }
const conf = () => ({ voters: [1], learners: [] })
const SEG = 256 * 1024

function commit(index: number, writes: [string, Buffer | null][]): Entry {
  const data = encode('RegionCommand', {
    epoch: { confVer: 1, version: 1 },
    commit: { reads: [], scans: [], writes: writes.map(([k, v]) => ({ key: Buffer.from(k), value: v ?? Buffer.alloc(0), delete: v === null })), txnId: Buffer.from(`txn-${index}`) },
  })
  return { term: 2, index, type: 'normal', data }
}

interface Node {
  db: Db
  store: SegmentRaftStore
  log: SegmentGroupStorage
  replica: RegionReplica
  keeper: ValueKeeper
  close(): Promise<void>
}

/** A node's store as ClusterNode wires it: one LevelDB, the segments over it, one replica. */
async function openNode(dir: string, applied: number): Promise<Node> {
  const db: Db = new ClassicLevel<Buffer, Buffer>(path.join(dir, 'store'), { keyEncoding: 'buffer', valueEncoding: 'buffer' })
  await db.open()
  const store = await SegmentRaftStore.over(db, path.join(dir, 'store-raft'), { segmentBytes: SEG })
  let replica: RegionReplica | undefined
  const keeper = new ValueKeeper({ db, store, replicas: () => (replica ? [replica] : []), logger: rootLogger('test'), intervalMs: 3_600_000 })
  store.keepValues((seq) => keeper.retired(seq))
  const log = await store.openGroup(1, [1], applied)
  replica = new RegionReplica(db, region, applied, 1, store)
  const r = replica
  return {
    db,
    store,
    log,
    replica: r,
    keeper,
    async close() {
      await keeper.stop()
      await r.landed()
      await store.close()
      await db.close()
    },
  }
}

/** Appends, syncs and applies one entry, as the host does (apply only after the sync that
 * wrote it), compacting behind it now and then. */
async function step(n: Node, e: Entry, compactEvery: number): Promise<void> {
  n.log.append([e])
  n.log.setHardState({ term: 2, vote: 1, commit: e.index })
  await n.store.sync()
  const [res] = await n.replica.applyEntries([e], conf, (x) => n.log.locOf(x))
  assert.deepEqual(res, { ok: true, index: e.index })
  n.log.evict(e.index)
  if (e.index % compactEvery === 0) {
    await n.replica.persistApplied()
    n.log.createSnapshot(e.index, { voters: [1], learners: [] }, Buffer.alloc(0))
    n.log.compact(Math.max(n.log.firstIndex(), e.index - 2))
  }
}

async function expectValues(n: Node, model: Map<string, Buffer>): Promise<void> {
  const keys = [...model.keys()]
  const many = await n.replica.getMany(keys.map((k) => Buffer.from(k)))
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i] as string
    assert.ok(many[i]?.value.equals(model.get(k) as Buffer), `get_many of ${k}`)
    assert.ok((await n.replica.get(Buffer.from(k)))?.value.equals(model.get(k) as Buffer), `get of ${k}`)
  }
}

const segFiles = (dir: string) => readdirSync(path.join(dir, 'store-raft')).filter((f) => f.endsWith('.log'))

function dirOf(t: TestContext): string {
  return tempDir(t)
}

test('values: block values live in the log (LevelDB holds pointers); dead segments go, mostly dead ones are cleaned, and a restart reads everything back', async (t) => {
  const dir = dirOf(t)
  let n = await openNode(dir, 1)
  const model = new Map<string, Buffer>()
  let index = 2
  // Keys written once ("cold") among many overwrites of a few ("hot"): the segments holding
  // cold values end up mostly dead (cleaned), the others wholly dead (deleted).
  for (let i = 0; i < 160; i++) {
    const writes: [string, Buffer | null][] = []
    const hot = `hot-${i % 3}`
    writes.push([hot, randomBytes(16 * 1024)])
    if (i % 20 === 0) writes.push([`cold-${i}`, randomBytes(8 * 1024)])
    if (i % 7 === 0) writes.push([`small-${i % 5}`, randomBytes(100)]) // inline: below 4 KiB
    await step(n, commit(index++, writes), 8)
    for (const [k, v] of writes) if (v) model.set(k, v)
  }
  await n.replica.landed()
  // Pointers in LevelDB for the blocks, inline values for the small ones.
  const hotRaw = await n.db.get(dataKey(Buffer.from('hot-0')))
  assert.ok(hotRaw && isPointer(hotRaw), 'a 16 KiB value is a pointer')
  const smallRaw = await n.db.get(dataKey(Buffer.from('small-0')))
  assert.ok(smallRaw && !isPointer(smallRaw) && smallRaw.length === 108, 'a 100-byte value is inline')
  await expectValues(n, model)

  const retiredBefore = n.store.valueSegments().length
  assert.ok(retiredBefore > 3, `segments the log left are kept for their values (${retiredBefore})`)
  n.keeper.start()
  for (let i = 0; i < 10 && n.store.valueSegments().length > 0; i++) await n.keeper.kick()
  const c = n.keeper.counts
  assert.ok(c.deleted > 0, `wholly dead segments were deleted (${JSON.stringify(c)})`)
  assert.ok(c.cleaned > 0 && c.copiedBytes > 0, `mostly dead segments were cleaned (${JSON.stringify(c)})`)
  assert.ok(n.store.valueSegments().length < retiredBefore, 'fewer value segments')
  // The spare segment is prepared, and a deleted one unlinked, in the background: wait (a
  // bounded while) for the files to settle before counting them.
  const expected = () => n.store.valueSegments().length + n.store.segmentCount() + 1
  for (let i = 0; i < 100 && segFiles(dir).length !== expected(); i++) await new Promise((r) => setTimeout(r, 20))
  assert.equal(segFiles(dir).length, expected(), 'the files on disk are the log, its spare and the value segments, nothing else')
  await expectValues(n, model)
  // A cleaned value is inline now, with its version kept.
  const cold = await n.db.get(dataKey(Buffer.from('cold-0')))
  assert.ok(cold && !isPointer(cold), 'cold-0 was copied inline by the cleaning')

  // Restart: value segments are opened (not scanned), the log replays, everything reads back.
  const applied = n.replica.appliedIndex
  await n.close()
  n = await openNode(dir, applied)
  t.after(() => n.close())
  await expectValues(n, model)
  // More writes after the restart, then the keeper again: still consistent.
  for (let i = 0; i < 40; i++) {
    const v = randomBytes(16 * 1024)
    await step(n, commit(index++, [[`hot-${i % 3}`, v]]), 8)
    model.set(`hot-${i % 3}`, v)
  }
  n.keeper.start()
  await n.keeper.kick()
  await n.keeper.kick()
  await expectValues(n, model)
})

test('values: a value whose bytes in the segment are damaged is an error naming the key, never data', async (t) => {
  const dir = dirOf(t)
  const n = await openNode(dir, 1)
  t.after(() => n.close())
  const v = randomBytes(16 * 1024)
  await step(n, commit(2, [['blk', v]]), 1_000)
  await n.replica.landed()
  assert.ok((await n.replica.get(Buffer.from('blk')))?.value.equals(v))
  const raw = (await n.db.get(dataKey(Buffer.from('blk')))) as Buffer
  const p = decodePointer(raw)
  const file = path.join(dir, 'store-raft', `seg-${String(p.seq).padStart(12, '0')}.log`)
  const fd = openSync(file, 'r+')
  const b = Buffer.alloc(1)
  readSync(fd, b, 0, 1, p.off + 100)
  b[0] = (b[0] as number) ^ 0xff
  writeSync(fd, b, 0, 1, p.off + 100)
  closeSync(fd)
  await assert.rejects(n.replica.get(Buffer.from('blk')), (err: Error) => err instanceof CorruptValueError && /fails its checksum/.test(err.message) && err.message.includes(Buffer.from('blk').toString('hex')))
  await assert.rejects(n.replica.getMany([Buffer.from('blk')]), CorruptValueError)
})

test('values: an image for a follower carries every value inline, and installing it elsewhere reads the same', async (t) => {
  const dir = dirOf(t)
  const n = await openNode(dir, 1)
  t.after(() => n.close())
  const model = new Map<string, Buffer>()
  for (let i = 0; i < 10; i++) {
    const v = randomBytes(8 * 1024 + i)
    await step(n, commit(i + 2, [[`k${i}`, v]]), 1_000)
    model.set(`k${i}`, v)
  }
  const image = await n.replica.snapshotData()
  const other = await openNode(tempDir(t), 1)
  t.after(() => other.close())
  await other.replica.restore({ meta: { index: 11, term: 2, confState: { voters: [1], learners: [] } }, data: image })
  await expectValues(other, model)
  const raw = await other.db.get(dataKey(Buffer.from('k0')))
  assert.ok(raw && !isPointer(raw), 'installed inline')
})
