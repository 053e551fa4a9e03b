// src/raft: the Raft consensus core every replicated thing in PolyFS runs on. This file is the
// folder's only public entry.
//
// Map of the folder (data flows top to bottom; nothing here does I/O except durable.ts and segments.ts):
//   types.ts       entries, hard state, snapshots, the Message union, the Ready batch
//   node.ts        RaftNode: the host-facing API (tick, step, propose, readIndex, ready/advance)
//   raft.ts        the protocol: elections, replication, commit, reads, membership, transfer
//   config.ts      RaftConfig: every option and bound, with its default
//   log.ts         the log view: stable storage plus the unstable (not yet persisted) tail
//   progress.ts    the leader's per-follower progress and flow-control window
//   readindex.ts   the leader's ReadIndex queue; the follower's snapshot reassembly buffer
//   confchange.ts  one-server-at-a-time membership changes and their encoding
//   storage.ts     the storage contract and MemoryStorage
//   durable.ts     LevelRaftStore: many groups in one classic-level store, group commit
//   segments.ts    SegmentRaftStore: every group's log in the node's own segment files (the
//                  node's default), snapshots in LevelDB
//   codec.ts       binary encoding of entries, hard state and snapshots for durable.ts
//   transport.ts   host helpers: batching many groups' messages per peer
//   rng.ts         the injected random source (seeded)
//
// New protocol rules go in raft.ts with a unit test in test/raft/; new storage back ends
// implement RaftStorage from storage.ts and run the shared contract test.

export { RaftNode } from './node';
export type { Status, ProgressStatus } from './node';
export { quorum } from './raft';
export { ReadOnlyOption } from './config';
export type { RaftConfig, ProposeResult } from './config';
export { ConfChangeType, encodeConfChange, decodeConfChange, applyToConfState } from './confchange';
export type { ConfChange } from './confchange';
export { MemoryStorage, CompactedError, bootstrapSnapshot, saveReady } from './storage';
export { LevelRaftStore, DurableGroupStorage } from './durable';
export type { LevelRaftStoreOptions } from './durable';
export { SegmentRaftStore, SegmentGroupStorage, SegmentCorruptError, SEGMENT_FORMAT } from './segments';
export type { SegmentRaftStoreOptions, Loc } from './segments';
import type { DurableGroupStorage } from './durable';
import type { SegmentGroupStorage } from './segments';
/** A group's storage as the host uses it, whichever store holds it. */
export type GroupStorage = DurableGroupStorage | SegmentGroupStorage;
/** What the host needs of the node's Raft store: ONE sync for every group's staged writes. */
export interface RaftLogStore {
  sync(durable?: boolean): Promise<void>;
}
export { CorruptRaftRecordError } from './codec';
export type { RaftStorage, RaftStorageReader, InitialState } from './storage';
export { batchByPeer } from './transport';
export type { GroupMessage } from './transport';
export { SeededRng } from './rng';
export type { Rng } from './rng';
export { ProgressState } from './progress';
export { NONE, EntryType, Role, assertNever } from './types';
export type {
  NodeId,
  Entry,
  HardState,
  ConfState,
  Snapshot,
  SnapshotMeta,
  Message,
  MessageType,
  ReadState,
  SoftState,
  Ready,
} from './types';
