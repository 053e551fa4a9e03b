// src/observe without a cluster: the cluster picture's health rules, the event ring's bound,
// task progress (rate, ETA, finishing), and the text forms the CLI prints.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { buildPicture, EventLog, MAX_EVENTS, TaskList, formatAmount, formatProgress } from '../../src/observe'
import type { GetClusterMapResponse, NodeStatusResponse } from '../../src/rpc'

function map(states: Record<number, string>, regionVoters: number[][], learners: number[][] = []): GetClusterMapResponse {
  return {
    clusterId: 'c1',
    mapVersion: 9,
    master: { leader: { nodeId: 1, address: '127.0.0.11:1' }, term: 3, voters: [1, 2, 3], learners: [] },
    nodes: Object.entries(states).map(([id, state]) => ({ nodeId: Number(id), address: `127.0.0.1${id}:1`, state: state as 'NODE_UP', capacityBytes: 100, freeBytes: 40, lastHeartbeatMs: 1, joinedMs: 1, rssBytes: 5 })),
    regions: regionVoters.map((voters, i) => ({ id: i + 1, startKey: Buffer.alloc(0), endKey: Buffer.alloc(0), epoch: { confVer: 1, version: 1 }, voters, learners: learners[i] ?? [], leader: voters[0] ?? 0 })),
    settings: { dataReplicas: 3, maxMasters: 5, memberReplaceAfterMs: 1, downAfterMs: 3000 },
  }
}

function status(id: number, kvOps: number[] = [], kvLatencyMs: number[] = []): NodeStatusResponse {
  return {
    clusterId: 'c1',
    nodeId: id,
    address: `127.0.0.1${id}:1`,
    rssBytes: 7,
    uptimeMs: 1,
    groups: [{ regionId: 1, role: id === 1 ? 'leader' : 'follower', leader: 1, term: 3, commitIndex: 5, appliedIndex: 5, voters: [1, 2, 3], learners: [], sizeBytes: 1000 * id, logEntries: 5 }],
    version: '0.1.0',
    cpuCores: 0.5,
    loopLagMs: 1,
    events: [{ atMs: 10 + id, kind: 'k', nodeId: id, subjectNode: 0, regionId: 0, message: `from ${id}`, level: 'info' }],
    tasks: [],
    seriesStepMs: 1000,
    kvOps,
    kvLatencyMs,
    fuseOps: [],
    httpAddress: '',
    capacityBytes: 200,
    freeBytes: 50,
  }
}

test('picture: a healthy cluster has no problems; events of all nodes merge in time order', () => {
  const p = buildPicture(map({ 1: 'NODE_UP', 2: 'NODE_UP', 3: 'NODE_UP' }, [[1, 2, 3]]), new Map([1, 2, 3].map((i) => [i, status(i)])))
  assert.equal(p.healthy, true)
  assert.deepEqual(p.problems, [])
  assert.deepEqual(p.nodes.map((n) => n.health), ['up', 'up', 'up'])
  assert.deepEqual(p.nodes[0]?.roles, ['master-leader', 'data'])
  assert.equal(p.nodes[0]?.capacityBytes, 200, "the node's own statfs wins over the heartbeat's")
  assert.equal(p.regions[0]?.health, 'ok')
  assert.equal(p.regions[0]?.sizeBytes, 3000, 'the largest replica')
  assert.deepEqual(p.events.map((e) => e.message), ['from 1', 'from 2', 'from 3'])
})

test('picture: a node that does not answer is unreachable at once and its regions under-replicated', () => {
  const p = buildPicture(map({ 1: 'NODE_UP', 2: 'NODE_UP', 3: 'NODE_UP' }, [[1, 2, 3]]), new Map<number, NodeStatusResponse | { error: string }>([[1, status(1)], [2, status(2)], [3, { error: 'connect ECONNREFUSED' }]]))
  assert.equal(p.nodes[2]?.health, 'unreachable')
  assert.equal(p.nodes[2]?.error, 'connect ECONNREFUSED')
  assert.equal(p.regions[0]?.health, 'under-replicated')
  assert.match(p.regions[0]?.why ?? '', /node 3/)
  assert.equal(p.regions[0]?.replicas.find((r) => r.nodeId === 3)?.live, false)
  assert.equal(p.healthy, false)
  assert.equal(p.problems.length, 2, p.problems.join('; '))
})

