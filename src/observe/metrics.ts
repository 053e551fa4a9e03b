// Every Prometheus metric of a PolyFS process, defined in this one file so that names, labels
// and units are reviewed together (docs/operations.md lists them). One registry per process;
// the HTTP server's /metrics renders it. Naming: `polyfs_` prefix, `_total` for counters,
// `_seconds` and `_bytes` for units (Prometheus conventions). Labels stay low-cardinality: an
// operation, a method, a result code, a region id (regions are few), never a path or a key.
import client from 'prom-client'

export const registry = new client.Registry()

let defaultsOn = false

/** Process metrics (RSS, CPU seconds, open fds, heap, GC, event-loop lag), prefixed polyfs_. */
export function collectProcessMetrics(): void {
  if (defaultsOn) return
  defaultsOn = true
  client.collectDefaultMetrics({ register: registry, prefix: 'polyfs_', eventLoopMonitoringPrecision: 20 })
}

/** Latency buckets from 50 us to 10 s: a local hit is tens of microseconds, a commit across
 * three nodes a few milliseconds, anything past a second is a problem worth seeing. */
const LATENCY_BUCKETS = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10]

// ---- Hot-path cells ---------------------------------------------------------------------------
// prom-client's inc()/observe() hash their label object on every call (~200-250 ns each
// measured, more under load). The FUSE, RPC and KV paths instead bump a cell: a plain object
// with numbers for one label set, an add and no allocation. A metric's cells are added into it
// when /metrics is scraped (prom-client's collect hook), so the exposition is unchanged and
// code elsewhere may still call the metric directly (both add up). A histogram cell adds its
// bucket counts into prom-client's entry for its labels (prom-client is pinned to an exact
// version; probeHistogramLayout checks the layout at load, and cells fall back to observe()
// if it ever changes).

type Labels = Record<string, string>

/** One counter series, bumped with inc(): added into its counter at scrape time. */
export class CounterCell {
  n = 0
  constructor(readonly labels: Labels) {}
  inc(v = 1): void {
    this.n += v
  }
}

/** Whether prom-client's histogram keeps the layout HistogramCell writes into (checked once;
 * without it cells fall back to observe(), exact but slower). */
const FAST_HISTOGRAMS = probeHistogramLayout()
export const fastHistograms = FAST_HISTOGRAMS

/** One histogram series, fed with observe(): per-bucket counts added into its histogram at
 * scrape time. */
export class HistogramCell {
  sum = 0
  count = 0
  /** Observations per bucket (not cumulative); the last slot is past the largest bound. */
  readonly counts: Float64Array
  constructor(
    readonly labels: Labels,
    readonly bounds: readonly number[],
    private readonly h: client.Histogram<string>,
  ) {
    this.counts = new Float64Array(bounds.length + 1)
  }
  observe(v: number): void {
    if (!FAST_HISTOGRAMS) return this.h.observe(this.labels, v)
    const b = this.bounds
    let i = 0
    while (i < b.length && v > (b[i] as number)) i++
    this.counts[i]!++
    this.sum += v
    this.count++
  }
}

const labelKey = (labels: Labels): string =>
  Object.keys(labels)
    .sort()
    .map((k) => `${k}=${labels[k]}`)
    .join(',')

const counterCells = new Map<client.Counter<string>, Map<string, CounterCell>>()
const histogramCells = new Map<client.Histogram<string>, Map<string, HistogramCell>>()

type Collectable = { collect?: () => void | Promise<void> }

function chainCollect(m: Collectable, flush: () => void): void {
  const prev = m.collect
  m.collect = function (this: unknown) {
    const r = prev?.call(this)
    flush()
    return r
  }
}

/** Runs fn whenever metric m is about to be exported (after the hooks set before): gauges
 * computed at scrape time cost nothing on the paths that change them. */
export function onCollect(m: client.Counter<string> | client.Gauge<string> | client.Histogram<string>, fn: () => void): void {
  chainCollect(m as unknown as Collectable, fn)
}

/** The cell of `labels` on counter `c` (the same cell for the same labels). */
export function counterCell(c: client.Counter<string>, labels: Labels = {}): CounterCell {
  let cells = counterCells.get(c)
  if (!cells) {
    const all = (cells = new Map())
    counterCells.set(c, all)
    chainCollect(c as unknown as Collectable, () => {
      for (const cell of all.values()) {
        if (cell.n === 0) continue
        c.inc(cell.labels, cell.n)
        cell.n = 0
      }
    })
  }
  const key = labelKey(labels)
  let cell = cells.get(key)
  if (!cell) cells.set(key, (cell = new CounterCell({ ...labels })))
  return cell
}

