// Read leases (docs/metadata-leases.md), both halves as pure bookkeeping on a simulated clock:
// the leader's LeaseTable and the client's LeaseCache, and then a seeded random run of both
// together against a register, where a read answered from a lease must never be older than
// the last write that returned.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { LeaseTable, type LeaseHolder } from '../../src/cluster/leases'
import { LeaseCache } from '../../src/kv/leases'
import { isBlockKey, keys, rangeMayHoldBlocks } from '../../src/kv/keys'
import { rng, testSeed } from '../helpers/mount'

/** A simulated clock: sleep resolves when the test advances time past it. */
class SimClock {
  t = 0
  private timers: { at: number; resolve: () => void }[] = []
  now = () => this.t
  sleep = (ms: number) => new Promise<void>((resolve) => this.timers.push({ at: this.t + ms, resolve }))
  async advance(ms: number): Promise<void> {
    const end = this.t + ms
    for (;;) {
      await settle()
      this.timers.sort((a, b) => a.at - b.at)
      const next = this.timers[0]
      if (!next || next.at > end) break
      this.t = Math.max(this.t, next.at)
      this.timers.shift()
      next.resolve()
    }
    this.t = end
    await settle()
  }
}

const settle = async () => {
  for (let i = 0; i < 20; i++) await Promise.resolve()
}

class Holder implements LeaseHolder {
  revokes: { id: number; keys: string[] }[] = []
  up = true
  alive = () => this.up
  revoke = (id: number, keys: Buffer[]) => void this.revokes.push({ id, keys: keys.map((k) => k.toString()) })
}

const k = (s: string) => Buffer.from(s)
const u32 = (n: number) => {
  const b = Buffer.alloc(4)
  b.writeUInt32BE(n)
  return b
}

/** A client of the seeded runs: a revoke reaches it after a delay; unless it stopped
 * answering, it drops the keys and its release travels back, after another delay. */
class SimClient implements LeaseHolder {
  up = true
  alive = () => this.up
  constructor(
    readonly cache: LeaseCache,
    private readonly table: LeaseTable,
    private readonly delay: () => Promise<void>,
  ) {}
  revoke = (id: number, keys: Buffer[]) => {
    void (async () => {
      await this.delay()
      if (!this.up) return
      this.cache.revoke(keys.map((x) => x.toString()))
      await this.delay()
      this.table.release(this, id)
    })()
  }
}

test('leases: a write revokes other holders and waits for their release; the writer keeps no lease of its own', async () => {
  const clock = new SimClock()
  const table = new LeaseTable(clock, 1000)
  await clock.advance(1000) // past the new-leader wait
  const a = new Holder()
  const b = new Holder()
  assert.equal(table.grant(a, [k('x'), k('y')], 500), 500)
  assert.equal(table.grant(b, [k('x')], 5000), 1000) // bounded by the table's maximum
  let proposed = false
  const w = table.beginWrite(b, [k('x')]).then((done) => {
    proposed = true
    return done
  })
  await settle()
  assert.equal(proposed, false, 'a write waits while another holder has a lease')
  assert.deepEqual(a.revokes.map((r) => r.keys), [['x']])
  assert.equal(b.revokes.length, 0, "the writer's own lease is not revoked")
  assert.equal(table.grant(a, [k('x')], 500), 0, 'no grants on a key being written')
  assert.equal(table.grant(a, [k('y')], 500), 500, 'other keys are granted as before')
  table.release(a, a.revokes[0]!.id)
  const done = await w
  assert.equal(proposed, true)
  done()
  assert.equal(table.grant(a, [k('x')], 500), 500, 'granted again once the write is done')
})

test('leases: a holder that never answers (or whose stream is gone) holds a write until its lease runs out, not longer', async () => {
  const clock = new SimClock()
  const table = new LeaseTable(clock, 1000)
  await clock.advance(1000)
  const silent = new Holder()
  const gone = new Holder()
  gone.up = false
  table.grant(silent, [k('x')], 300)
  await clock.advance(100)
  table.grant(gone, [k('x')], 600) // ends at 1700 + 0
  let at = -1
  void table.beginWrite(null, [k('x')]).then(() => (at = clock.t))
  await clock.advance(1000)
  assert.equal(silent.revokes.length, 1)
  assert.equal(gone.revokes.length, 0, 'no revoke is sent on a dead stream')
  assert.equal(at, 1700, 'the write waits for the longest lease to end')
})

