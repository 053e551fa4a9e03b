// /metrics of real processes: a 3-node cluster on loopback, each node with --http, and a client
// mount with --http. Every line of the exposition must parse (parse-prometheus-text-format for
// the families, and a strict line check of our own, since that parser accepts any line), the
// families must exist with their types, and writing files through the mount must move the
// figures: FUSE writes and bytes on the mount; KV commits, Raft proposals, fsyncs and served
// RPCs on the region leader. Plus the unit checks: metric names, the hot-path cells against
// prom-client's own observe() (what recording costs is bench/metrics.ts).
import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import path from 'node:path'
import { test } from 'node:test'
import client from 'prom-client'
import { collectProcessMetrics, counterCell, histogramCell, registry } from '../../src/observe'
import { fastHistograms } from '../../src/observe/metrics'
import { dumpLogs, fullyReplicated, startCluster, type Cluster } from '../helpers/cluster'
import { waitFor } from '../helpers/mount'

interface Family {
  name: string
  help: string
  type: string
  metrics: unknown[]
}
// eslint-disable-next-line @typescript-eslint/no-var-requires
const parseExposition = require('parse-prometheus-text-format') as (text: string) => Family[]

interface Sample {
  name: string
  labels: Record<string, string>
  value: number
}

interface Scrape {
  /** Family name -> type (COUNTER, GAUGE, HISTOGRAM, ...). */
  types: Map<string, string>
  samples: Sample[]
}

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? ([^ ]+)$/
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\.)*)"(,|$)/y

