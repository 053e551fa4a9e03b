// `polyfs status`'s text form without a cluster: a hand-built Picture (buildPicture on a map and
// the nodes' answers) rendered with colour off (no ANSI escapes at all) and on, the text bar,
// and the colour decision (a terminal, NO_COLOR unset).
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { bar, render, wantColor } from '../../src/cli/status'
import { buildPicture } from '../../src/observe'
import type { GetClusterMapResponse, NodeStatusResponse } from '../../src/rpc'

const NOW = 1_700_000_000_000
const GiB = 2 ** 30

function map(): GetClusterMapResponse {
  return {
    clusterId: 'c-render',
    mapVersion: 12,
    master: { leader: { nodeId: 1, address: '127.0.0.11:7701' }, term: 4, voters: [1, 2, 3], learners: [] },
    nodes: [1, 2, 3].map((id) => ({ nodeId: id, address: `127.0.0.1${id}:770${id}`, state: id === 3 ? 'NODE_DOWN' : 'NODE_UP', capacityBytes: 100 * GiB, freeBytes: 48 * GiB, lastHeartbeatMs: NOW - (id === 3 ? 12_000 : 800), joinedMs: 1, rssBytes: 90 * 2 ** 20 })),
    regions: [
      { id: 1, startKey: Buffer.alloc(0), endKey: Buffer.from([0x80]), epoch: { confVer: 6, version: 2 }, voters: [1, 2, 3], learners: [], leader: 1 },
      { id: 2, startKey: Buffer.from([0x80]), endKey: Buffer.alloc(0), epoch: { confVer: 3, version: 2 }, voters: [1, 2], learners: [], leader: 2 },
    ],
    settings: { dataReplicas: 3, maxMasters: 5, memberReplaceAfterMs: 1_800_000, downAfterMs: 3000 },
  }
}

function status(id: number): NodeStatusResponse {
  return {
    clusterId: 'c-render',
    nodeId: id,
    address: `127.0.0.1${id}:770${id}`,
    rssBytes: 120 * 2 ** 20,
    uptimeMs: 3_725_000,
    groups: [
      { regionId: 0, role: id === 1 ? 'leader' : 'follower', leader: 1, term: 4, commitIndex: 9, appliedIndex: 9, voters: [1, 2, 3], learners: [], sizeBytes: 0, logEntries: 9 },
      { regionId: 1, role: id === 1 ? 'leader' : 'follower', leader: 1, term: 4, commitIndex: 30, appliedIndex: 30, voters: [1, 2, 3], learners: [], sizeBytes: 5 * 2 ** 20, logEntries: 30 },
      { regionId: 2, role: id === 2 ? 'leader' : 'follower', leader: 2, term: 2, commitIndex: 7, appliedIndex: 7, voters: [1, 2], learners: [], sizeBytes: 2 ** 20, logEntries: 7 },
    ],
    version: '0.1.0',
    cpuCores: 0.25,
    loopLagMs: 1.5,
    events: id === 1 ? [
      { atMs: NOW - 20_000, kind: 'leader-changed', nodeId: 1, subjectNode: 1, regionId: 1, message: 'node 1 leads region 1 (term 4)', level: 'info' },
      { atMs: NOW - 5_000, kind: 'node-down', nodeId: 1, subjectNode: 3, regionId: 0, message: 'node 3 (127.0.0.13:7703) is down: no heartbeat for 3 s', level: 'warn' },
    ] : [],
    tasks: id === 2 ? [{ id: 't1', kind: 'snapshot-send', label: 'region 2: snapshot to node 4', done: 3 * 2 ** 20, total: 10 * 2 ** 20, unit: 'bytes', rate: 2 ** 20, etaMs: 7000, startedMs: NOW - 3000, finishedMs: 0, failed: false, regionId: 2, nodeId: 2 }] : [],
    seriesStepMs: 1000,
    kvOps: [10, 20],
    kvLatencyMs: [1, 2],
    fuseOps: [5, 6],
    httpAddress: '',
    capacityBytes: 100 * GiB,
    freeBytes: 48 * GiB,
  }
}

function picture() {
  return buildPicture(map(), new Map<number, NodeStatusResponse | { error: string }>([[1, status(1)], [2, status(2)], [3, { error: 'UNAVAILABLE: connect ECONNREFUSED' }]]), NOW)
}