test('leases: a new leader (or one that lost and regained leadership) proposes no write for one longest lease', async () => {
  const clock = new SimClock()
  const table = new LeaseTable(clock, 1000)
  let at = -1
  void table.beginWrite(null, [k('x')]).then(() => (at = clock.t))
  await clock.advance(999)
  assert.equal(at, -1)
  await clock.advance(1)
  assert.equal(at, 1000)
  const a = new Holder()
  table.grant(a, [k('x')], 1000)
  table.reset()
  assert.equal(table.leasedKeys, 0)
  at = -1
  void table.beginWrite(null, [k('x')]).then(() => (at = clock.t))
  await clock.advance(1000)
  assert.equal(at, 2000)
  assert.equal(a.revokes.length, 0, 'the forgotten leases are waited out, not revoked')
})

test('leases: the client caches an answer only if no revoke or commit of its own overtook it', () => {
  let now = 0
  const c = new LeaseCache(() => now)
  // A plain read with a lease: cached until 90% of the lease minus the margin, from the send.
  const r1 = c.beginRead(['a'])
  now = 10
  c.endRead(r1, [{ key: 'a', value: k('1') }], 1000)
  assert.equal(c.lookup('a')?.value?.toString(), '1')
  now = 897
  assert.equal(c.lookup('a')?.value?.toString(), '1')
  now = 898
  assert.equal(c.lookup('a'), null, 'expired by the client clock first')
  // A revoke that arrives before the answer: not cached.
  const r2 = c.beginRead(['b'])
  c.revoke(['b'])
  c.endRead(r2, [{ key: 'b', value: k('old') }], 1000)
  assert.equal(c.lookup('b'), null)
  // A commit of ours sent while the read was on its way: not cached; nor a read sent during it.
  const r3 = c.beginRead(['c'])
  c.beginWrite(['c'])
  const r4 = c.beginRead(['c'])
  c.endRead(r3, [{ key: 'c', value: k('old') }], 1000)
  c.endRead(r4, [{ key: 'c', value: k('old?') }], 1000)
  assert.equal(c.lookup('c'), null)
  // The commit's answer leases what it wrote.
  c.endWrite(['c'], { values: [k('new')], leaseMs: 1000, sentAt: now, index: 5 })
  assert.equal(c.lookup('c')?.value?.toString(), 'new')
  // Two commits of ours on one key in flight: nothing is cached until both are answered, then
  // the value written at the higher index, whichever answer came last.
  c.beginWrite(['d'])
  c.beginWrite(['d'])
  c.endWrite(['d'], { values: [k('1')], leaseMs: 1000, sentAt: now, index: 7 })
  assert.equal(c.lookup('d'), null)
  c.endWrite(['d'], { values: [k('2')], leaseMs: 1000, sentAt: now, index: 8 })
  assert.equal(c.lookup('d')?.value?.toString(), '2')
  c.beginWrite(['d'])
  c.beginWrite(['d'])
  c.endWrite(['d'], { values: [k('4')], leaseMs: 1000, sentAt: now, index: 10 })
  c.endWrite(['d'], { values: [k('3')], leaseMs: 1000, sentAt: now, index: 9 })
  assert.equal(c.lookup('d')?.value?.toString(), '4')
  // The newest write came without a lease: an older one's lease is not used (the leader does
  // not revoke our own leases when we write, so the older lease may predate the newer write).
  c.beginWrite(['d'])
  c.beginWrite(['d'])
  c.endWrite(['d'], { values: [k('6')], leaseMs: 0, sentAt: now, index: 12 })
  c.endWrite(['d'], { values: [k('5')], leaseMs: 1000, sentAt: now, index: 11 })
  assert.equal(c.lookup('d'), null)
  // A commit of ours with an unknown outcome: nothing is cached from that run.
  c.beginWrite(['h'])
  c.beginWrite(['h'])
  c.endWrite(['h'])
  c.endWrite(['h'], { values: [k('x')], leaseMs: 1000, sentAt: now, index: 13 })
  assert.equal(c.lookup('h'), null)
  // A revoke that overtook our commit's answer: that answer's lease is not used.
  c.beginWrite(['g'])
  c.revoke(['g'])
  c.endWrite(['g'], { values: [k('v')], leaseMs: 1000, sentAt: now, index: 14 })
  assert.equal(c.lookup('g'), null)
  // No lease granted: nothing cached. An absent key is cached as absent.
  const r5 = c.beginRead(['e', 'f'])
  c.endRead(r5, [{ key: 'e', value: k('x') }], 0)
  assert.equal(c.lookup('e'), null)
  const r6 = c.beginRead(['f'])
  c.endRead(r6, [{ key: 'f', value: undefined }], 1000)
  assert.deepEqual(c.lookup('f'), { value: undefined, until: now + 898 })
})

