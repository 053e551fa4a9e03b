// A network partition with real processes on loopback: every node-to-node and mount-to-node
// link goes through a fault proxy (helpers/faultproxy.ts). The region leader is cut off from
// the other two nodes together with one client mount; that side must not commit, nor answer a
// read once its leader's lease is over (a read of a file the majority has since overwritten
// would be stale), the majority side must elect a leader and commit, and after healing every
// node must converge and every acknowledged write must be readable.
import assert from 'node:assert/strict'
import path from 'node:path'
import { test } from 'node:test'
import type { GetClusterMapResponse } from '../../src/rpc'
import { dumpLogs, startCluster, type Cluster } from '../helpers/cluster'
import { startMesh } from '../helpers/faultproxy'
import { waitFor } from '../helpers/mount'
import { pyChildren, type PyResult } from '../helpers/pychild'

const NODES = 3
const REGION = 1
const MASTER_GROUP = 0
const EIO = 5
/** How long the cut-off side's write is watched: far past an election timeout (1-2 s) and a
 * read index timeout (3 s), well inside the client's 30 s retry window, so "not done" means
 * blocked. */
const MINORITY_WATCH_MS = 8_000
/** How long a read through the cut-off side is watched. It starts many seconds after the
 * partition: the old leader's lease (under 1 s, docs/raft.md "Lease reads") is long over, so a
 * read answered in this window was served without a quorum. */
const MINORITY_READ_WATCH_MS = 4_000
const BEFORE_1_V2 = 'before-1, overwritten on the majority\n'
/** The majority side's write: an election, plus one 10 s kv deadline the client may spend on
 * the old leader it cached before it tries the others (src/kv/remote.ts). */
const MAJORITY_WRITE_MS = 15_000
const HEAL_CONVERGE_MS = 30_000
/** The write started on the minority: the client gives up 30 s after an op starts, plus one
 * kv deadline in flight (10 s); healing usually lets it finish much sooner. */
const PENDING_SETTLE_MS = 50_000

function healthy(m: GetClusterMapResponse): boolean {
  const nodes = m.nodes ?? []
  const r = m.regions?.[0]
  return (
    nodes.length === NODES &&
    nodes.every((n) => n.state === 'NODE_UP') &&
    (m.master?.voters ?? []).length === NODES &&
    (m.master?.learners ?? []).length === 0 &&
    (r?.voters ?? []).length === NODES &&
    (r?.learners ?? []).length === 0 &&
    !!r?.leader
  )
}

/** The index of the process (c.nodes[i]) that has node id `id` in the map. */
function processOf(c: Cluster, m: GetClusterMapResponse, id: number): number {
  const address = (m.nodes ?? []).find((n) => n.nodeId === id)?.address
  const i = c.nodes.findIndex((p) => p.address === address)
  assert.ok(i >= 0, `node id ${id} (${address}) is none of the started processes`)
  return i
}

interface GroupView {
  leader: number
  term: number
  commit: number
  applied: number
  role: string
}

/** Every node's view of one group, asked directly (not through the proxies). */
async function views(c: Cluster, group: number): Promise<(GroupView | null)[]> {
  return Promise.all(
    c.nodes.map(async (p) => {
      try {
        const s = await c.clients.admin(p.address).status({}, { timeoutMs: 1000 })
        const g = s.groups.find((x) => x.regionId === group)
        return g ? { leader: g.leader, term: g.term, commit: g.commitIndex, applied: g.appliedIndex, role: g.role } : null
      } catch {
        return null
      }
    }),
  )
}

function agreed(vs: (GroupView | null)[]): boolean {
  const [first] = vs
  if (!first || !first.leader) return false
  return vs.every((v) => !!v && v.leader === first.leader && v.term === first.term && v.applied === first.applied && v.commit === first.commit)
}

function describe(r: PyResult | null): string {
  return r ? JSON.stringify(r) : 'still pending'
}