const ESC = /\x1b\[/

test('status render: colour off has no escapes and every part of the picture', () => {
  const p = picture()
  assert.equal(p.healthy, false)
  const text = render(p, { color: false })
  assert.doesNotMatch(text, ESC)
  const lines = text.split('\n')
  assert.match(lines[0] ?? '', /^cluster c-render {2}UNHEALTHY {2}master leader node 1 \(127\.0\.0\.11:7701\), term 4, members 1,2,3$/)
  assert.match(text, /PROBLEMS\n {2}! node 3 \(127\.0\.0\.13:7703\) is down/)
  assert.match(text, /! region 1 is under-replicated: 1 of 3 voters not live \(node 3\)/)
  // The nodes table: one row per node, its address, state, roles, space bar, RSS, CPU, lag, heartbeat.
  const row = (id: number) => lines.find((l) => l.startsWith(`${id} `)) ?? ''
  assert.match(row(1), /127\.0\.0\.11:7701 +up +master-leader,data +2 \(1 led\) +48\.0 GiB\/100\.0 GiB +\[#####-----\] 52% +120 +25 +1\.5 +0\.8s ago +1h02m/)
  assert.match(row(2), /127\.0\.0\.12:7702 +up +master,data/)
  assert.match(row(3), /127\.0\.0\.13:7703 +down +master +- +48\.0 GiB\/100\.0 GiB .* 12\.0s ago/)
  // Columns line up: every node row has ADDRESS at the same offset as the header.
  const header = lines.find((l) => l.startsWith('NODE')) ?? ''
  for (const id of [1, 2, 3]) assert.equal(row(id).indexOf('127.0.0.1'), header.indexOf('ADDRESS'))
  // Regions: range, epoch, leader, replicas with role letters and the dead one marked, health + why.
  assert.match(text, /\n1 +-inf\.\.80 +6\/2 +1 +1L 2F 3F! +5\.0 MiB +under-replicated 1 of 3 voters not live \(node 3\)/)
  assert.match(text, /\n2 +80\.\.\+inf +3\/2 +2 +1F 2L +1\.0 MiB +under-replicated 2 voters, 3 wanted/)
  // Tasks with progress; events with time and level.
  assert.match(text, /TASKS\n {2}region 2: snapshot to node 4 +\[###-------\] +30% 1\.0 MiB\/s ETA 0:07 +3\.0 MiB of 10\.0 MiB +node 2, region 2/)
  assert.match(text, /EVENTS \(last 2 of 2\)\n.* info +leader-changed +node 1 leads region 1/)
  assert.match(text, /warn +node-down +node 3 \(127\.0\.0\.13:7703\) is down/)
  assert.match(text, /40 kv ops\/s \(2\.0 ms\), 12 fuse ops\/s/)
})

test('status render: colour on paints states, health and problems; stripped it is the plain text', () => {
  const p = picture()
  const text = render(p, { color: true })
  assert.match(text, /\x1b\[1;31mUNHEALTHY\x1b\[0m/)
  assert.match(text, /\x1b\[32mup\x1b\[0m/)
  assert.match(text, /\x1b\[31mdown\x1b\[0m/)
  assert.match(text, /\x1b\[31m3F!\x1b\[0m/)
  assert.match(text, /\x1b\[33munder-replicated\x1b\[0m/)
  assert.match(text, /\x1b\[31m {2}! node 3/)
  assert.match(text, /\x1b\[33mwarn\x1b\[0m/)
  assert.equal(text.replace(/\x1b\[[0-9;]*m/g, ''), render(p, { color: false }))
  // A healthy picture: green, no problems section.
  const ok = buildPicture({ ...map(), nodes: (map().nodes ?? []).map((n) => ({ ...n, state: 'NODE_UP' as const })), regions: [(map().regions ?? [])[0]!] }, new Map([[1, status(1)], [2, status(2)], [3, status(3)]]), NOW)
  assert.equal(ok.healthy, true)
  const okText = render(ok, { color: true })
  assert.match(okText, /\x1b\[1;32mHEALTHY\x1b\[0m/)
  assert.doesNotMatch(okText, /PROBLEMS/)
  assert.match(okText, /\x1b\[32mok\x1b\[0m/)
})

test('status render: the bar and the colour decision', () => {
  assert.equal(bar(0.52), '[#####-----] 52%')
  assert.equal(bar(0), '[----------] 0%')
  assert.equal(bar(1.5), '[##########] 100%')
  assert.equal(bar(Number.NaN), '[----------] 0%')
  assert.equal(wantColor({ isTTY: true }, {}), true)
  assert.equal(wantColor({ isTTY: true }, { NO_COLOR: '1' }), false)
  assert.equal(wantColor({ isTTY: true }, { NO_COLOR: '' }), true)
  assert.equal(wantColor({ isTTY: false }, {}), false)
  assert.equal(wantColor({}, {}), false)
})
