// TypeScript shapes of every message in proto/polyfs/v1/*.proto, written by hand to match what
// codec.ts decodes: camelCase fields; uint64/uint32 -> number (never above 2^53 - 1); bytes ->
// Buffer; enums -> their names; repeated -> arrays (empty when absent); maps -> records;
// nested messages -> optional properties (absent when unset). Scalars are always present
// after decode (proto3 defaults: 0, '', false, empty Buffer). A oneof adds a discriminator
// property named after it that holds the set member's name.
// What a writer builds may leave any field out (Init<T>): absent reads as the default.
// When a .proto file changes, change this file in the same commit (test/rpc/codec.test.ts
// round-trips every message).

// ---- common.proto ------------------------------------------------------------------------------

/** A node of the cluster and the address (host:port) it can be reached at. */
export interface NodeAddr {
  nodeId: number
  address: string
}

/** Bumped by membership changes (confVer) and splits/merges (version). */
export interface RegionEpoch {
  confVer: number
  version: number
}

/** A region: keys [startKey, endKey) (empty endKey = to the end), one Raft group of node ids. */
export interface RegionDescriptor {
  id: number
  startKey: Buffer
  endKey: Buffer
  epoch?: RegionEpoch
  voters: number[]
  learners: number[]
  /** The last leader the sender knew (0 = unknown); a hint. */
  leader: number
}

/** The proto message `Error`: a stable code (errors.ts, docs/errors.md) plus retry hints. */
export interface RpcErrorInfo {
  code: string
  message: string
  /** NOT_LEADER: who leads now, when known. */
  leader?: NodeAddr
  /** EPOCH_NOT_MATCH / KEY_NOT_IN_REGION: the region as the replica knows it now. */
  region?: RegionDescriptor
}

// ---- waypoint.proto ----------------------------------------------------------------------------

export type GetMasterRequest = Record<string, never>

export interface GetMasterResponse {
  /** False: no leader registered within the expiry (the other fields are empty). */
  known: boolean
  clusterId: string
  leader?: NodeAddr
  term: number
  members: NodeAddr[]
}

export interface SetMasterRequest {
  clusterId: string
  leader?: NodeAddr
  term: number
  members: NodeAddr[]
}

export interface SetMasterResponse {
  error?: RpcErrorInfo
}

export interface ClaimRequest {
  claimant: string
  address: string
  ttlMs: number
  release: boolean
}

export interface ClaimResponse {
  granted: boolean
  holder: string
  masterKnown: boolean
}

// ---- raft.proto --------------------------------------------------------------------------------

export interface RaftBatch {
  clusterId: string
  fromNode: number
  toNode: number
  fromAddress: string
  messages: RaftEnvelope[]
}

export interface RaftEnvelope {
  regionId: number
  region?: RegionDescriptor
  message?: RaftMessage
}

export type RaftStreamDone = Record<string, never>

export type RaftMessageType =
  | 'RAFT_UNKNOWN'
  | 'RAFT_VOTE'
  | 'RAFT_VOTE_RESP'
  | 'RAFT_PRE_VOTE'
  | 'RAFT_PRE_VOTE_RESP'
  | 'RAFT_APPEND'
  | 'RAFT_APPEND_RESP'
  | 'RAFT_HEARTBEAT'
  | 'RAFT_HEARTBEAT_RESP'
  | 'RAFT_SNAPSHOT'
  | 'RAFT_SNAPSHOT_RESP'
  | 'RAFT_TIMEOUT_NOW'
  | 'RAFT_TRANSFER_LEADER'
  | 'RAFT_READ_INDEX'
  | 'RAFT_READ_INDEX_RESP'

export type RaftEntryType = 'ENTRY_NORMAL' | 'ENTRY_CONF_CHANGE'

export interface RaftEntry {
  term: number
  index: number
  type: RaftEntryType
  data: Buffer
}

export interface ConfState {
  voters: number[]
  learners: number[]
}

export interface SnapshotMeta {
  index: number
  term: number
  confState?: ConfState
}