/** The cell of `labels` on histogram `h` (the same cell for the same labels). */
export function histogramCell(h: client.Histogram<string>, labels: Labels = {}): HistogramCell {
  let cells = histogramCells.get(h)
  if (!cells) {
    const all = (cells = new Map())
    histogramCells.set(h, all)
    chainCollect(h as unknown as Collectable, () => {
      for (const cell of all.values()) flushHistogram(h, cell)
    })
  }
  const key = labelKey(labels)
  let cell = cells.get(key)
  if (!cell) cells.set(key, (cell = new HistogramCell({ ...labels }, FAST_HISTOGRAMS ? upperBounds(h) : [], h)))
  return cell
}

/** Forgets the cells of `labels` and removes the series from the metric (a region replica that
 * went away: its series end, and label values stay bounded). Cells handed out before keep
 * working but are no longer exported. */
export function dropSeries(m: client.Counter<string> | client.Gauge<string> | client.Histogram<string>, labels: Labels): void {
  const key = labelKey(labels)
  counterCells.get(m as client.Counter<string>)?.delete(key)
  histogramCells.get(m as client.Histogram<string>)?.delete(key)
  m.remove(labels)
}

/** The histogram's buckets, as prom-client keeps them (the probe checked they are there). */
function upperBounds(h: client.Histogram<string>): readonly number[] {
  return (h as unknown as { upperBounds: readonly number[] }).upperBounds
}

interface HistogramEntry {
  labels: Labels
  bucketValues: Record<string, number>
  sum: number
  count: number
}

function entryOf(h: client.Histogram<string>, labels: Labels): HistogramEntry | undefined {
  const map = (h as unknown as { hashMap: Record<string, HistogramEntry> }).hashMap
  const names = Object.keys(labels)
  for (const e of Object.values(map)) {
    const el = e.labels ?? {}
    if (Object.keys(el).length === names.length && names.every((n) => String(el[n]) === labels[n])) return e
  }
  return undefined
}

function flushHistogram(h: client.Histogram<string>, cell: HistogramCell): void {
  if (cell.count === 0) return
  let e = entryOf(h, cell.labels)
  if (!e) {
    h.zero(cell.labels)
    e = entryOf(h, cell.labels)
  }
  if (!e) return
  const b = cell.bounds
  for (let i = 0; i < b.length; i++) {
    const k = cell.counts[i] as number
    if (k === 0) continue
    e.bucketValues[b[i] as number] = (e.bucketValues[b[i] as number] ?? 0) + k
    cell.counts[i] = 0
  }
  cell.counts[b.length] = 0
  e.sum += cell.sum
  e.count += cell.count
  cell.sum = 0
  cell.count = 0
}

/** Checks, on a scratch histogram, that an entry written the way flushHistogram does exports as
 * observe() would have made it. */
function probeHistogramLayout(): boolean {
  try {
    const r = new client.Registry()
    const a = new client.Histogram({ name: 'probe_a', help: 'probe', labelNames: ['l'], buckets: [1, 2], registers: [r] })
    a.zero({ l: 'x' })
    const e = entryOf(a, { l: 'x' })
    const bounds = upperBounds(a)
    if (!Array.isArray(bounds) || bounds.join() !== '1,2') return false
    if (!e || typeof e.bucketValues !== 'object' || e.bucketValues[2] !== 0 || e.count !== 0) return false
    e.bucketValues[2] = 1
    e.sum += 1.5
    e.count += 1
    const b = new client.Histogram({ name: 'probe_b', help: 'probe', labelNames: ['l'], buckets: [1, 2], registers: [r] })
    b.observe({ l: 'x' }, 1.5)
    const values = (x: client.Histogram<string>) =>
      JSON.stringify((x as unknown as { hashMap: Record<string, HistogramEntry> }).hashMap[Object.keys((x as unknown as { hashMap: object }).hashMap)[0] as string])
    return values(a) === values(b)
  } catch {
    return false
  }
}

const counter = (name: string, help: string, labelNames: string[] = []) => new client.Counter({ name, help, labelNames, registers: [registry] })
const gauge = (name: string, help: string, labelNames: string[] = []) => new client.Gauge({ name, help, labelNames, registers: [registry] })
const histogram = (name: string, help: string, labelNames: string[] = [], buckets = LATENCY_BUCKETS) => new client.Histogram({ name, help, labelNames, buckets, registers: [registry] })