test('cluster: a partitioned region leader neither commits nor serves stale reads; the majority commits; healing converges', { timeout: 180_000 }, async (t) => {
  // Registered before the cluster: blocked children are killed before their mounts go away.
  const py = pyChildren(t)
  const c = startCluster(t, { nodeArgs: ['--down-after', '3'] })
  const mesh = await startMesh(t, c, NODES)
  const t0 = Date.now()
  const note = (what: string) => t.diagnostic(`${((Date.now() - t0) / 1000).toFixed(1)} s: ${what}`)
  try {
    for (let i = 0; i < NODES; i++) c.addNode([], mesh.nodeEnv(i)).start()
    let m = await c.waitMap(healthy, 45_000, 'three nodes up, three masters, a region of three voters with a leader')
    note('cluster healthy')

    // Mount A will be cut off with the region leader; mount B stays with the majority.
    const a = await mesh.addClient()
    const b = await mesh.addClient()
    const ma = await c.mount([], a.env)
    const mb = await c.mount([], b.env)
    note('mounts up')
    const before = ['before-1', 'before-2', 'before-3']
    for (const f of before) {
      const r = await py.write(path.join(ma.mnt, f), `${f}\n`, 30_000).done
      assert.ok(r.ok, `write ${f} before the partition: ${describe(r)}`)
    }
    m = await c.waitMap(healthy, 10_000, 'still healthy after the first writes')
    const regionLeader = m.regions?.[0]?.leader as number
    const masterLeader = m.master?.leader?.nodeId as number
    const iso = processOf(c, m, regionLeader)
    const rest = [...Array(NODES).keys()].filter((i) => i !== iso)
    const isoId = regionLeader
    note(`written; region leader ${regionLeader} (node-${iso + 1}), master leader ${masterLeader}; partitioning`)

    mesh.partition([iso, a.index], [...rest, b.index])
    const partitionedAt = Date.now()
    const minorityPath = path.join(ma.mnt, 'minority')
    const pending = py.write(minorityPath, 'written on the minority\n', PENDING_SETTLE_MS + 10_000)
    const w = await pending.within(MINORITY_WATCH_MS)
    assert.ok(!w?.ok, `a write through the minority was acknowledged while partitioned: ${describe(w)}`)
    note(`minority write after ${MINORITY_WATCH_MS} ms: ${describe(w)}`)
    // Check-quorum: the cut-off leader no longer believes it leads.
    const isoViews = (await views(c, REGION))[iso]
    assert.ok(isoViews && isoViews.role !== 'leader', `the isolated node still leads the region (or did not answer): ${JSON.stringify(isoViews)}`)

    const majority = await py.write(path.join(mb.mnt, 'majority'), 'written on the majority\n', 60_000).within(MAJORITY_WRITE_MS)
    assert.ok(majority?.ok, `the majority did not commit a write within ${MAJORITY_WRITE_MS} ms: ${describe(majority)}`)
    note(`majority write took ${majority.ms} ms`)
    // The majority overwrites a file the minority side has read before: from its acknowledgement
    // on, an answer with the old content through the minority would be a stale read.
    const overwrite = await py.write(path.join(mb.mnt, 'before-1'), BEFORE_1_V2, 60_000).within(MAJORITY_WRITE_MS)
    assert.ok(overwrite?.ok, `the majority did not commit an overwrite within ${MAJORITY_WRITE_MS} ms: ${describe(overwrite)}`)
    note(`majority overwrite took ${overwrite.ms} ms`)
    m = await c.waitMap(
      (m) => {
        const r = m.regions?.[0]
        const ids = rest.map((i) => (m.nodes ?? []).find((n) => n.address === c.nodes[i]?.address)?.nodeId)
        return !!r?.leader && ids.includes(r.leader) && ids.includes(m.master?.leader?.nodeId) && (m.nodes ?? []).find((n) => n.nodeId === isoId)?.state === 'NODE_DOWN'
      },
      15_000,
      'the majority leads region and master and shows the isolated node down',
    )
    note(`majority: region leader ${m.regions?.[0]?.leader}, master leader ${m.master?.leader?.nodeId}, node ${isoId} down`)

    // Long after any lease the cut-off leader held, the minority must not answer a read: not
    // the old content (stale), and not at all (it cannot know the new one without a quorum).
    const read = py.read(path.join(ma.mnt, 'before-1'), PENDING_SETTLE_MS + 10_000)
    const r = await read.within(MINORITY_READ_WATCH_MS)
    assert.ok(!r?.ok, `a read through the minority was answered after the majority overwrote the file: ${describe(r)}`)
    note(`minority read after ${MINORITY_READ_WATCH_MS} ms: ${describe(r)}`)
    assert.ok(!pending.result()?.ok, `a write through the minority was acknowledged while partitioned: ${describe(pending.result())}`)

    mesh.heal()
    const healedAt = Date.now()
    note(`healed after ${healedAt - partitionedAt} ms of partition`)
    await c.waitMap(healthy, HEAL_CONVERGE_MS, 'every node up again after healing')
    note('map healthy again')

    const settled = await pending.within(Math.max(0, partitionedAt + PENDING_SETTLE_MS - Date.now()))
    assert.ok(settled, `the write started on the minority neither finished nor failed ${PENDING_SETTLE_MS} ms after it started`)
    if (!settled.ok) assert.equal(settled.errno, EIO, `the minority write failed, but not cleanly with EIO: ${describe(settled)}`)
    note(`minority write settled after ${settled.ms} ms: ${describe(settled)}`)
    const readAfter = await read.within(Math.max(0, healedAt + HEAL_CONVERGE_MS - Date.now()))
    assert.ok(readAfter, 'the read started on the minority never settled')
    // It started after the overwrite was acknowledged: only the new content is linearizable.
    if (readAfter.ok) assert.equal(readAfter.data, BEFORE_1_V2, 'the read started on the minority returned stale data')
    else assert.equal(readAfter.errno, EIO, `the minority read failed, but not cleanly with EIO: ${describe(readAfter)}`)

    // Every node, the formerly isolated one included, ends with the same log applied.
    let last: unknown = null
    await waitFor(
      async () => {
        const [region, master] = await Promise.all([views(c, REGION), views(c, MASTER_GROUP)])
        last = { region, master }
        return agreed(region) && agreed(master)
      },
      Math.max(0, healedAt + HEAL_CONVERGE_MS - Date.now()),
      'every node to agree on the leader, term, commit and applied index of the region and master group',
    ).catch((err: Error) => {
      throw new Error(`${err.message}; last views: ${JSON.stringify(last)}`)
    })
    note(`converged ${Date.now() - healedAt} ms after healing`)

    // Everything acknowledged is there: through a fresh mount and through the formerly cut-off one.
    const fresh = await c.mount()
    const expected = new Map<string, string>(before.map((f) => [f, `${f}\n`]))
    expected.set('before-1', BEFORE_1_V2)
    expected.set('majority', 'written on the majority\n')
    if (settled.ok) expected.set('minority', 'written on the minority\n')
    for (const mnt of [fresh.mnt, ma.mnt]) {
      for (const [f, data] of expected) {
        const got = await py.read(path.join(mnt, f), 30_000).done
        assert.ok(got.ok, `read ${f} through ${mnt} after healing: ${describe(got)}`)
        assert.equal(got.data, data, `${f} through ${mnt}`)
      }
    }
    note('every acknowledged write read back')
  } catch (err) {
    mesh.heal()
    console.error(`cluster dir: ${c.root}\n${dumpLogs(c, 60)}`)
    throw err
  }
})