/** Which fields matter depends on `type` (src/raft/types.ts); the others read as 0/empty. */
export interface RaftMessage {
  type: RaftMessageType
  from: number
  to: number
  term: number
  lastLogIndex: number
  lastLogTerm: number
  force: boolean
  reject: boolean
  prevIndex: number
  prevTerm: number
  entries: RaftEntry[]
  commit: number
  index: number
  rejectHint: number
  logTerm: number
  readSeq: number
  sentTick: number
  quiesce: boolean
  lastIndex: number
  meta?: SnapshotMeta
  offset: number
  totalBytes: number
  data: Buffer
  done: boolean
  snapshotIndex: number
  nextOffset: number
  transferee: number
  ctx: string
}

// ---- master.proto ------------------------------------------------------------------------------

export type NodeState = 'NODE_UNKNOWN' | 'NODE_UP' | 'NODE_DOWN' | 'NODE_REMOVED'

export interface NodeInfo {
  nodeId: number
  address: string
  state: NodeState
  capacityBytes: number
  freeBytes: number
  /** Milliseconds since the Unix epoch on the master leader's clock (0 = never). */
  lastHeartbeatMs: number
  joinedMs: number
  rssBytes: number
}

export interface MasterInfo {
  leader?: NodeAddr
  term: number
  voters: number[]
  learners: number[]
}

export interface Settings {
  dataReplicas: number
  maxMasters: number
  memberReplaceAfterMs: number
  downAfterMs: number
}

export interface JoinRequest {
  clusterId: string
  nodeId: number
  address: string
  joinToken: string
  capacityBytes: number
  freeBytes: number
}

export interface JoinResponse {
  error?: RpcErrorInfo
  clusterId: string
  nodeId: number
  master?: MasterInfo
}

export interface RegionStat {
  region?: RegionDescriptor
  isLeader: boolean
  appliedIndex: number
  sizeBytes: number
  keys: number
}

export interface HeartbeatRequest {
  clusterId: string
  nodeId: number
  address: string
  capacityBytes: number
  freeBytes: number
  rssBytes: number
  regions: RegionStat[]
}

export interface HeartbeatResponse {
  error?: RpcErrorInfo
  master?: MasterInfo
  mapVersion: number
}

export type GetClusterMapRequest = Record<string, never>

export interface GetClusterMapResponse {
  error?: RpcErrorInfo
  clusterId: string
  mapVersion: number
  master?: MasterInfo
  nodes: NodeInfo[]
  regions: RegionDescriptor[]
  settings?: Settings
}

/** An entry of the master group's Raft log (persisted: docs/protocol.md versioning applies). */
export interface MasterCommand {
  cmd?: 'bootstrap' | 'addNode' | 'updateNode' | 'putRegion' | 'putSettings'
  bootstrap?: BootstrapCluster
  addNode?: AddNode
  updateNode?: UpdateNode
  putRegion?: PutRegion
  putSettings?: PutSettings
}

export interface BootstrapCluster {
  clusterId: string
  firstNode?: NodeInfo
  firstRegion?: RegionDescriptor
  settings?: Settings
  createdMs: number
}

export interface AddNode {
  joinToken: string
  node?: NodeInfo
}

export interface UpdateNode {
  node?: NodeInfo
}

export interface PutRegion {
  region?: RegionDescriptor
}

export interface PutSettings {
  settings?: Settings
}

/** The master state machine's snapshot (persisted). */
export interface MasterSnapshot {
  clusterId: string
  nextNodeId: number
  nextRegionId: number
  nodes: NodeInfo[]
  regions: RegionDescriptor[]
  settings?: Settings
  joinTokens: Record<string, number>
  createdMs: number
}

// ---- admin.proto -------------------------------------------------------------------------------

export interface MasterChangedRequest {
  clusterId: string
  master?: MasterInfo
}

export interface MasterChangedResponse {
  error?: RpcErrorInfo
}

export type ReplicaChange = 'CHANGE_UNKNOWN' | 'ADD_LEARNER' | 'PROMOTE_LEARNER' | 'REMOVE_NODE'