// Both halves with messages in flight: clients read and write registers through a simulated
// leader; every message takes a random delay. A read answered from a client's lease must
// return a value at least as new as the last write that completed before the read began.
test('leases: a seeded run of clients, a leader and delayed messages never reads a stale value', async () => {
  const seed = testSeed()
  const r = rng(seed)
  const clock = new SimClock()
  const table = new LeaseTable(clock, 200)
  const store = new Map<string, { v: number }>()
  const keysAll = ['p', 'q', 'r']
  const delay = () => clock.sleep(1 + Math.floor(r() * 20))
  let completedVersion = new Map<string, number>() // key -> version of the latest write that returned
  let version = 0
  class Client extends SimClient {
    async read(key: string): Promise<number> {
      const hit = this.cache.lookup(key)
      if (hit) return hit.value ? hit.value.readUInt32BE() : 0
      const lr = this.cache.beginRead([key])
      await delay()
      const ms = table.grant(this, [Buffer.from(key)], 200)
      await delay() // the read barrier and the read
      const v = store.get(key)?.v ?? 0
      await delay()
      this.cache.endRead(lr, [{ key, value: v ? u32(v) : undefined }], ms)
      return v
    }
    async write(key: string): Promise<void> {
      this.cache.beginWrite([key])
      const sentAt = clock.t
      await delay()
      const done = await table.beginWrite(this, [Buffer.from(key)])
      await delay() // replication
      const v = ++version
      store.set(key, { v })
      done()
      const ms = table.grant(this, [Buffer.from(key)], 200)
      await delay()
      this.cache.endWrite([key], { values: [u32(v)], leaseMs: ms, sentAt, index: v })
      completedVersion.set(key, Math.max(completedVersion.get(key) ?? 0, v))
    }
  }
  const clients = [0, 1, 2].map(() => new Client(new LeaseCache(() => clock.t), table, delay))
  await clock.advance(200)
  let reads = 0
  let hits = 0
  const ops: Promise<void>[] = []
  for (let step = 0; step < 3000; step++) {
    const c = clients[Math.floor(r() * clients.length)]!
    const key = keysAll[Math.floor(r() * keysAll.length)]!
    if (r() < 0.25) {
      ops.push(c.write(key))
    } else {
      const floor = completedVersion.get(key) ?? 0
      const before = c.cache.hits
      ops.push(
        c.read(key).then((v) => {
          reads++
          if (c.cache.hits > before) hits++
          assert.ok(v >= floor, `read of ${key} returned version ${v}, older than ${floor} which had returned before it began (POLYFS_SEED=${seed})`)
        }),
      )
    }
    if (r() < 0.01) clients[Math.floor(r() * clients.length)]!.up = r() < 0.5 // a client stops answering revokes, or comes back
    await clock.advance(Math.floor(r() * 5))
  }
  await clock.advance(10_000)
  await Promise.all(ops)
  completedVersion = new Map()
  assert.ok(reads > 1000 && hits > 100, `reads ${reads}, from a lease ${hits}`)
})

