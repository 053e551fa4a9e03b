// One complete sample of every message (every field set, none at its default where it can be
// avoided). Typed against messages.ts, and round-tripped through the .proto schema by
// codec.test.ts: a field present on one side only fails one of the two.
import type { MessageName, MessageTypes } from '../../src/rpc'

const b = (s: string) => Buffer.from(s)
const addr = (nodeId: number) => ({ nodeId, address: `127.0.0.1:${7000 + nodeId}` })
const epoch = { confVer: 3, version: 4 }
const region = { id: 7, startKey: b('a'), endKey: b('m'), epoch, voters: [1, 2, 3], learners: [4], leader: 2 }
const nodeInfo = { nodeId: 2, address: '127.0.0.1:7002', state: 'NODE_UP' as const, capacityBytes: 2 ** 40, freeBytes: 2 ** 39, lastHeartbeatMs: 1_700_000_000_000, joinedMs: 1_600_000_000_000, rssBytes: 123_456_789 }
const masterInfo = { leader: addr(1), term: 9, voters: [1, 2, 3], learners: [5] }
const settings = { dataReplicas: 3, maxMasters: 5, memberReplaceAfterMs: 1_800_000, downAfterMs: 10_000 }
const keyVersion = { key: b('k1'), version: 42 }
const commit = {
  reads: [keyVersion],
  scans: [{ start: b('a'), end: b('b'), limit: 10, seen: [keyVersion] }],
  writes: [{ key: b('k2'), value: b('v2'), delete: false }, { key: b('k3'), value: Buffer.alloc(0), delete: true }],
  txnId: b('txn-1'),
}
const entry = { term: 5, index: 2 ** 53 - 1, type: 'ENTRY_CONF_CHANGE' as const, data: b('payload') }
const raftMessage = {
  type: 'RAFT_APPEND' as const,
  from: 1,
  to: 2,
  term: 5,
  lastLogIndex: 10,
  lastLogTerm: 4,
  force: true,
  reject: true,
  prevIndex: 9,
  prevTerm: 4,
  entries: [entry],
  commit: 8,
  index: 11,
  rejectHint: 3,
  logTerm: 2,
  readSeq: 17,
  sentTick: 99,
  quiesce: true,
  lastIndex: 12,
  meta: { index: 6, term: 2, confState: { voters: [1, 2], learners: [3] } },
  offset: 4096,
  totalBytes: 8192,
  data: b('snap'),
  done: true,
  snapshotIndex: 6,
  nextOffset: 8192,
  transferee: 3,
  ctx: 'read-1',
}
const errorInfo = { code: 'NOT_LEADER', message: 'ask node 1', leader: addr(1), region }
const nodeEvent = { atMs: 1_700_000_000_000, kind: 'node-down', nodeId: 1, subjectNode: 3, regionId: 0, message: 'node 3 sent no heartbeat for 10 s', level: 'warn' }
const taskProgress = { id: 're-replication:7:4', kind: 're-replication', label: 'region 7: node 4 catching up', done: 10, total: 40, unit: 'entries', rate: 2.5, etaMs: 12_000, startedMs: 1_700_000_000_000, finishedMs: 0, failed: false, regionId: 7, nodeId: 4 }