test('picture: down nodes, lost quorum, and too few voters', () => {
  const down = buildPicture(map({ 1: 'NODE_UP', 2: 'NODE_DOWN', 3: 'NODE_DOWN' }, [[1, 2, 3]]), new Map([[1, status(1)]]))
  assert.equal(down.regions[0]?.health, 'unavailable')
  assert.match(down.regions[0]?.why ?? '', /1 of 3 voters live, 2 needed/)
  const few = buildPicture(map({ 1: 'NODE_UP', 2: 'NODE_UP', 3: 'NODE_UP' }, [[1, 2]], [[3]]), new Map([1, 2, 3].map((i) => [i, status(i)])))
  assert.equal(few.regions[0]?.health, 'under-replicated')
  assert.match(few.regions[0]?.why ?? '', /2 voters, 3 wanted, 1 catching up/)
  assert.equal(few.regions[0]?.replicas.find((r) => r.nodeId === 3)?.role, 'learner')
  const removed = buildPicture(map({ 1: 'NODE_UP', 2: 'NODE_UP', 3: 'NODE_REMOVED' }, [[1, 2]]), new Map([1, 2].map((i) => [i, status(i)])))
  assert.equal(removed.regions[0]?.health, 'ok', 'a removed node does not count toward the replicas wanted')
})

test('picture: cluster series are sums aligned at the newest point, latency weighted by ops', () => {
  const p = buildPicture(map({ 1: 'NODE_UP', 2: 'NODE_UP' }, [[1, 2]]), new Map([[1, status(1, [10, 30], [1, 2])], [2, status(2, [10], [4])]]))
  assert.deepEqual(p.totals.kvOps, [10, 40])
  assert.deepEqual(p.totals.kvLatencyMs, [1, 2.5])
})

test('events: the ring keeps the last MAX_EVENTS, oldest first, stamped with the node id', () => {
  const log = new EventLog()
  log.nodeId = 4
  for (let i = 0; i < MAX_EVENTS + 10; i++) log.record({ kind: 'test', message: `e${i}` })
  const all = log.recent()
  assert.equal(all.length, MAX_EVENTS)
  assert.equal(all[0]?.message, 'e10')
  assert.equal(all.at(-1)?.message, `e${MAX_EVENTS + 9}`)
  assert.equal(all[0]?.nodeId, 4)
  assert.equal(all[0]?.level, 'info')
  assert.deepEqual(log.recent(2).map((e) => e.message), [`e${MAX_EVENTS + 8}`, `e${MAX_EVENTS + 9}`])
})

test('tasks: rate, ETA and finishing; a running id is reused, a finished one starts over', async () => {
  const list = new TaskList()
  const t = list.start({ id: 'a', kind: 're-replication', label: 'x', unit: 'entries', total: 1000 })
  assert.equal(list.start({ id: 'a', kind: 're-replication', label: 'x' }), t)
  // The first update sets the rate to what was done over the time since the start (however
  // long the timer took on a loaded machine): bounded by the elapsed time measured here.
  await new Promise((r) => setTimeout(r, 100))
  t.update(100)
  const elapsedMs = Date.now() - t.startedMs
  assert.ok(t.rate > 0 && t.rate >= (100 * 1000) / (elapsedMs + 1) && t.rate <= (100 * 1000) / 99, `rate ${t.rate} after ${elapsedMs} ms`)
  assert.ok(t.etaMs() > 0, 'an ETA while running')
  const w = list.list()[0]
  assert.ok(w && w.done === 100 && w.total === 1000 && w.finishedMs === 0)
  assert.match(formatProgress(w), /^10% \d+ entries\/s ETA \d+:\d\d$/)
  t.finish()
  assert.equal(t.done, 1000)
  assert.equal(t.etaMs(), 0)
  assert.match(formatProgress(list.list()[0] as never), /done$/)
  assert.equal(list.get('a'), undefined, 'a finished task is not running')
  assert.notEqual(list.start({ id: 'a', kind: 'k', label: 'again' }), t)
})

test('formatAmount: bytes in binary units, other units as counts', () => {
  assert.equal(formatAmount(512, 'bytes'), '512 B')
  assert.equal(formatAmount(1536, 'bytes'), '1.5 KiB')
  assert.equal(formatAmount(3 * 2 ** 30, 'bytes'), '3.0 GiB')
  assert.equal(formatAmount(41.6, 'entries'), '42 entries')
})

test('http: a port in use is a clear error, not a crash later', async () => {
  const { startHttp } = await import('../../src/http')
  const { logger } = await import('../../src/util/log')
  const o = { listen: '127.0.0.1:0', logger: logger('test'), health: () => ({}), ready: () => ({}) }
  const a = await startHttp(o)
  try {
    await assert.rejects(startHttp({ ...o, listen: a.address }), new RegExp(`cannot serve HTTP on ${a.address.replace(/[.]/g, '\\.')}: listen EADDRINUSE`))
    const res = await fetch(`http://${a.address}/healthz`)
    assert.equal(res.status, 200)
    assert.equal((await fetch(`http://${a.address}/nope`)).status, 404)
  } finally {
    await a.close()
  }
})