test('leases: a range lease answers absent keys; a write by another holder into the range revokes it, the holder\'s own does not', async () => {
  const clock = new SimClock()
  const table = new LeaseTable(clock, 1000)
  await clock.advance(1000)
  const a = new Holder()
  const b = new Holder()
  assert.equal(table.grantRange(a, k('d/'), k('d0'), 500), 500)
  assert.equal(table.leasedRanges, 1)
  // The holder's own write into its range: no revoke, the range stays.
  const own = await table.beginWrite(a, [k('d/x')])
  own()
  assert.equal(a.revokes.length, 0)
  assert.equal(table.leasedRanges, 1)
  // A write outside the range: nothing.
  ;(await table.beginWrite(b, [k('e/x')]))()
  assert.equal(a.revokes.length, 0)
  // Another holder's write of a key that does not exist yet, inside the range: revoked first.
  let proposed = false
  const w = table.beginWrite(b, [k('d/new')]).then((done) => ((proposed = true), done))
  await settle()
  assert.equal(proposed, false)
  assert.deepEqual(a.revokes.map((x) => x.keys), [['d/new']])
  // No range grant while a write into it is marked.
  assert.equal(table.grantRange(a, k('d/'), k('d0'), 500), 0)
  table.release(a, a.revokes[0]!.id)
  ;(await w)()
  assert.equal(proposed, true)
  assert.equal(table.leasedRanges, 0)
  assert.equal(table.grantRange(a, k('d/'), k('d0'), 500), 500)

  // The client: a range answers present and absent keys; its own commit into the range is
  // folded in once answered; a second commit of its own on its way, a failed one, or a revoke
  // drop the range; a scan overtaken by a revoke or by its own commit is not kept.
  let now = 0
  const c = new LeaseCache(() => now)
  const v = (s: string) => Buffer.from(s)
  let rr = c.beginRangeRead('d/', 'd0')
  c.endRangeRead(rr, [{ key: 'd/a', value: v('A'), version: 3 }], 1000)
  assert.deepEqual(c.lookupRange('d/a', 'd/'), { value: v('A'), version: 3 })
  assert.deepEqual(c.lookupRange('d/zz', 'd/'), { value: undefined, version: 0 })
  assert.equal(c.lookupRange('e/a', 'e/'), null)
  c.beginWrite(['d/b'])
  assert.equal(c.lookupRange('d/zz', 'd/'), 'busy', 'nothing from the range while our commit into it is on its way')
  c.endWrite(['d/b'], { values: [v('B')], leaseMs: 1000, sentAt: now, index: 7 })
  assert.deepEqual(c.lookupRange('d/b', 'd/'), { value: v('B'), version: 7 }, 'our commit is in the range, at its index')
  c.beginWrite(['d/a'])
  c.endWrite(['d/a'], { values: [undefined], leaseMs: 1000, sentAt: now, index: 8 })
  assert.deepEqual(c.lookupRange('d/a', 'd/'), { value: undefined, version: 0 }, 'a delete of ours makes the key absent in the range')
  c.beginWrite(['d/c'])
  c.beginWrite(['d/e'])
  assert.equal(c.lookupRange('d/c', 'd/'), null, 'two commits of ours into one range on their way: the range is dropped')
  c.endWrite(['d/c'], { values: [v('C')], leaseMs: 1000, sentAt: now, index: 9 })
  c.endWrite(['d/e'], { values: [v('E')], leaseMs: 1000, sentAt: now, index: 10 })
  rr = c.beginRangeRead('d/', 'd0')
  c.endRangeRead(rr, [], 1000)
  c.beginWrite(['d/f'])
  c.endWrite(['d/f'])
  assert.equal(c.lookupRange('d/f', 'd/'), null, 'a commit of ours that failed or is unknown drops the range')
  rr = c.beginRangeRead('d/', 'd0')
  c.revoke(['d/g'])
  c.endRangeRead(rr, [], 1000)
  assert.equal(c.lookupRange('d/g', 'd/'), null, 'a revoke overtook the scan: not kept')
  rr = c.beginRangeRead('d/', 'd0')
  c.beginWrite(['d/h'])
  c.endRangeRead(rr, [], 1000)
  c.endWrite(['d/h'], { values: [v('H')], leaseMs: 1000, sentAt: now, index: 11 })
  assert.equal(c.lookupRange('d/q', 'd/'), null, 'our own commit overtook the scan: not kept')
  rr = c.beginRangeRead('d/', 'd0')
  c.endRangeRead(rr, [], 1000)
  c.revoke(['d/zz'])
  assert.equal(c.lookupRange('d/a', 'd/'), null, 'a revoke of any key in the range drops all of it')
  rr = c.beginRangeRead('d/', 'd0')
  c.endRangeRead(rr, [], 1000)
  now += 1000
  assert.equal(c.lookupRange('d/a', 'd/'), null, 'and it ends before the leader\'s lease')
  rr = c.beginRangeRead('d/', 'd0')
  c.endRangeRead(rr, [], 0)
  assert.equal(c.rangeWanted('d/'), false, 'no lease granted: not scanned again for a while')
  now += 1_001
  assert.equal(c.rangeWanted('d/'), true)
})