export const metrics = {
  // ---- FUSE (a mount in this process)
  fuseOps: counter('polyfs_fuse_operations_total', 'FUSE operations answered, by operation and result (ok or the errno name)', ['op', 'result']),
  fuseSeconds: histogram('polyfs_fuse_operation_duration_seconds', 'Time inside PolyFS per FUSE operation', ['op']),
  fuseReadBytes: counter('polyfs_fuse_read_bytes_total', 'Bytes returned by FUSE reads'),
  fuseWriteBytes: counter('polyfs_fuse_written_bytes_total', 'Bytes accepted by FUSE writes'),

  // ---- RPC (server side: what this process answered; client side: what it asked)
  rpcServed: counter('polyfs_rpc_served_total', 'RPCs (and stream messages) this process answered, by method and code (OK or the error code)', ['method', 'code']),
  rpcServedSeconds: histogram('polyfs_rpc_served_duration_seconds', 'Time to answer an RPC (or a Kv.Session request), by method', ['method']),
  rpcCalls: counter('polyfs_rpc_client_calls_total', 'RPCs (and stream messages: Kv.Session calls, RaftTransport.Stream batches) this process made, by method and code (OK, the error code answered, or why it failed or was dropped)', ['method', 'code']),
  rpcCallSeconds: histogram('polyfs_rpc_client_duration_seconds', 'Round trip of an RPC (or Kv.Session call) this process made, by method', ['method']),

  // ---- KV as served by this node's region replicas
  kvServed: counter('polyfs_kv_requests_total', 'KV requests served by this node, by op (get, scan, commit) and code', ['op', 'code']),
  kvSeconds: histogram('polyfs_kv_request_duration_seconds', 'Time to serve a KV request on this node, by op', ['op']),
  kvConflicts: counter('polyfs_kv_client_conflicts_total', 'Transactions of this process retried after a conflict'),

  // ---- Raft (every group this node hosts; group 0 is the master group)
  raftProposals: counter('polyfs_raft_proposals_total', 'Entries proposed on this node as leader, by group kind (master or region)', ['kind']),
  raftCommitted: counter('polyfs_raft_committed_entries_total', 'Committed entries handed to this node\'s state machines (re-deliveries after a restart included), by group kind', ['kind']),
  raftApplied: counter('polyfs_raft_applied_entries_total', 'Entries applied to state machines on this node (each entry once), by group kind', ['kind']),
  raftElections: counter('polyfs_raft_elections_total', 'Elections this node started (became pre-candidate or candidate, or campaigned again in a new term), by group kind', ['kind']),
  raftLeaderChanges: counter('polyfs_raft_leader_changes_total', 'Leader changes this node observed, by group kind', ['kind']),
  raftLeaders: gauge('polyfs_raft_leader_groups', 'Groups this node currently leads, by group kind', ['kind']),
  raftGroups: gauge('polyfs_raft_groups', 'Groups this node hosts a replica of, by group kind', ['kind']),
  raftLogEntries: gauge('polyfs_raft_log_entries', 'Entries in the Raft log since its last snapshot, per group', ['region']),
  raftSnapshots: counter('polyfs_raft_snapshots_total', 'Snapshots by event: taken (an image made), compacted (a log compaction without an image), sent, installed', ['event']),
  raftSnapshotBytes: counter('polyfs_raft_snapshot_bytes_total', 'Snapshot bytes taken, sent and installed, by event', ['event']),

  // ---- The node's store (LevelDB)
  storeBatches: counter('polyfs_store_batches_total', 'Write batches to the node store (Raft log, applied data, metadata), by sync (true: fsync\'d)', ['sync']),
  storeBatchOps: histogram('polyfs_store_batch_operations', 'Operations per store write batch', [], [1, 2, 4, 8, 16, 32, 64, 128, 256, 1024, 4096]),
  storeWrittenBytes: counter('polyfs_store_written_bytes_total', 'Bytes (keys and values) written to the node store'),
  storeFsyncs: counter('polyfs_store_fsyncs_total', 'Synced store writes (each one an fsync of the LevelDB log, of the Raft log segments, or of the local store\'s write-ahead log)'),
  storeFsyncSeconds: histogram('polyfs_store_sync_duration_seconds', 'Time of a synced store write (or a write-ahead log fdatasync)'),
  storeDiskBytes: gauge('polyfs_store_disk_bytes', 'Bytes of the node store on disk (LevelDB\'s tables as it counts them, plus its log and manifest)'),
  nodeCapacityBytes: gauge('polyfs_node_capacity_bytes', 'Size of the filesystem holding the data directory'),
  nodeFreeBytes: gauge('polyfs_node_free_bytes', 'Free bytes on the filesystem holding the data directory'),

  // ---- Regions hosted here
  regionBytes: gauge('polyfs_region_size_bytes', 'Approximate bytes of user data per region replica on this node (as heartbeats report it: puts add, deletes and overwrites do not subtract)', ['region']),
  regionWrites: counter('polyfs_region_applied_writes_total', 'Key writes applied per region replica on this node', ['region']),
  regionReads: counter('polyfs_region_reads_total', 'Gets and scans served per region on this node (as leader)', ['region']),

  // ---- Cluster (as this node sees it; the master leader's figures are the cluster's)
  clusterNodes: gauge('polyfs_cluster_nodes', 'Nodes in the cluster map by state (reported by the master leader only)', ['state']),
  clusterRegions: gauge('polyfs_cluster_regions', 'Regions by health: ok, under_replicated, unavailable (reported by the master leader only)', ['health']),
  events: counter('polyfs_events_total', 'Events recorded on this node (the status page lists them), by kind', ['kind']),
}

export type Metrics = typeof metrics