export interface ChangeReplicasRequest {
  clusterId: string
  regionId: number
  epoch?: RegionEpoch
  change: ReplicaChange
  target?: NodeAddr
}

export interface ChangeReplicasResponse {
  error?: RpcErrorInfo
  region?: RegionDescriptor
}

export type NodeStatusRequest = Record<string, never>

export interface GroupStatus {
  regionId: number
  role: string
  leader: number
  term: number
  commitIndex: number
  appliedIndex: number
  voters: number[]
  learners: number[]
  region?: RegionDescriptor
  sizeBytes: number
  logEntries: number
}

export interface NodeStatusResponse {
  error?: RpcErrorInfo
  clusterId: string
  nodeId: number
  address: string
  rssBytes: number
  uptimeMs: number
  groups: GroupStatus[]
  version: string
  cpuCores: number
  loopLagMs: number
  events: NodeEvent[]
  tasks: TaskProgress[]
  seriesStepMs: number
  kvOps: number[]
  kvLatencyMs: number[]
  fuseOps: number[]
  httpAddress: string
  capacityBytes: number
  freeBytes: number
}

export interface NodeEvent {
  atMs: number
  kind: string
  nodeId: number
  subjectNode: number
  regionId: number
  message: string
  level: string
}

export interface TaskProgress {
  id: string
  kind: string
  label: string
  done: number
  total: number
  unit: string
  rate: number
  etaMs: number
  startedMs: number
  finishedMs: number
  failed: boolean
  regionId: number
  nodeId: number
}

// ---- kv.proto ----------------------------------------------------------------------------------

export interface KvRequest {
  id: number
  regionId: number
  epoch?: RegionEpoch
  op?: 'get' | 'scan' | 'commit' | 'getMany' | 'release' | 'patchCommit'
  get?: GetOp
  scan?: ScanOp
  commit?: CommitOp
  getMany?: GetManyOp
  release?: ReleaseOp
  /** A commit with block patches (docs/kv.md, "Partial block writes"). */
  patchCommit?: CommitOp
  /** Read leases (docs/metadata-leases.md): asked for by get/get_many (ms, 0: none). */
  leaseMs?: number
  /** The client's lease identity (random per client); 0: none. */
  leaseHolder?: number
}

/** Answers a revoke. */
export interface ReleaseOp {
  revokeId: number
}

/** Pushed by a leader (KvResponse id 0): drop `keys`, then release revokeId. */
export interface Revoke {
  revokeId: number
  regionId: number
  leaseHolder: number
  keys: Buffer[]
}

export interface GetOp {
  key: Buffer
}

/** Keys of one region; answered by KvResponse.entries in this order (version 0 = absent). */
export interface GetManyOp {
  keys: Buffer[]
}

/** Keys in [start, end) in order, at most `limit` (0 = the server's bound). */
export interface ScanOp {
  start: Buffer
  end: Buffer
  limit: number
}

/** A key and the Raft index of the write that produced the value read (0 = absent). */
export interface KeyVersion {
  key: Buffer
  version: number
}

export interface ScanCheck {
  start: Buffer
  end: Buffer
  limit: number
  seen: KeyVersion[]
}

export interface Write {
  key: Buffer
  value: Buffer
  delete: boolean
}

export interface CommitOp {
  reads: KeyVersion[]
  scans: ScanCheck[]
  writes: Write[]
  /** Chosen by the client once per attempt: a retried commit gets the first outcome back. */
  txnId: Buffer
  /** Only in patchCommit; never in a RegionCommand (decoded: always an array). */
  patches?: BlockPatch[]
}

export interface PatchRange {
  offset: number
  data: Buffer
  crc: number
}

export interface BlockPatch {
  key: Buffer
  ranges: PatchRange[]
}

export interface KvEntry {
  key: Buffer
  value: Buffer
  version: number
}

