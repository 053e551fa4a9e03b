// Joining and bootstrap with real processes on loopback: the master group grows 1, 3, 5 as
// nodes join, regions grow to 3 replicas, and nodes started at the same instant form ONE
// cluster (repeated), a restarted node rejoins its own cluster.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { openSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { test } from 'node:test'
import { SECRET, dumpLogs, startCluster } from '../helpers/cluster'
import { POLYFS, waitFor } from '../helpers/mount'

function identity(dir: string): { clusterId: string; nodeId: number } | null {
  try {
    return JSON.parse(readFileSync(path.join(dir, 'identity.json'), 'utf8'))
  } catch {
    return null
  }
}

test('cluster: the master group grows 1, 3, 5 as nodes join; the region reaches 3 replicas', async (t) => {
  const c = startCluster(t)
  try {
    c.addNode().start()
    let m = await c.waitMap((m) => (m.nodes ?? []).length === 1 && (m.master?.voters ?? []).length === 1, 20_000, 'one node, one master')
    assert.equal(m.regions?.length, 1)
    c.addNode().start()
    c.addNode().start()
    m = await c.waitMap((m) => (m.nodes ?? []).length === 3 && (m.master?.voters ?? []).length === 3 && (m.master?.learners ?? []).length === 0, 30_000, 'three nodes, three masters')
    await c.waitMap((m) => (m.regions?.[0]?.voters ?? []).length === 3, 30_000, 'region with 3 voters')
    c.addNode().start()
    m = await c.waitMap((m) => (m.nodes ?? []).length === 4, 30_000, 'four nodes')
    assert.equal((m.master?.voters ?? []).length, 3, 'four nodes keep three masters')
    c.addNode().start()
    m = await c.waitMap((m) => (m.nodes ?? []).length === 5 && (m.master?.voters ?? []).length === 5 && (m.master?.learners ?? []).length === 0, 40_000, 'five masters')
    // Still 3 replicas per region with 5 nodes (data_replicas = 3).
    assert.equal((m.regions?.[0]?.voters ?? []).length, 3)
    const ids = new Set((m.nodes ?? []).map((n) => n.nodeId))
    assert.equal(ids.size, 5)
  } catch (err) {
    console.error(dumpLogs(c))
    throw err
  }
})

test('cluster: a restarted node keeps its id and rejoins its own cluster', async (t) => {
  const c = startCluster(t)
  const a = c.addNode()
  const b = c.addNode()
  a.start()
  await c.waitMap((m) => (m.nodes ?? []).length === 1, 20_000, 'first node')
  b.start()
  await c.waitMap((m) => (m.nodes ?? []).length === 2, 20_000, 'second node')
  // The master records the node before the node has written its identity: wait for the file.
  await waitFor(() => !!identity(path.join(c.root, 'node-2'))?.nodeId, 10_000, 'node 2 to write its identity')
  const before = identity(path.join(c.root, 'node-2'))
  assert.ok(before?.nodeId)
  await b.stop()
  b.start()
  const m = await c.waitMap((m) => (m.nodes ?? []).length === 2 && (m.nodes ?? []).every((n) => n.state === 'NODE_UP' && Date.now() - n.lastHeartbeatMs < 3000), 20_000, 'both up again')
  assert.equal((m.nodes ?? []).length, 2, 'no new node id was made')
  const now = identity(path.join(c.root, 'node-2'))
  assert.equal(now?.clusterId, before.clusterId)
  assert.equal(now?.nodeId, before.nodeId)
})

const ROUNDS = Number(process.env.POLYFS_JOIN_ROUNDS ?? 20)

test(`cluster: five nodes started at the same instant form one cluster (${ROUNDS} rounds)`, async (t) => {
  for (let round = 1; round <= ROUNDS; round++) {
    await t.test(`round ${round}`, async (tt) => {
      const c = startCluster(tt)
      const nodes = Array.from({ length: 5 }, () => c.addNode())
      for (const n of nodes) n.start()
      const dirs = nodes.map((_, i) => path.join(c.root, `node-${i + 1}`))
      try {
        await waitFor(() => dirs.every((d) => !!identity(d)?.clusterId), 30_000, 'all five nodes in a cluster')
      } catch (err) {
        console.error(dumpLogs(c, 20))
        throw err
      }
      const clusters = new Set(dirs.map((d) => identity(d)?.clusterId))
      assert.equal(clusters.size, 1, `round ${round}: nodes ended in ${clusters.size} clusters`)
      const ids = new Set(dirs.map((d) => identity(d)?.nodeId))
      assert.equal(ids.size, 5, `round ${round}: node ids must be distinct`)
    })
  }
})

test('cluster: a node of one cluster pointed at another cluster\'s waypoints never joins it', async (t) => {
  const a = startCluster(t)
  const b = startCluster(t)
  const na = a.addNode()
  na.start()
  await a.waitMap((m) => (m.nodes ?? []).length === 1, 20_000, 'cluster A')
  b.addNode().start()
  await b.waitMap((m) => (m.nodes ?? []).length === 1, 20_000, 'cluster B')
  const before = identity(path.join(a.root, 'node-1'))
  await na.stop()
  // Restart A's node with B's waypoint.
  const proc = spawnNode(a.root, na.address, b.waypoints[0]!.address)
  t.after(() => {
    proc.kill('SIGKILL')
  })
  await waitFor(() => /serves another cluster/.test(readFileSync(path.join(a.root, 'node-1-again.log'), 'utf8')), 20_000, 'the node to refuse the other cluster')
  const m = await b.map()
  assert.equal((m?.nodes ?? []).length, 1, 'cluster B did not gain a node')
  assert.deepEqual(identity(path.join(a.root, 'node-1'))?.clusterId, before?.clusterId)
})

function spawnNode(root: string, address: string, waypoint: string) {
  const out = openSync(path.join(root, 'node-1-again.log'), 'a')
  return spawn(process.execPath, [POLYFS, 'node', '--data', path.join(root, 'node-1'), '--listen', address, '--waypoints', waypoint, '--log-level', 'info'], { stdio: ['ignore', out, out], env: { ...process.env, POLYFS_SECRET: SECRET } })
}