/** Parses an exposition strictly: every line is a HELP, a TYPE, or a sample of a declared family. */
function parseStrict(text: string): Scrape {
  const families = parseExposition(text)
  const types = new Map(families.map((f) => [f.name, f.type]))
  const samples: Sample[] = []
  const lines = text.split('\n')
  assert.equal(lines.pop(), '', 'the exposition ends with a newline')
  for (const line of lines) {
    if (line === '') continue
    if (line.startsWith('# HELP ')) continue
    if (line.startsWith('# TYPE ')) {
      assert.match(line, /^# TYPE [a-zA-Z_:][a-zA-Z0-9_:]* (counter|gauge|histogram|summary|untyped)$/, `TYPE line: ${line}`)
      continue
    }
    const m = SAMPLE.exec(line)
    assert.ok(m, `not a sample line: ${JSON.stringify(line)}`)
    const [, name, rawLabels, rawValue] = m as unknown as [string, string, string | undefined, string]
    const labels: Record<string, string> = {}
    if (rawLabels !== undefined && rawLabels !== '') {
      LABEL.lastIndex = 0
      let at = 0
      while (at < rawLabels.length) {
        const l = LABEL.exec(rawLabels)
        assert.ok(l && l.index === at, `bad labels in: ${line}`)
        labels[l[1] as string] = (l[2] as string).replace(/\\(.)/g, (_s, c: string) => (c === 'n' ? '\n' : c))
        at = LABEL.lastIndex
      }
    }
    // prom-client spells NaN "Nan" (event-loop lag before its first sample); Prometheus parses
    // floats with Go's ParseFloat, which takes NaN in any case.
    const nan = /^nan$/i.test(rawValue)
    const value = rawValue === '+Inf' ? Infinity : rawValue === '-Inf' ? -Infinity : nan ? NaN : Number(rawValue)
    assert.ok(nan || !Number.isNaN(value), `bad value in: ${line}`)
    const family = [name, name.replace(/_(bucket|sum|count)$/, '')].find((f) => types.has(f))
    assert.ok(family, `sample of an undeclared family: ${line}`)
    if (family !== name) assert.ok(['HISTOGRAM', 'SUMMARY'].includes(types.get(family) as string), `suffixed sample of a ${types.get(family)}: ${line}`)
    samples.push({ name, labels, value })
  }
  return { types, samples }
}

/** The sum of the samples named `name` whose labels include `want`. */
function sum(s: Scrape, name: string, want: Record<string, string> = {}): number {
  let total = 0
  for (const x of s.samples) if (x.name === name && Object.entries(want).every(([k, v]) => x.labels[k] === v)) total += x.value
  return total
}

const REQUIRED: Record<string, string[]> = {
  COUNTER: [
    'polyfs_fuse_operations_total',
    'polyfs_fuse_read_bytes_total',
    'polyfs_fuse_written_bytes_total',
    'polyfs_rpc_served_total',
    'polyfs_rpc_client_calls_total',
    'polyfs_kv_requests_total',
    'polyfs_kv_client_conflicts_total',
    'polyfs_raft_proposals_total',
    'polyfs_raft_committed_entries_total',
    'polyfs_raft_applied_entries_total',
    'polyfs_raft_elections_total',
    'polyfs_raft_leader_changes_total',
    'polyfs_raft_snapshots_total',
    'polyfs_raft_snapshot_bytes_total',
    'polyfs_store_batches_total',
    'polyfs_store_written_bytes_total',
    'polyfs_store_fsyncs_total',
    'polyfs_region_applied_writes_total',
    'polyfs_region_reads_total',
    'polyfs_events_total',
    'polyfs_process_cpu_seconds_total',
  ],
  HISTOGRAM: [
    'polyfs_fuse_operation_duration_seconds',
    'polyfs_rpc_served_duration_seconds',
    'polyfs_rpc_client_duration_seconds',
    'polyfs_kv_request_duration_seconds',
    'polyfs_store_batch_operations',
    'polyfs_store_sync_duration_seconds',
  ],
  GAUGE: [
    'polyfs_raft_leader_groups',
    'polyfs_raft_groups',
    'polyfs_raft_log_entries',
    'polyfs_store_disk_bytes',
    'polyfs_node_capacity_bytes',
    'polyfs_node_free_bytes',
    'polyfs_region_size_bytes',
    'polyfs_cluster_nodes',
    'polyfs_cluster_regions',
    'polyfs_process_resident_memory_bytes',
    'polyfs_nodejs_eventloop_lag_seconds',
  ],
}

function assertFamilies(s: Scrape, who: string): void {
  for (const [type, names] of Object.entries(REQUIRED)) {
    for (const n of names) assert.equal(s.types.get(n), type, `${who}: ${n} should be a ${type.toLowerCase()}`)
  }
}

async function get(url: string): Promise<{ status: number; type: string; body: string }> {
  const r = await fetch(url, { signal: AbortSignal.timeout(5000) })
  return { status: r.status, type: r.headers.get('content-type') ?? '', body: await r.text() }
}

async function scrape(http: string): Promise<Scrape> {
  const r = await get(`http://${http}/metrics`)
  assert.equal(r.status, 200, `/metrics on ${http}: ${r.body}`)
  assert.match(r.type, /^text\/plain/)
  return parseStrict(r.body)
}

/** HTTP addresses beside the helper's ports: the cluster owns base..base+39 (waypoints at base,
 * nodes at base+10+i); HTTP takes base+30+i for node i and base+39 for the mount. */
function httpPorts(c: Cluster): { node: (i: number) => string; mount: string } {
  const base = Number(c.nodeAddress(0).split(':')[1]) - 10
  return { node: (i) => `127.0.0.${11 + i}:${base + 30 + i}`, mount: `127.0.0.1:${base + 39}` }
}

test('metrics: every name is polyfs_ snake case; counters end in _total', async () => {
  collectProcessMetrics()
  const all = await registry.getMetricsAsJSON()
  assert.ok(all.length > 40, `only ${all.length} metrics registered`)
  for (const m of all) {
    assert.match(m.name, /^polyfs_[a-z0-9_]+$/, `metric name ${m.name}`)
    if (String(m.type) === 'counter') assert.match(m.name, /_total$/, `counter ${m.name} should end in _total`)
    for (const l of new Set(m.values.flatMap((v) => Object.keys(v.labels)))) assert.ok(['op', 'result', 'method', 'code', 'kind', 'region', 'event', 'sync', 'state', 'health', 'le', 'space', 'version', 'major', 'minor', 'patch', 'type', 'name'].includes(l), `${m.name}: label ${l} is not one of the bounded ones`)
  }
  // The exposition of this process parses too.
  const s = parseStrict(await registry.metrics())
  assertFamilies(s, 'this process')
})

test('metrics: hot-path cells export exactly what prom-client\'s inc and observe would', async () => {
  assert.ok(fastHistograms, 'prom-client\'s histogram layout changed: cells fall back to observe()')
  const r = new client.Registry()
  const viaCells = new client.Histogram({ name: 'cells_seconds', help: 'h', labelNames: ['op'], buckets: [0.001, 0.01, 1], registers: [r] })
  const direct = new client.Histogram({ name: 'direct_seconds', help: 'h', labelNames: ['op'], buckets: [0.001, 0.01, 1], registers: [r] })
  const cCells = new client.Counter({ name: 'cells_total', help: 'h', labelNames: ['op'], registers: [r] })
  const cDirect = new client.Counter({ name: 'direct_total', help: 'h', labelNames: ['op'], registers: [r] })
  const values = [0.0005, 0.001, 0.002, 0.5, 3, 0.0001, 0.02]
  const cell = histogramCell(viaCells, { op: 'read' })
  const ccell = counterCell(cCells, { op: 'read' })
  for (const v of values) {
    cell.observe(v)
    direct.observe({ op: 'read' }, v)
    ccell.inc(2)
    cDirect.inc({ op: 'read' }, 2)
  }
  const first = await r.metrics()
  // Again after a scrape: the cell was emptied into the metric, more adds on top.
  cell.observe(0.003)
  direct.observe({ op: 'read' }, 0.003)
  ccell.inc()
  cDirect.inc({ op: 'read' })
  for (const text of [first, await r.metrics()]) {
    const s = parseStrict(text)
    const pick = (prefix: string) =>
      s.samples
        .filter((x) => x.name.startsWith(prefix))
        .map((x) => `${x.name.slice(prefix.length)}${JSON.stringify(x.labels)} ${x.value.toFixed(9)}`)
        .sort()
    assert.deepEqual(pick('cells_'), pick('direct_'))
  }
})

test('metrics: /metrics of 3 nodes and a mount parse, and writes through the mount move the figures', async (t) => {
  const c = startCluster(t)
  const ports = httpPorts(c)
  for (let i = 0; i < 3; i++) c.addNode(['--http', ports.node(i)]).start()
  try {
    await fullyReplicated(c)
    // Ready: a member, a master known, every hosted group led.
    for (let i = 0; i < 3; i++) {
      await waitFor(async () => (await get(`http://${ports.node(i)}/readyz`).catch(() => ({ status: 0 }))).status === 200, 30_000, `node ${i + 1} ready`)
      const h = await get(`http://${ports.node(i)}/healthz`)
      assert.equal(h.status, 200, h.body)
      const r = await get(`http://${ports.node(i)}/readyz`)
      assert.equal(r.status, 200, r.body)
      assert.equal((JSON.parse(r.body) as { ok: boolean }).ok, true)
    }
    const { mnt } = await c.mount(['--http', ports.mount])
    await waitFor(async () => (await get(`http://${ports.mount}/healthz`).catch(() => ({ status: 0 }))).status === 200, 30_000, 'the mount\'s HTTP')

    const map = (await c.map())!
    const region = map.regions[0]!
    const leaderAddress = map.nodes.find((n) => n.nodeId === region.leader)?.address
    const leader = [0, 1, 2].find((i) => c.nodeAddress(i) === leaderAddress)
    assert.ok(leader !== undefined, `region ${region.id}'s leader ${region.leader} is none of the nodes`)

    const nodesBefore = await Promise.all([0, 1, 2].map((i) => scrape(ports.node(i))))
    const mountBefore = await scrape(ports.mount)
    nodesBefore.forEach((s, i) => assertFamilies(s, `node ${i + 1}`))
    assertFamilies(mountBefore, 'the mount')
    for (const [i, s] of nodesBefore.entries()) {
      assert.ok(sum(s, 'polyfs_process_resident_memory_bytes') > 0, `node ${i + 1}: RSS`)
      assert.ok(s.samples.some((x) => x.name === 'polyfs_nodejs_eventloop_lag_seconds'), `node ${i + 1}: event-loop lag`)
      assert.ok(sum(s, 'polyfs_raft_groups', { kind: 'region' }) >= 1, `node ${i + 1} hosts the region`)
      assert.ok(sum(s, 'polyfs_raft_groups', { kind: 'master' }) === 1, `node ${i + 1} hosts a master replica`)
      assert.ok(sum(s, 'polyfs_node_capacity_bytes') > 0 && sum(s, 'polyfs_store_disk_bytes') > 0, `node ${i + 1}: capacity and store size`)
      assert.ok(s.samples.some((x) => x.name === 'polyfs_raft_log_entries' && x.labels.region === String(region.id)), `node ${i + 1}: log entries of region ${region.id}`)
    }
    assert.equal(nodesBefore.reduce((n, s) => n + sum(s, 'polyfs_raft_leader_groups', { kind: 'master' }), 0), 1, 'one master leader among the nodes')
    assert.ok(nodesBefore.reduce((n, s) => n + sum(s, 'polyfs_raft_elections_total'), 0) >= 1, 'the groups were elected')

    // Write through the mount, each file fsync'ed.
    const files = 8
    const size = 96 * 1024
    const data = Buffer.alloc(size, 7)
    for (let f = 0; f < files; f++) {
      const fd = fs.openSync(path.join(mnt, `m-${f}.bin`), 'w')
      fs.writeSync(fd, data)
      fs.fsyncSync(fd)
      fs.closeSync(fd)
    }
    assert.equal(fs.readFileSync(path.join(mnt, 'm-3.bin')).length, size)
    assert.throws(() => fs.statSync(path.join(mnt, 'missing')), /ENOENT/)

    const mountAfter = await scrape(ports.mount)
    const nodesAfter = await Promise.all([0, 1, 2].map((i) => scrape(ports.node(i))))
    const moved = (before: Scrape, after: Scrape, name: string, labels: Record<string, string> = {}) => sum(after, name, labels) - sum(before, name, labels)

    // The mount: FUSE ops, bytes, latency, errors by errno name, and its KV calls.
    assert.ok(moved(mountBefore, mountAfter, 'polyfs_fuse_operations_total', { op: 'write', result: 'ok' }) >= files, 'FUSE writes counted')
    assert.ok(moved(mountBefore, mountAfter, 'polyfs_fuse_operations_total', { op: 'fsync', result: 'ok' }) >= files, 'FUSE fsyncs counted')
    assert.ok(moved(mountBefore, mountAfter, 'polyfs_fuse_operations_total', { result: 'ENOENT' }) >= 1, 'ENOENT counted by name')
    assert.ok(moved(mountBefore, mountAfter, 'polyfs_fuse_written_bytes_total') >= files * size, 'written bytes counted')
    assert.ok(moved(mountBefore, mountAfter, 'polyfs_fuse_read_bytes_total') >= size, 'read bytes counted')
    assert.ok(moved(mountBefore, mountAfter, 'polyfs_fuse_operation_duration_seconds_count', { op: 'write' }) >= files, 'FUSE write latency observed')
    assert.ok(moved(mountBefore, mountAfter, 'polyfs_rpc_client_calls_total', { method: 'Kv.Session', code: 'OK' }) >= files, 'the mount\'s KV calls counted')
    assert.ok(moved(mountBefore, mountAfter, 'polyfs_rpc_client_duration_seconds_count', { method: 'Kv.Session' }) >= files, 'the mount\'s KV round trips observed')

    // The region leader: commits served, proposals, fsyncs, served RPCs, applied writes.
    const lb = nodesBefore[leader]!
    const la = nodesAfter[leader]!
    assert.ok(moved(lb, la, 'polyfs_kv_requests_total', { op: 'commit', code: 'OK' }) >= files, 'commits served by the leader')
    assert.ok(moved(lb, la, 'polyfs_raft_proposals_total', { kind: 'region' }) >= files, 'region proposals on the leader')
    assert.ok(moved(lb, la, 'polyfs_store_fsyncs_total') >= 1, 'fsyncs on the leader')
    assert.ok(moved(lb, la, 'polyfs_store_sync_duration_seconds_count') >= 1, 'sync durations on the leader')
    assert.ok(moved(lb, la, 'polyfs_store_written_bytes_total') >= files * size, 'store bytes on the leader')
    assert.ok(moved(lb, la, 'polyfs_rpc_served_total', { method: 'Kv.Session', code: 'OK' }) >= files, 'Kv.Session requests served by the leader')
    assert.ok(moved(lb, la, 'polyfs_region_applied_writes_total', { region: String(region.id) }) >= files, 'applied key writes')
    assert.ok(sum(la, 'polyfs_region_size_bytes', { region: String(region.id) }) >= files * size, 'region size')
    // Every replica applied the entries and fsync'ed; followers got Raft batches.
    for (const i of [0, 1, 2]) {
      assert.ok(moved(nodesBefore[i]!, nodesAfter[i]!, 'polyfs_raft_applied_entries_total', { kind: 'region' }) >= files, `node ${i + 1} applied`)
      assert.ok(moved(nodesBefore[i]!, nodesAfter[i]!, 'polyfs_store_fsyncs_total') >= 1, `node ${i + 1} fsync'ed`)
      if (i !== leader) assert.ok(moved(nodesBefore[i]!, nodesAfter[i]!, 'polyfs_rpc_served_total', { method: 'RaftTransport.Stream', code: 'OK' }) >= 1, `node ${i + 1} received Raft batches`)
    }
    assert.ok(moved(lb, la, 'polyfs_rpc_client_calls_total', { method: 'RaftTransport.Stream', code: 'OK' }) >= files, 'the leader sent Raft batches')
  } catch (err) {
    console.error(dumpLogs(c))
    throw err
  }
})