export const SAMPLES: { [N in MessageName]: MessageTypes[N] } = {
  NodeAddr: addr(3),
  RegionEpoch: epoch,
  RegionDescriptor: region,
  Error: errorInfo,
  GetMasterRequest: {},
  GetMasterResponse: { known: true, clusterId: 'c1', leader: addr(1), term: 9, members: [addr(1), addr(2)] },
  SetMasterRequest: { clusterId: 'c1', leader: addr(1), term: 9, members: [addr(1), addr(2)] },
  SetMasterResponse: { error: errorInfo },
  ClaimRequest: { claimant: 'x1', address: '127.0.0.1:7001', ttlMs: 5000, release: true },
  ClaimResponse: { granted: true, holder: 'x1', masterKnown: true },
  RaftBatch: { clusterId: 'c1', fromNode: 1, toNode: 2, fromAddress: '127.0.0.1:7001', messages: [{ regionId: 7, region, message: raftMessage }] },
  RaftEnvelope: { regionId: 7, region, message: raftMessage },
  RaftStreamDone: {},
  RaftEntry: entry,
  ConfState: { voters: [1, 2], learners: [3] },
  SnapshotMeta: { index: 6, term: 2, confState: { voters: [1], learners: [] } },
  RaftMessage: raftMessage,
  NodeInfo: nodeInfo,
  MasterInfo: masterInfo,
  Settings: settings,
  JoinRequest: { clusterId: 'c1', nodeId: 4, address: '127.0.0.1:7004', joinToken: 'tok', capacityBytes: 1000, freeBytes: 500 },
  JoinResponse: { error: errorInfo, clusterId: 'c1', nodeId: 4, master: masterInfo },
  RegionStat: { region, isLeader: true, appliedIndex: 100, sizeBytes: 4096, keys: 12 },
  HeartbeatRequest: { clusterId: 'c1', nodeId: 2, address: '127.0.0.1:7002', capacityBytes: 1000, freeBytes: 500, rssBytes: 77, regions: [{ region, isLeader: false, appliedIndex: 5, sizeBytes: 6, keys: 7 }] },
  HeartbeatResponse: { error: errorInfo, master: masterInfo, mapVersion: 31 },
  GetClusterMapRequest: {},
  GetClusterMapResponse: { error: errorInfo, clusterId: 'c1', mapVersion: 31, master: masterInfo, nodes: [nodeInfo], regions: [region], settings },
  MasterCommand: { cmd: 'putRegion', putRegion: { region } },
  BootstrapCluster: { clusterId: 'c1', firstNode: nodeInfo, firstRegion: region, settings, createdMs: 1_700_000_000_000 },
  AddNode: { joinToken: 'tok', node: nodeInfo },
  UpdateNode: { node: { ...nodeInfo, state: 'NODE_REMOVED' } },
  PutRegion: { region },
  PutSettings: { settings },
  MasterSnapshot: { clusterId: 'c1', nextNodeId: 5, nextRegionId: 8, nodes: [nodeInfo], regions: [region], settings, joinTokens: { tok: 4, other: 2 ** 53 - 1 }, createdMs: 1_700_000_000_000 },
  MasterChangedRequest: { clusterId: 'c1', master: masterInfo },
  MasterChangedResponse: { error: errorInfo },
  ChangeReplicasRequest: { clusterId: 'c1', regionId: 7, epoch, change: 'PROMOTE_LEARNER', target: addr(4) },
  ChangeReplicasResponse: { error: errorInfo, region },
  NodeStatusRequest: {},
  GroupStatus: { regionId: 7, role: 'leader', leader: 2, term: 5, commitIndex: 10, appliedIndex: 9, voters: [1, 2, 3], learners: [4], region, sizeBytes: 4096, logEntries: 12 },
  NodeStatusResponse: {
    error: errorInfo,
    clusterId: 'c1',
    nodeId: 2,
    address: '127.0.0.1:7002',
    rssBytes: 1,
    uptimeMs: 2,
    groups: [],
    version: '0.1.0',
    cpuCores: 0.25,
    loopLagMs: 1.5,
    events: [nodeEvent],
    tasks: [taskProgress],
    seriesStepMs: 1000,
    kvOps: [1, 2.5],
    kvLatencyMs: [0.5, 3],
    fuseOps: [0, 7],
    httpAddress: '127.0.0.1:7102',
    capacityBytes: 2 ** 40,
    freeBytes: 2 ** 39,
  },
  NodeEvent: nodeEvent,
  TaskProgress: taskProgress,
  KvRequest: { id: 12, regionId: 7, epoch, op: 'commit', commit },
  GetOp: { key: b('k') },
  ScanOp: { start: b('a'), end: b('z'), limit: 100 },
  KeyVersion: keyVersion,
  ScanCheck: { start: b('a'), end: b('b'), limit: 0, seen: [] },
  Write: { key: b('k'), value: b('v'), delete: false },
  CommitOp: commit,
  KvEntry: { key: b('k'), value: b('v'), version: 3 },
  KvResponse: { id: 12, error: errorInfo, found: true, value: b('v'), version: 3, entries: [{ key: b('k'), value: b('v'), version: 3 }], index: 44 },
  RegionCommand: { epoch, cmd: 'commit', commit },
}
