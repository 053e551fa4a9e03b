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
  rpcServedSeconds: histogram('polyfs_rpc_served_duration_seconds', 'Time to answer an RPC, by method', ['method']),
  rpcCalls: counter('polyfs_rpc_client_calls_total', 'RPCs this process made, by method and code', ['method', 'code']),
  rpcCallSeconds: histogram('polyfs_rpc_client_duration_seconds', 'Round trip of an RPC this process made, by method', ['method']),

  // ---- KV as served by this node's region replicas
  kvServed: counter('polyfs_kv_requests_total', 'KV requests served by this node, by op (get, scan, commit) and code', ['op', 'code']),
  kvSeconds: histogram('polyfs_kv_request_duration_seconds', 'Time to serve a KV request on this node, by op', ['op']),
  kvConflicts: counter('polyfs_kv_client_conflicts_total', 'Transactions of this process retried after a conflict'),

  // ---- Raft (every group this node hosts; group 0 is the master group)
  raftProposals: counter('polyfs_raft_proposals_total', 'Entries proposed on this node as leader, by group kind (master or region)', ['kind']),
  raftCommitted: counter('polyfs_raft_committed_entries_total', 'Entries applied to state machines on this node, by group kind', ['kind']),
  raftElections: counter('polyfs_raft_elections_total', 'Elections this node started (campaigns), by group kind', ['kind']),
  raftLeaderChanges: counter('polyfs_raft_leader_changes_total', 'Leader changes this node observed, by group kind', ['kind']),
  raftLeaders: gauge('polyfs_raft_leader_groups', 'Groups this node currently leads, by group kind', ['kind']),
  raftGroups: gauge('polyfs_raft_groups', 'Groups this node hosts a replica of, by group kind', ['kind']),
  raftLogEntries: gauge('polyfs_raft_log_entries', 'Entries in the Raft log since its last snapshot, per group', ['region']),
  raftSnapshots: counter('polyfs_raft_snapshots_total', 'Snapshots taken (log compactions), sent and installed, by event', ['event']),
  raftSnapshotBytes: counter('polyfs_raft_snapshot_bytes_total', 'Snapshot bytes taken, sent and installed, by event', ['event']),

  // ---- The node's store (LevelDB)
  storeBatches: counter('polyfs_store_batches_total', 'Write batches to the node store, by sync (true: fsync\'d)', ['sync']),
  storeBatchOps: histogram('polyfs_store_batch_operations', 'Operations per store write batch', [], [1, 2, 4, 8, 16, 32, 64, 128, 256, 1024, 4096]),
  storeWrittenBytes: counter('polyfs_store_written_bytes_total', 'Bytes (keys and values) written to the node store'),
  storeFsyncs: counter('polyfs_store_fsyncs_total', 'Synced store writes (each one an fsync of the LevelDB log)'),
  storeFsyncSeconds: histogram('polyfs_store_sync_duration_seconds', 'Time of a synced store write'),
  storeDiskBytes: gauge('polyfs_store_disk_bytes', 'Bytes of the node store on disk'),
  nodeCapacityBytes: gauge('polyfs_node_capacity_bytes', 'Size of the filesystem holding the data directory'),
  nodeFreeBytes: gauge('polyfs_node_free_bytes', 'Free bytes on the filesystem holding the data directory'),

  // ---- Regions hosted here
  regionBytes: gauge('polyfs_region_size_bytes', 'Approximate bytes of user data per region replica on this node', ['region']),
  regionWrites: counter('polyfs_region_applied_writes_total', 'Key writes applied per region replica on this node', ['region']),
  regionReads: counter('polyfs_region_reads_total', 'Gets and scans served per region on this node (as leader)', ['region']),

  // ---- Cluster (as this node sees it; the master leader's figures are the cluster's)
  clusterNodes: gauge('polyfs_cluster_nodes', 'Nodes in the cluster map by state (reported by the master leader only)', ['state']),
  clusterRegions: gauge('polyfs_cluster_regions', 'Regions by health: ok, under_replicated, unavailable (reported by the master leader only)', ['health']),
  events: counter('polyfs_events_total', 'Events recorded on this node (the status page lists them), by kind', ['kind']),
}

export type Metrics = typeof metrics
