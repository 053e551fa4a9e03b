// ClusterNode: one `polyfs node` process. Every node runs the same code: it hosts region
// replicas and (when the cluster puts it there) a master-group replica over one store, answers
// Raft, KV, master and admin RPCs, heartbeats the master leader, and does the master leader's
// duties when it is the leader (masterduty.ts). Joining and bootstrapping: join.ts.
import { ClassicLevel } from 'classic-level'
import { mkdirSync, statfsSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { SegmentRaftStore, type Message, type NodeId } from '../raft'
import {
  ErrorCode,
  keyInRegion,
  RpcClients,
  RpcServer,
  encode,
  NO_OPERATION,
  rpcError,
  type CommitOp,
  type KvRequest,
  type KvResponse,
  type KvStream,
  type MasterInfo,
  type NodeAddr,
  type RaftBatch,
  type RegionDescriptor,
  type RegionStat,
  type Settings,
  type RpcErrorInfo,
} from '../rpc'
import { startHttp, type Checks, type HttpServer } from '../http'
import { PatchError, isBlockKey, mergePatch, rangeMayHoldBlocks } from '../kv'
import { events, gatherPicture, metrics, series, SERIES_STEP_MS, tasks } from '../observe'
import { logger as rootLogger, type Logger } from '../util/log'
import { RaftHost, NotLeaderError } from './host'
import { LeaseTable, type LeaseHolder } from './leases'
import { loadIdentity, saveIdentity, type Identity } from './identity'
import { joinCluster } from './join'
import { MASTER_GROUP, MasterState } from './master'
import { MasterDuties } from './masterduty'
import { messageFromWire, messageToWire } from './raftwire'
import { MAX_SCAN_ENTRIES, META_PREFIX, RegionReplica, decodeMeta, metaKey, type ApplyResult } from './region'
import { ValueKeeper } from './values'

/** Bounds of one get_many (docs/protocol.md): keys asked, and bytes of values answered (well
 * under the message size limit). */
const MAX_GET_MANY_KEYS = 1024
const MAX_GET_MANY_BYTES = 32 * 1024 * 1024
/** Keys read from the store at a time for one get_many: the answer's byte bound is checked
 * between the reads, so a request over it stops after at most this many more values. */
const GET_MANY_READ_CHUNK = 64
const EMPTY = Buffer.alloc(0)
/** The longest read lease a region leader grants (docs/metadata-leases.md); a new leader
 * proposes no write for this long after it took over. */
export const LEASE_MAX_MS = 1000
/** File data is never leased (docs/metadata-leases.md, "No leases on file data"). */
const NO_LEASE_ON_BLOCKS = { key: isBlockKey, range: rangeMayHoldBlocks }
const leaseClock = {
  now: () => performance.now(),
  sleep: (ms: number) => new Promise<void>((res) => setTimeout(res, ms).unref()),
}

type Db = ClassicLevel<Buffer, Buffer>

/** The node's LevelDB, at classic-level's defaults (4 MiB memtable, snappy, 8 MiB cache):
 * a 32 MiB memtable and cache without compression, as the local store is tuned, measured worse here, cold
 * metadata reads above all (docs/node-store.md). */
const NODE_STORE_OPTIONS = { keyEncoding: 'buffer', valueEncoding: 'buffer' } as const

/** Bound on remembered (group, peer) pairs; past it the memory starts over (descriptors are
 * sent again until peers answer). */
const MAX_PEER_HOSTS = 100_000

export interface NodeOptions {
  readonly dataDir: string
  /** host:port to listen on (port 0: any). */
  readonly listen: string
  /** host:port other nodes and clients use to reach this one (default: the bound address). */
  readonly advertise?: string
  readonly waypoints: readonly string[]
  readonly secret: string
  readonly logger?: Logger
  readonly tickMs?: number
  readonly heartbeatMs?: number
  /** Snapshot and compact a group's log past this many entries (default 16,384). */
  readonly compactAfterEntries?: number
  /** Settings a NEW cluster starts with (ignored when joining or restarting). */
  readonly settings?: Partial<Settings>
  /** host:port to serve HTTP on (status page, /metrics, /healthz, /readyz); none when unset. */
  readonly http?: string
}

export class ClusterNode {
  readonly log: Logger
  readonly clients: RpcClients
  readonly host: RaftHost
  identity: Identity
  address = ''
  /** Node id -> address, from the cluster index and from Raft batches. */
  readonly addresses = new Map<NodeId, string>()
  /** "group:peer" -> the membership (membershipKey) under which the peer last sent us a message
   * in that group, i.e. it hosts a replica and needs no descriptor in our envelopes. */
  private readonly peerHosts = new Map<string, string>()
  readonly regions = new Map<number, RegionReplica>()
  master: MasterState | null = null
  /** The master leader as last learned (from our own group 0, MasterChanged, heartbeats, waypoints). */
  masterLeader: NodeAddr | null = null
  masterTerm = 0
  readonly duties: MasterDuties
  readonly heartbeatMs: number
  private readonly server: RpcServer
  private heartbeatTimer: NodeJS.Timeout | null = null
  private closed = false
  private readonly startedMs = Date.now()
  /** Regions being created from an incoming message (so two messages do not create it twice). */
  private readonly creating = new Set<number>()
  /** The read leases of each data region this node leads (docs/metadata-leases.md). */
  private readonly leases = new Map<number, LeaseTable>()
  private http: HttpServer | null = null
  /** Decides when segments kept for their values go. */
  readonly keeper: ValueKeeper
  /** More readiness checks (the CLI adds its mount's). */
  readyChecks: (() => Checks) | null = null

  private constructor(readonly opts: NodeOptions, private readonly db: Db, readonly store: SegmentRaftStore) {
    this.log = opts.logger ?? rootLogger('node')
    this.heartbeatMs = opts.heartbeatMs ?? 1000
    this.clients = new RpcClients({ secret: opts.secret, logger: this.log })
    this.server = new RpcServer({ secret: opts.secret, logger: this.log })
    this.identity = { format: 1, clusterId: '', nodeId: 0, joinToken: '', address: '', peers: [] }
    this.host = new RaftHost({
      nodeId: 0,
      store,
      send: (to, msgs) => this.sendRaft(to, msgs),
      logger: rootLogger('raft'),
      tickMs: opts.tickMs,
      compactAfterEntries: opts.compactAfterEntries,
      onSoftState: (group, leader, isLeader) => this.onSoftState(group, leader, isLeader),
      onApplied: (group) => this.onApplied(group),
    })
    this.duties = new MasterDuties(this)
    // Segments the log leaves are kept for the values pointers name in them; the keeper
    // decides when they go (docs/node-store.md, "Steps 2-3"). Set before any sync can free one.
    this.keeper = new ValueKeeper({ db, store, replicas: () => this.regions.values(), logger: this.log })
    store.keepValues((seq) => this.keeper.retired(seq))
  }

  /** Opens the store, serves RPCs, joins or bootstraps a cluster (or rejoins its own), and
   * resolves once the node is a member. */
  static async start(opts: NodeOptions): Promise<ClusterNode> {
    mkdirSync(opts.dataDir, { recursive: true })
    const db: Db = new ClassicLevel<Buffer, Buffer>(path.join(opts.dataDir, 'store'), NODE_STORE_OPTIONS)
    await db.open()
    // The Raft log of every group in the node's own segment files (docs/node-store.md, "The
    // Raft log segments"); snapshots stay in `store/`. A LevelDB-format log is migrated here.
    let store: SegmentRaftStore
    try {
      store = await SegmentRaftStore.over(db, path.join(opts.dataDir, 'store-raft'), { prefix: Buffer.from('R') })
    } catch (err) {
      await db.close().catch(() => undefined)
      throw err
    }
    const node = new ClusterNode(opts, db, store)
    try {
      await node.boot()
    } catch (err) {
      await node.close()
      throw err
    }
    return node
  }

  get nodeId(): number {
    return this.identity.nodeId
  }

  get clusterId(): string {
    return this.identity.clusterId
  }

  private async boot(): Promise<void> {
    series.start()
    if (this.opts.http) {
      this.http = await startHttp({
        listen: this.opts.http,
        logger: rootLogger('http'),
        picture: () => gatherPicture(this.clients, { masterHint: this.masterLeader?.address, waypoints: this.opts.waypoints }),
        health: () => ({ process: this.closed ? 'closing' : true }),
        ready: () => this.readiness(),
      })
    }
    this.server.addRaft({ onBatch: (b) => this.onRaftBatch(b) })
    this.server.addKv({ handle: (r, s) => this.handleKv(r, s) })
    this.server.addMaster(this.duties.handlers())
    this.server.addNodeAdmin({
      masterChanged: async (r) => {
        if (r.clusterId !== this.clusterId) return { error: rpcError(ErrorCode.CLUSTER_MISMATCH, 'another cluster') }
        if (r.master) this.learnMaster(r.master)
        return {}
      },
      changeReplicas: (r) => this.duties.changeReplicas(r),
      status: async () => this.statusReply(),
    })
    this.address = await this.server.listen(this.opts.listen)
    if (this.opts.advertise) this.address = this.opts.advertise
    this.identity = loadIdentity(this.opts.dataDir, this.address)
    if (!this.identity.clusterId) saveIdentity(this.opts.dataDir, this.identity)
    if (this.identity.clusterId) await this.openReplicas()
    if (!this.identity.clusterId) {
      const joined = await joinCluster(this)
      this.identity = { ...this.identity, clusterId: joined.clusterId, nodeId: joined.nodeId }
      saveIdentity(this.opts.dataDir, this.identity)
      if (joined.bootstrap) await this.duties.bootstrap(joined.bootstrap)
    }
    this.setHostId()
    events.nodeId = this.nodeId
    this.addresses.set(this.nodeId, this.address)
    this.host.start()
    // Every replica the store holds is open: a pointer can no longer be taken for dead.
    this.keeper.start()
    this.heartbeatTimer = setInterval(() => {
      void this.duties.everyHeartbeat()
      this.sampleGroups()
    }, this.heartbeatMs)
    this.log.info({ nodeId: this.nodeId, clusterId: this.clusterId, address: this.address }, 'node up')
    void this.duties.everyHeartbeat()
  }

  private setHostId(): void {
    this.host.nodeId = this.nodeId
  }

  /** Loads every replica recorded in the store (tombstones stay gone). */
  private async openReplicas(): Promise<void> {
    this.setHostId()
    for await (const [k, v] of this.db.iterator({ gte: Buffer.from([META_PREFIX]), lt: Buffer.from([META_PREFIX + 1]) })) {
      const group = Number(k.readBigUInt64BE(1))
      const meta = decodeMeta(v)
      if (meta.state === 'tombstone') {
        // Its entries are void: they must not pin Raft log segments (its vote is kept).
        if (this.store.hasUnopened(group)) this.store.dropGroup(group)
        continue
      }
      await this.openGroup(group, meta.region, meta.applied)
    }
    await this.store.sync()
  }

  async openGroup(group: number, region: RegionDescriptor, applied: number, bootstrapVoters: number[] = []): Promise<void> {
    const storage = await this.store.openGroup(group, bootstrapVoters, applied)
    let sm: MasterState | RegionReplica
    if (group === MASTER_GROUP) {
      const m = new MasterState(this.db)
      await m.load()
      sm = this.master = m
    } else {
      const r = new RegionReplica(this.db, region, applied, this.nodeId, this.store)
      this.regions.set(group, r)
      sm = r
    }
    // A crash after a received snapshot was synced into the Raft store but before the state
    // machine installed it leaves the state machine behind the log's start: install it now
    // (the core will not hand that snapshot out again).
    const snap = storage.snapshot()
    if (sm.appliedIndex < snap.meta.index) await sm.restore(snap)
    this.host.addGroup(group, storage, sm)
  }

  // ---------------------------------------------------------------- Raft transport

  private sendRaft(to: NodeId, msgs: { group: number; message: Message }[]): void {
    const address = this.addresses.get(to)
    if (!address) {
      this.log.debug({ to }, 'no address for a Raft peer; messages dropped')
      return
    }
    // An envelope carries its group's descriptor (a node just added creates its replica from
    // it) until the peer has answered in that group under the current membership: from then on
    // it hosts the replica and ignores the descriptor. Built once per group per batch.
    const memo = new Map<number, RegionDescriptor | undefined>()
    const descs = (group: number) => {
      if (this.peerHosts.get(`${group}:${to}`) === this.membershipKey(group)) return undefined
      if (!memo.has(group)) memo.set(group, this.descriptor(group))
      return memo.get(group)
    }
    const batch: RaftBatch = {
      clusterId: this.clusterId,
      fromNode: this.nodeId,
      toNode: to,
      fromAddress: this.address,
      messages: msgs.map(({ group, message }) => ({ regionId: group, region: descs(group), message: messageToWire(message) })),
    }
    this.clients.raft(address).send(batch)
  }

  /** What changes whenever a group's membership does (a peer removed and added again must be
   * sent the descriptor again). */
  private membershipKey(group: number): string {
    if (group !== MASTER_GROUP) return String(this.regions.get(group)?.region.epoch?.confVer ?? -1)
    const c = this.host.confOf(MASTER_GROUP)
    return c ? `${c.voters.join(',')}/${c.learners.join(',')}` : ''
  }

  private notePeerHosts(group: number, peer: NodeId): void {
    const k = `${group}:${peer}`
    const m = this.membershipKey(group)
    if (this.peerHosts.get(k) === m) return
    if (this.peerHosts.size >= MAX_PEER_HOSTS) this.peerHosts.clear()
    this.peerHosts.set(k, m)
  }

  /** The descriptor this node has for a group (the master group's is synthesized). */
  descriptor(group: number): RegionDescriptor | undefined {
    if (group === MASTER_GROUP) {
      const c = this.host.confOf(MASTER_GROUP)
      if (!c) return undefined
      return { id: 0, startKey: Buffer.alloc(0), endKey: Buffer.alloc(0), epoch: { confVer: 0, version: 0 }, voters: [...c.voters], learners: [...c.learners], leader: this.host.leaderOf(MASTER_GROUP) }
    }
    const r = this.regions.get(group)
    return r ? { ...r.region, leader: this.host.leaderOf(group) } : undefined
  }

  private onRaftBatch(b: RaftBatch): void {
    if (this.closed || !this.clusterId || b.clusterId !== this.clusterId || b.toNode !== this.nodeId) return
    if (b.fromNode && b.fromAddress) this.addresses.set(b.fromNode, b.fromAddress)
    for (const env of b.messages ?? []) {
      const m = env.message && messageFromWire(env.message)
      if (!m) continue
      if (this.host.has(env.regionId)) {
        this.notePeerHosts(env.regionId, b.fromNode)
        this.host.step(env.regionId, m)
        continue
      }
      void this.maybeCreateReplica(env.regionId, env.region, m)
    }
  }

  /** A message for a group this node does not host: create the replica if the sender's
   * descriptor lists this node (it was just added), unless a tombstone says it was removed. */
  private async maybeCreateReplica(group: number, region: RegionDescriptor | undefined, m: Message): Promise<void> {
    if (!region || this.creating.has(group)) return
    const members = [...(region.voters ?? []), ...(region.learners ?? [])]
    if (!members.includes(this.nodeId)) return
    this.creating.add(group)
    try {
      const raw = await this.db.get(metaKey(group))
      if (raw !== undefined && decodeMeta(raw).state === 'tombstone') {
        const old = decodeMeta(raw).region
        if ((old.epoch?.confVer ?? 0) >= (region.epoch?.confVer ?? 0)) return
      }
      if (this.host.has(group) || this.closed) return
      this.log.info({ region: group, from: m.from }, 'creating a replica this node was added to')
      events.record({ kind: 'replica-created', regionId: group, subjectNode: this.nodeId, message: `node ${this.nodeId} creates its replica of ${group === MASTER_GROUP ? 'the master group' : `region ${group}`} (added by node ${m.from})` })
      // Starts empty: the leader sends a snapshot first (every group starts at index 1).
      await this.openGroup(group, { ...region, leader: 0 }, 0)
      this.host.step(group, m)
    } catch (err) {
      this.log.warn({ err, region: group }, 'could not create replica')
    } finally {
      this.creating.delete(group)
    }
  }

  private onSoftState(group: number, leader: NodeId, isLeader: boolean): void {
    this.log.info({ region: group, leader, isLeader }, 'group leader changed')
    // Leases granted before are forgotten; a write waits until they have run out.
    this.leases.get(group)?.reset()
    if (isLeader) {
      const term = this.host.status(group)?.term ?? 0
      events.record({ kind: 'leader-changed', regionId: group, subjectNode: this.nodeId, message: `node ${this.nodeId} leads ${group === MASTER_GROUP ? 'the master group' : `region ${group}`} (term ${term})` })
    }
    if (group === MASTER_GROUP) {
      const address = this.addresses.get(leader)
      if (leader && address) this.learnMaster({ leader: { nodeId: leader, address }, term: this.host.status(MASTER_GROUP)?.term ?? 0, voters: [], learners: [] })
      if (isLeader) void this.duties.becameLeader()
    }
  }

  private onApplied(group: number): void {
    const r = this.regions.get(group)
    if (r?.removedSelf) void this.removeReplica(group)
    if (group === MASTER_GROUP && this.master) {
      for (const n of this.master.state.nodes) if (n.address && n.nodeId !== this.nodeId) this.addresses.set(n.nodeId, n.address)
    }
  }

  private async removeReplica(group: number): Promise<void> {
    const r = this.regions.get(group)
    if (!r) return
    this.log.info({ region: group }, 'this replica was removed from its group; deleting its data')
    events.record({ kind: 'replica-removed', regionId: group, subjectNode: this.nodeId, message: `node ${this.nodeId} was removed from region ${group} and deletes its replica` })
    this.host.removeGroup(group)
    this.regions.delete(group)
    await r.destroy()
    // After the tombstone is durable (destroy syncs it): the group's log entries are void.
    this.store.dropGroup(group)
  }

  learnMaster(m: MasterInfo): void {
    if (!m.leader || !m.leader.nodeId) return
    if (m.term < this.masterTerm && this.masterLeader) return
    this.masterTerm = Math.max(this.masterTerm, m.term)
    this.masterLeader = m.leader
    if (m.leader.address) this.addresses.set(m.leader.nodeId, m.leader.address)
  }

  // ---------------------------------------------------------------- KV service

  private async handleKv(req: KvRequest, stream?: KvStream): Promise<KvResponse> {
    if (req.op === 'release') {
      const h = stream && req.leaseHolder ? this.holder(stream, req.regionId, req.leaseHolder) : null
      if (h) this.leases.get(req.regionId)?.release(h, req.release?.revokeId ?? 0)
      return reply(0, {})
    }
    const t0 = performance.now()
    const res = await this.serveKv(req, stream)
    const ms = performance.now() - t0
    series.noteKv(ms)
    const op = req.op ?? 'none'
    metrics.kvServed.inc({ op, code: res.error?.code || 'OK' })
    metrics.kvSeconds.observe({ op }, ms / 1000)
    return res
  }

  private leaseTable(region: number): LeaseTable {
    let t = this.leases.get(region)
    if (!t) this.leases.set(region, (t = new LeaseTable(leaseClock, LEASE_MAX_MS, NO_LEASE_ON_BLOCKS)))
    return t
  }

  /** The lease holder for a client on a stream (one object per stream, region and holder). */
  private holder(stream: KvStream, region: number, holderId: number): LeaseHolder {
    const key = `${region}:${holderId}`
    let h = stream.state.get(key) as LeaseHolder | undefined
    if (!h) {
      h = {
        alive: () => stream.alive(),
        revoke: (revokeId, keys) => stream.push({ id: 0, revoke: { revokeId, regionId: region, leaseHolder: holderId, keys } }),
      }
      stream.state.set(key, h)
    }
    return h
  }

  /** A lease of up to req.leaseMs on `keys` for the asking client, registered before the keys
   * are read (0: none asked, no stream to revoke it on, or a write is under way on a key). */
  private grantLease(req: KvRequest, stream: KvStream | undefined, region: number, keys: readonly Buffer[]): number {
    if (!stream || !req.leaseMs || !req.leaseHolder) return 0
    return this.leaseTable(region).grant(this.holder(stream, region, req.leaseHolder), keys, req.leaseMs)
  }

  /**
   * A patch_commit's body as a plain commit (docs/kv.md, "Partial block writes"): each patch
   * merged into the block as this leader has it applied, that block's version added to the
   * reads (an entry that wrote it before this one applies makes the apply refuse with
   * CONFLICT). The client's own writes stay first, so the leases granted on them are as before.
   */
  private async mergePatches(r: RegionReplica, body: CommitOp): Promise<{ body: CommitOp } | { error: ReturnType<typeof rpcError> }> {
    const patches = body.patches ?? []
    if (patches.length === 0) return { error: rpcError(ErrorCode.INVALID, 'patch_commit without patches') }
    const seen = new Set<string>([...(body.writes ?? []).map((w) => w.key.toString('latin1')), ...(body.reads ?? []).map((x) => x.key.toString('latin1'))])
    const reads = [...(body.reads ?? [])]
    const writes = [...(body.writes ?? [])]
    for (const p of patches) {
      const key = p.key ?? EMPTY
      const k = key.toString('latin1')
      if (seen.has(k)) return { error: rpcError(ErrorCode.INVALID, `key ${key.toString('hex')} is patched and also read or written in one commit`) }
      seen.add(k)
      if (!keyInRegion(key, r.region)) return { error: rpcError(ErrorCode.KEY_NOT_IN_REGION, 'a patched key outside the region', { region: this.descriptor(r.id) }) }
      const v = await r.get(key)
      let value: Buffer
      try {
        value = mergePatch(v?.value, (p.ranges ?? []).map((x) => ({ offset: x.offset ?? 0, data: x.data ?? EMPTY, crc: x.crc ?? 0 })))
      } catch (err) {
        if (!(err instanceof PatchError)) throw err
        this.log.warn({ region: r.id, key: key.toString('hex'), err: err.message }, 'block patch refused')
        return { error: rpcError(ErrorCode.INVALID, `key ${key.toString('hex')}: ${err.message}`) }
      }
      writes.push({ key, value, delete: false })
      reads.push({ key, version: v?.version ?? 0 })
    }
    return { body: { reads, scans: body.scans ?? [], writes, txnId: body.txnId } }
  }

  private async serveKv(req: KvRequest, stream?: KvStream): Promise<KvResponse> {
    const id = req.id
    const r = this.regions.get(req.regionId)
    if (!r) return reply(id, { error: rpcError(ErrorCode.REGION_NOT_FOUND, `region ${req.regionId} is not on node ${this.nodeId}`) })
    const cur = r.region.epoch ?? { confVer: 0, version: 0 }
    if (!req.epoch || req.epoch.version !== cur.version || req.epoch.confVer !== cur.confVer) {
      return reply(id, { error: rpcError(ErrorCode.EPOCH_NOT_MATCH, `region ${r.id} is at epoch ${cur.confVer}/${cur.version}`, { region: this.descriptor(r.id) }) })
    }
    if (!this.host.isLeader(r.id)) return reply(id, { error: this.notLeader(r.id, this.host.leaderOf(r.id)) })
    try {
      switch (req.op) {
        case 'get': {
          const key = req.get?.key ?? Buffer.alloc(0)
          if (!keyInRegion(key, r.region)) return reply(id, { error: rpcError(ErrorCode.KEY_NOT_IN_REGION, 'key outside the region', { region: this.descriptor(r.id) }) })
          const leaseMs = this.grantLease(req, stream, r.id, [key])
          await this.host.readBarrier(r.id)
          const v = await r.get(key)
          return v ? reply(id, { found: true, value: v.value, version: v.version, leaseMs }) : reply(id, { found: false, leaseMs })
        }
        case 'getMany': {
          const ks = req.getMany?.keys ?? []
          if (ks.length > MAX_GET_MANY_KEYS) return reply(id, { error: rpcError(ErrorCode.INVALID, `get_many of ${ks.length} keys (at most ${MAX_GET_MANY_KEYS})`) })
          if (ks.some((k) => !keyInRegion(k, r.region))) return reply(id, { error: rpcError(ErrorCode.KEY_NOT_IN_REGION, 'a key outside the region', { region: this.descriptor(r.id) }) })
          const leaseMs = this.grantLease(req, stream, r.id, ks)
          await this.host.readBarrier(r.id)
          const entries: { key: Buffer; value: Buffer; version: number }[] = []
          let bytes = 0
          for (let at = 0; at < ks.length; at += GET_MANY_READ_CHUNK) {
            const chunk = ks.slice(at, at + GET_MANY_READ_CHUNK)
            const vs = await r.getMany(chunk)
            for (let i = 0; i < chunk.length; i++) {
              const v = vs[i]
              bytes += v ? v.value.length : 0
              entries.push(v ? { key: chunk[i], value: v.value, version: v.version } : { key: chunk[i], value: EMPTY, version: 0 })
            }
            if (bytes > MAX_GET_MANY_BYTES) return reply(id, { error: rpcError(ErrorCode.TOO_LARGE, `get_many answer over ${MAX_GET_MANY_BYTES} bytes; ask for fewer keys`) })
          }
          return reply(id, { entries, leaseMs })
        }
        case 'scan': {
          const s = req.scan
          if (!s) return reply(id, { error: rpcError(ErrorCode.INVALID, 'scan without a range') })
          if (!keyInRegion(s.start ?? Buffer.alloc(0), r.region)) return reply(id, { error: rpcError(ErrorCode.KEY_NOT_IN_REGION, 'scan start outside the region', { region: this.descriptor(r.id) }) })
          const start = s.start ?? Buffer.alloc(0)
          const end = s.end ?? Buffer.alloc(0)
          const limit = s.limit ?? 0
          // A range lease (docs/metadata-leases.md, "Directory leases"): only on a range this
          // region holds whole, registered before the read; an answer cut by its limit is not
          // the whole range, so it is not leased (the stray registration only costs a revoke).
          const endKey = r.region.endKey ?? Buffer.alloc(0)
          const whole = end.length > 0 && (endKey.length === 0 || Buffer.compare(end, endKey) <= 0)
          const leaseMs = whole && stream && req.leaseMs && req.leaseHolder ? this.leaseTable(r.id).grantRange(this.holder(stream, r.id, req.leaseHolder), start, end, req.leaseMs) : 0
          await this.host.readBarrier(r.id)
          const entries = await r.scan(start, end, limit)
          // Cut by the asked limit, or by the region's own bound when none was asked.
          const cut = entries.length >= (limit > 0 ? Math.min(limit, MAX_SCAN_ENTRIES) : MAX_SCAN_ENTRIES)
          return reply(id, { entries, leaseMs: cut ? 0 : leaseMs })
        }
        case 'commit':
        case 'patchCommit': {
          const asked = req.op === 'commit' ? req.commit : req.patchCommit
          if (!asked) return reply(id, { error: rpcError(ErrorCode.INVALID, 'commit without a body') })
          let body: CommitOp = asked
          const ownWrites = asked.writes ?? []
          if (req.op === 'commit' && (body.patches?.length ?? 0) > 0) return reply(id, { error: rpcError(ErrorCode.INVALID, 'block patches belong in patch_commit (docs/protocol.md)') })
          if (req.op === 'patchCommit') {
            const merged = await this.mergePatches(r, body)
            if ('error' in merged) return reply(id, { error: merged.error })
            body = merged.body
          }
          const data = encode('RegionCommand', { epoch: cur, commit: { reads: body.reads, scans: body.scans, writes: body.writes, txnId: body.txnId } })
          // Leases on what it writes are revoked first (docs/metadata-leases.md); the writer's
          // own are not: it drops them itself.
          const writer = stream && req.leaseHolder ? this.holder(stream, r.id, req.leaseHolder) : null
          const done = await this.leaseTable(r.id).beginWrite(writer, (body.writes ?? []).map((w) => w.key))
          let res: ApplyResult
          try {
            res = (await this.host.propose(r.id, data)) as ApplyResult
          } finally {
            done()
          }
          // The writer knows what it wrote: a lease on it, unless another write is marked on a
          // key (granted in the same turn as the unmark, so no write comes between). The client
          // uses it only if no commit of its own at a higher index wrote the key.
          // File data blocks are never leased: the lease covers the commit's other keys.
          if (res.ok) {
            const leased = writer && req.leaseMs ? ownWrites.filter((w) => !isBlockKey(w.key)) : []
            return reply(id, { index: res.index, leaseMs: writer && req.leaseMs && leased.length > 0 ? this.leaseTable(r.id).grant(writer, leased.map((w) => w.key), req.leaseMs) : 0 })
          }
          return reply(id, { error: rpcError(res.code, res.message, res.code === ErrorCode.EPOCH_NOT_MATCH ? { region: this.descriptor(r.id) } : undefined) })
        }
        default:
          return reply(id, { error: rpcError(ErrorCode.INVALID, NO_OPERATION) })
      }
    } catch (err) {
      if (err instanceof NotLeaderError) return reply(id, { error: this.notLeader(r.id, err.leader) })
      this.log.warn({ err, region: r.id }, 'kv request failed')
      return reply(id, { error: rpcError(ErrorCode.INTERNAL, (err as Error).message) })
    }
  }

  notLeader(group: number, leader: NodeId): RpcErrorInfo {
    const address = leader ? this.addresses.get(leader) : undefined
    return rpcError(ErrorCode.NOT_LEADER, `node ${this.nodeId} does not lead group ${group}`, {
      leader: leader && address ? { nodeId: leader, address } : undefined,
      region: group === MASTER_GROUP ? undefined : this.descriptor(group),
    })
  }

  // ---------------------------------------------------------------- status

  regionStats(): RegionStat[] {
    const out: RegionStat[] = []
    for (const [id, r] of this.regions) {
      out.push({ region: this.descriptor(id), isLeader: this.host.isLeader(id), appliedIndex: r.appliedIndex, sizeBytes: r.sizeBytes, keys: 0 })
    }
    return out
  }

  capacity(): { capacityBytes: number; freeBytes: number } {
    try {
      const s = statfsSync(this.opts.dataDir)
      return { capacityBytes: s.bsize * s.blocks, freeBytes: s.bsize * s.bavail }
    } catch {
      return { capacityBytes: os.totalmem(), freeBytes: os.freemem() }
    }
  }

  private statusReply() {
    const groups = this.host.groupIds().map((g) => {
      const s = this.host.status(g)
      return {
        regionId: g,
        role: s?.role ?? 'unknown',
        leader: s?.leader ?? 0,
        term: s?.term ?? 0,
        commitIndex: s?.commit ?? 0,
        appliedIndex: s?.applied ?? 0,
        voters: [...(s?.confState.voters ?? [])],
        learners: [...(s?.confState.learners ?? [])],
        region: this.descriptor(g),
        sizeBytes: this.regions.get(g)?.sizeBytes ?? 0,
        logEntries: s ? Math.max(0, s.lastIndex - s.firstIndex + 1) : 0,
      }
    })
    const cap = this.capacity()
    return {
      clusterId: this.clusterId,
      nodeId: this.nodeId,
      address: this.address,
      rssBytes: process.memoryUsage().rss,
      uptimeMs: Date.now() - this.startedMs,
      groups,
      version: '0.1.0',
      cpuCores: series.cpuCores,
      loopLagMs: series.loopLagMs,
      events: events.recent(),
      tasks: tasks.list(),
      seriesStepMs: SERIES_STEP_MS,
      kvOps: series.kvOps,
      kvLatencyMs: series.kvLatencyMs,
      fuseOps: series.fuseOps,
      httpAddress: this.http?.address ?? '',
      capacityBytes: cap.capacityBytes,
      freeBytes: cap.freeBytes,
    }
  }

  /** Readiness for /readyz: a member of a cluster, a master leader known, every hosted group
   * led by someone, and whatever the CLI adds (its mount). */
  readiness(): Checks {
    const c: Checks = {}
    c.joined = this.clusterId && this.nodeId ? true : 'not a member of a cluster yet'
    c.master = this.masterLeader?.address ? true : 'no master leader known'
    const leaderless = this.host.groupIds().filter((g) => !this.host.leaderOf(g))
    c.groups = leaderless.length === 0 ? true : `no leader known for ${leaderless.map((g) => (g === MASTER_GROUP ? 'the master group' : `region ${g}`)).join(', ')}`
    if (this.closed) c.closing = 'the node is shutting down'
    return { ...c, ...(this.readyChecks?.() ?? {}) }
  }

  /** Once a heartbeat: progress of learners catching up and of snapshots being sent by the
   * groups this node leads (re-replication), as tasks for the status page. */
  private sampleGroups(): void {
    const cap = this.capacity()
    metrics.nodeCapacityBytes.set(cap.capacityBytes)
    metrics.nodeFreeBytes.set(cap.freeBytes)
    void this.store.diskBytes().then((b) => metrics.storeDiskBytes.set(b), () => undefined)
    const seen = new Set<string>()
    for (const g of this.host.groupIds()) {
      const s = this.host.status(g)
      if (!s || s.role !== 'leader') continue
      const what = g === MASTER_GROUP ? 'the master group' : `region ${g}`
      for (const [peer, pr] of s.progress) {
        if (peer === this.nodeId) continue
        if (pr.snapshotBytes !== undefined) {
          const id = `snapshot:${g}:${peer}`
          seen.add(id)
          tasks.start({ id, kind: 'snapshot-send', label: `${what}: snapshot to node ${peer}`, unit: 'bytes', total: pr.snapshotBytes, regionId: g, nodeId: peer }).update(pr.snapshotAcked ?? 0, pr.snapshotBytes)
        }
        if (pr.isLearner) {
          const id = `re-replication:${g}:${peer}`
          seen.add(id)
          tasks.start({ id, kind: 're-replication', label: `${what}: node ${peer} catching up as a learner`, unit: 'entries', total: s.lastIndex, regionId: g, nodeId: peer }).update(pr.match, s.lastIndex)
        }
      }
    }
    // Work no longer seen is over: sent, promoted, removed, or handed to another leader (which
    // starts its own task under the same id).
    for (const t of tasks.list()) {
      if (!t.finishedMs && (t.kind === 'snapshot-send' || t.kind === 're-replication') && !seen.has(t.id)) tasks.get(t.id)?.finish()
    }
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer)
    await this.http?.close().catch(() => undefined)
    this.duties.stop()
    await this.keeper.stop()
    await this.host.close()
    await this.server.close().catch(() => undefined)
    this.clients.close()
    for (const r of this.regions.values()) await r.landed().catch(() => undefined)
    await this.store.sync().catch(() => undefined)
    await this.store.close().catch(() => undefined)
    await this.db.close().catch(() => undefined)
  }

  get isClosed(): boolean {
    return this.closed
  }
}

export type { ApplyResult }

/** A KvResponse with every field not given at its zero value. */
function reply(id: number, r: Partial<KvResponse>): KvResponse {
  return { id, found: false, value: Buffer.alloc(0), version: 0, entries: [], index: 0, leaseMs: 0, ...r }
}