test('leases: a seeded run with range leases: no read, of a present or an absent key, is older than a write that returned before it began', async () => {
  const seed = testSeed()
  const r = rng(seed)
  const clock = new SimClock()
  const table = new LeaseTable(clock, 200)
  const LO = 'd/'
  const HI = 'd0'
  const keysAll = ['d/a', 'd/b', 'd/c', 'd/e']
  /** The store: key -> its value's version (absent: no entry). */
  const store = new Map<string, number>()
  /** Every write that was applied, per key: version and whether it deleted. */
  const history = new Map<string, { v: number; del: boolean }[]>()
  const completed = new Map<string, number>()
  const delay = () => clock.sleep(1 + Math.floor(r() * 20))
  let version = 0
  let rangeHits = 0
  class Client extends SimClient {
    /** The version read (0: absent). */
    async read(key: string): Promise<number> {
      const hit = this.cache.lookup(key)
      if (hit) return hit.value ? hit.value.readUInt32BE() : 0
      const held = this.cache.lookupRange(key, LO)
      if (held !== null && held !== 'busy') {
        rangeHits++
        return held.value ? held.value.readUInt32BE() : 0
      }
      if (held === null && this.cache.rangeWanted(LO) && r() < 0.7) {
        const rr = this.cache.beginRangeRead(LO, HI)
        await delay()
        const ms = table.grantRange(this, Buffer.from(LO), Buffer.from(HI), 200)
        await delay() // the read barrier and the scan
        const present = [...store].filter(([kk]) => kk >= LO && kk < HI).map(([kk, vv]) => ({ key: kk, value: u32(vv) }))
        await delay()
        this.cache.endRangeRead(rr, present, ms)
        return present.find((e) => e.key === key)?.value.readUInt32BE() ?? 0
      }
      const lr = this.cache.beginRead([key])
      await delay()
      const ms = table.grant(this, [Buffer.from(key)], 200)
      await delay()
      const got = store.get(key) ?? 0
      await delay()
      this.cache.endRead(lr, [{ key, value: got ? u32(got) : undefined }], ms)
      return got
    }
    async write(key: string, del: boolean): Promise<void> {
      this.cache.beginWrite([key])
      const sentAt = clock.t
      await delay()
      const done = await table.beginWrite(this, [Buffer.from(key)])
      await delay()
      const v = ++version
      if (del) store.delete(key)
      else store.set(key, v)
      let h = history.get(key)
      if (!h) history.set(key, (h = []))
      h.push({ v, del })
      done()
      // Half the commits come back without a lease on what they wrote (as from a node that
      // grants none), so the range alone must be right about our own writes.
      const ms = r() < 0.5 ? table.grant(this, [Buffer.from(key)], 200) : 0
      await delay()
      if (r() < 0.05) this.cache.endWrite([key]) // the answer was lost: outcome unknown
      else this.cache.endWrite([key], { values: [del ? undefined : u32(v)], leaseMs: ms, sentAt, index: v })
      completed.set(key, Math.max(completed.get(key) ?? 0, v))
    }
  }
  const clients = [0, 1, 2].map(() => new Client(new LeaseCache(() => clock.t, 16_384, 8 * 1024 * 1024, 50), table, delay))
  await clock.advance(200)
  let reads = 0
  let absent = 0
  const hits0 = () => clients.reduce((n, c) => n + c.cache.hits, 0)
  const ops: Promise<void>[] = []
  for (let step = 0; step < 20_000; step++) {
    const key = keysAll[Math.floor(r() * keysAll.length)]!
    // Writes come mostly from one client (one host creating in its directory), now and then
    // from the others; reads from all three.
    const writing = r() < 0.03
    const c = writing && r() < 0.7 ? clients[0]! : clients[Math.floor(r() * clients.length)]!
    if (writing) {
      ops.push(c.write(key, r() < 0.4))
    } else {
      const floor = completed.get(key) ?? 0
      ops.push(
        c.read(key).then((got) => {
          reads++
          if (got === 0) {
            absent++
            // Absent is right only if nothing was written before the read began, or a delete
            // at or after the last write that had returned.
            const ok = floor === 0 || (history.get(key) ?? []).some((w) => w.v >= floor && w.del)
            assert.ok(ok, `read of ${key} found it absent, though version ${floor} had been written and returned before the read began, and no delete came after it (POLYFS_SEED=${seed})`)
          } else assert.ok(got >= floor, `read of ${key} returned version ${got}, older than ${floor} which had returned before it began (POLYFS_SEED=${seed})`)
        }),
      )
    }
    // Now and then a client stops answering revokes (every write then waits out its leases,
    // and no range is granted meanwhile), or comes back.
    if (r() < 0.002) clients[Math.floor(r() * clients.length)]!.up = r() < 0.5
    await clock.advance(Math.floor(r() * 5))
  }
  await clock.advance(10_000)
  await Promise.all(ops)
  assert.ok(reads > 10_000 && absent > 500 && rangeHits > 1000, `reads ${reads}, absent ${absent}, from a lease ${hits0()}, from a range ${rangeHits}`)
})

