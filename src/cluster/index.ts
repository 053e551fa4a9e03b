// src/cluster: a PolyFS node, every role in one process. This file is the folder's only
// public entry.
//
// Map of the folder (a write from a client goes: node.ts handleKv -> host.ts propose ->
// Raft (src/raft) -> host.ts apply -> region.ts applyEntries -> the store):
//   node.ts        ClusterNode: the store, the RPC services, replicas, the Raft transport
//   host.ts        RaftHost: drives every group on the node; group commit; proposals, reads
//   region.ts      RegionReplica: a data region's state machine (versioned keys, validation;
//                  block values as pointers into the Raft log's segments)
//   values.ts      ValueKeeper: when segments kept for their values go, and their cleaning
//   master.ts      MasterState: the master group's state machine (the cluster index)
//   masterduty.ts  heartbeats, and the master leader's duties and RPCs
//   join.ts        joining through the waypoints, and safe bootstrap (claims)
//   identity.ts    identity.json: cluster id, node id, last known master peers
//   raftwire.ts    Raft messages <-> their protobuf form
//
// Docs: docs/cluster.md (design), docs/node-store.md (on-disk layout), docs/protocol.md.
export { ClusterNode } from './node'
export type { NodeOptions } from './node'
export { MASTER_GROUP } from './master'