export interface KvResponse {
  id: number
  error?: RpcErrorInfo
  found: boolean
  value: Buffer
  version: number
  entries: KvEntry[]
  index: number
  /** The lease granted on the keys read (ms; 0: none). */
  leaseMs: number
  revoke?: Revoke
}

/** An entry of a data region's Raft log (persisted). */
export interface RegionCommand {
  epoch?: RegionEpoch
  cmd?: 'commit'
  commit?: CommitOp
}

type InitValue<V> = V extends Buffer ? V : V extends readonly (infer E)[] ? InitValue<E>[] : V extends object ? Init<V> : V

/**
 * A message as a writer may build it: every field optional, at every depth (an absent field
 * is sent as its proto3 default). Handlers return and clients send Init<T>; what decode
 * returns is the complete T.
 */
export type Init<T> = { [K in keyof T]?: InitValue<T[K]> }

/** Every message name of the package, mapped to its TypeScript shape. */
export interface MessageTypes {
  NodeAddr: NodeAddr
  RegionEpoch: RegionEpoch
  RegionDescriptor: RegionDescriptor
  Error: RpcErrorInfo
  GetMasterRequest: GetMasterRequest
  GetMasterResponse: GetMasterResponse
  SetMasterRequest: SetMasterRequest
  SetMasterResponse: SetMasterResponse
  ClaimRequest: ClaimRequest
  ClaimResponse: ClaimResponse
  RaftBatch: RaftBatch
  RaftEnvelope: RaftEnvelope
  RaftStreamDone: RaftStreamDone
  RaftEntry: RaftEntry
  ConfState: ConfState
  SnapshotMeta: SnapshotMeta
  RaftMessage: RaftMessage
  NodeInfo: NodeInfo
  MasterInfo: MasterInfo
  Settings: Settings
  JoinRequest: JoinRequest
  JoinResponse: JoinResponse
  RegionStat: RegionStat
  HeartbeatRequest: HeartbeatRequest
  HeartbeatResponse: HeartbeatResponse
  GetClusterMapRequest: GetClusterMapRequest
  GetClusterMapResponse: GetClusterMapResponse
  MasterCommand: MasterCommand
  BootstrapCluster: BootstrapCluster
  AddNode: AddNode
  UpdateNode: UpdateNode
  PutRegion: PutRegion
  PutSettings: PutSettings
  MasterSnapshot: MasterSnapshot
  MasterChangedRequest: MasterChangedRequest
  MasterChangedResponse: MasterChangedResponse
  ChangeReplicasRequest: ChangeReplicasRequest
  ChangeReplicasResponse: ChangeReplicasResponse
  NodeStatusRequest: NodeStatusRequest
  GroupStatus: GroupStatus
  NodeStatusResponse: NodeStatusResponse
  NodeEvent: NodeEvent
  TaskProgress: TaskProgress
  KvRequest: KvRequest
  GetOp: GetOp
  GetManyOp: GetManyOp
  ReleaseOp: ReleaseOp
  Revoke: Revoke
  ScanOp: ScanOp
  KeyVersion: KeyVersion
  ScanCheck: ScanCheck
  Write: Write
  CommitOp: CommitOp
  PatchRange: PatchRange
  BlockPatch: BlockPatch
  KvEntry: KvEntry
  KvResponse: KvResponse
  RegionCommand: RegionCommand
}

/** A message's short name in package polyfs.v1 ('KvRequest'; 'Error' is RpcErrorInfo). */
export type MessageName = keyof MessageTypes

/** Why `address` cannot be a node's address (host:port, at most 255 bytes); null when it can.
 * The master refuses such a Join or Heartbeat, a waypoint such a SetMaster or Claim. */
export function addressProblem(address: string): string | null {
  const m = /^([A-Za-z0-9._\-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\]):(\d{1,5})$/.exec(address)
  if (!m || Number(m[2]) < 1 || Number(m[2]) > 65535) return `"${address.slice(0, 64)}" is not a host:port address`
  return null
}

/** Join tokens and bootstrap claimants: 8 to 128 printable ASCII characters. */
export const TOKEN_RULE = /^[\x21-\x7e]{8,128}$/