test('leases: file data blocks are never leased; a write marks and revokes only its other keys', async () => {
  // The key rule itself: a BLOCK key, and ranges that could hold one.
  const block = keys.block(7, 3)
  const inode = keys.inode(7)
  const dir = keys.dentryRange(1)
  assert.equal(isBlockKey(block), true)
  for (const other of [inode, keys.dirSelf(1), keys.dentry(1, Buffer.from('f')), keys.meta('format'), Buffer.from('short')]) assert.equal(isBlockKey(other), false)
  assert.equal(rangeMayHoldBlocks(dir.start, dir.end), false)
  assert.equal(rangeMayHoldBlocks(keys.dentryRange(0xff).start, keys.dentryRange(0xff).end), false) // the carry stops in the inode number
  assert.equal(rangeMayHoldBlocks(block, Buffer.concat([block, Buffer.from([0])])), true)
  assert.equal(rangeMayHoldBlocks(Buffer.alloc(9), Buffer.alloc(9, 0xff)), true) // spans every kind
  assert.equal(rangeMayHoldBlocks(k('d/'), k('d0')), true) // too short to name a kind

  const clock = new SimClock()
  const table = new LeaseTable(clock, 1000, { key: isBlockKey, range: rangeMayHoldBlocks })
  await clock.advance(1000)
  const raw: { id: number; keys: Buffer[] }[] = []
  const a: LeaseHolder = { alive: () => true, revoke: (id, ks) => void raw.push({ id, keys: ks }) }
  const b = new Holder()
  // A read naming a block is granted nothing, nor is a range that could hold one.
  assert.equal(table.grant(a, [block], 500), 0)
  assert.equal(table.grant(a, [inode, block], 500), 0)
  assert.equal(table.grantRange(a, Buffer.alloc(9), Buffer.alloc(9, 0xff), 500), 0)
  assert.equal(table.leasedKeys, 0)
  assert.equal(table.leasedRanges, 0)
  // A directory's entries and an inode are leased as before.
  assert.equal(table.grantRange(a, dir.start, dir.end, 500), 500)
  assert.equal(table.grant(a, [inode], 500), 500)
  // A write of blocks only: nothing marked, so a grant on other keys goes on meanwhile.
  const blocksOnly = await table.beginWrite(b, [block, keys.block(7, 4)])
  assert.equal(table.grant(b, [keys.inode(8)], 500), 500)
  blocksOnly()
  assert.equal(raw.length, 0)
  // A write of a block and the inode: the inode is revoked (and marked), the block is not named.
  let proposed = false
  const w = table.beginWrite(b, [block, inode]).then((done) => ((proposed = true), done))
  await settle()
  assert.equal(proposed, false)
  assert.deepEqual(raw.map((x) => x.keys), [[inode]])
  assert.equal(table.grant(a, [inode], 500), 0) // marked
  table.release(a, raw[0]!.id)
  ;(await w)()
  assert.equal(proposed, true)
})
