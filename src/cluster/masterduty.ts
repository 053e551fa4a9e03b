// What a node does for the master group: on every node, heartbeat the master leader; on the
// master leader, answer Join/Heartbeat/GetClusterMap, register on the waypoints, tell every node
// when it becomes leader, keep node states, size the master group (1, 3, 5 members), replace a
// member silent for too long, and grow each region's replica set as nodes join (learner first,
// then voter). Every decision is a command in the master Raft log or a request to a region
// leader, retried on the next heartbeat when it fails: a new leader simply carries on.
import { ConfChangeType } from '../raft'
import {
  addressProblem,
  TOKEN_RULE,
  ErrorCode,
  newerEpoch,
  rpcError,
  type ChangeReplicasRequest,
  type ChangeReplicasResponse,
  type GetClusterMapResponse,
  type HeartbeatRequest,
  type HeartbeatResponse,
  type JoinRequest,
  type JoinResponse,
  type MasterCommand,
  type MasterInfo,
  type NodeInfo,
  type RegionDescriptor,
} from '../rpc'
import { events, metrics } from '../observe'
import { NotLeaderError } from './host'
import { saveIdentity } from './identity'
import { MASTER_GROUP, encodeMasterCommand, mergeSettings, type MasterResult } from './master'
import type { ClusterNode } from './node'

interface Live {
  atMs: number
  capacityBytes: number
  freeBytes: number
  rssBytes: number
}

export class MasterDuties {
  /** Heartbeats this leader received (memory only: a new leader starts everyone fresh). */
  private readonly live = new Map<number, Live>()
  private leaderSinceMs = 0
  private readonly inflight = new Set<string>()
  private lastMapVersion = -1
  /** Waypoints already reported as serving another cluster (logged once each). */
  private readonly warnedOther = new Set<string>()
  private stopped = false

  constructor(private readonly node: ClusterNode) {}

  stop(): void {
    this.stopped = true
  }

  private get isLeader(): boolean {
    return this.node.host.isLeader(MASTER_GROUP)
  }

  masterInfo(): MasterInfo {
    const s = this.node.host.status(MASTER_GROUP)
    const leader = s?.leader ?? 0
    return {
      leader: leader ? { nodeId: leader, address: this.node.addresses.get(leader) ?? '' } : undefined,
      term: s?.term ?? 0,
      voters: [...(s?.confState.voters ?? [])],
      learners: [...(s?.confState.learners ?? [])],
    }
  }

  private notLeader(): { error: ReturnType<typeof rpcError> } {
    const hint = this.node.host.has(MASTER_GROUP) ? this.node.host.leaderOf(MASTER_GROUP) : this.node.masterLeader?.nodeId ?? 0
    return { error: this.node.notLeader(MASTER_GROUP, hint) }
  }

  private propose(c: MasterCommand): Promise<MasterResult> {
    return this.node.host.propose(MASTER_GROUP, encodeMasterCommand(c)) as Promise<MasterResult>
  }

  // ---------------------------------------------------------------- bootstrap

  /** This node creates the cluster: the master group and the first region, both with it alone. */
  async bootstrap(b: { clusterId: string }): Promise<void> {
    const n = this.node
    n.host.nodeId = n.nodeId
    const first: RegionDescriptor = { id: 1, startKey: Buffer.alloc(0), endKey: Buffer.alloc(0), epoch: { confVer: 1, version: 1 }, voters: [n.nodeId], learners: [], leader: 0 }
    await n.openGroup(MASTER_GROUP, { id: 0, startKey: Buffer.alloc(0), endKey: Buffer.alloc(0), epoch: { confVer: 1, version: 1 }, voters: [n.nodeId], learners: [], leader: 0 }, 0, [n.nodeId])
    await n.openGroup(first.id, first, 0, [n.nodeId])
    this.pendingBootstrap = { clusterId: b.clusterId, region: first }
    n.host.campaign(MASTER_GROUP)
    n.host.campaign(first.id)
  }

  private pendingBootstrap: { clusterId: string; region: RegionDescriptor } | null = null

  async becameLeader(): Promise<void> {
    const n = this.node
    this.leaderSinceMs = Date.now()
    this.live.clear()
    n.log.info({ term: n.host.status(MASTER_GROUP)?.term }, 'this node leads the master group')
    if (this.pendingBootstrap && n.master && !n.master.state.clusterId) {
      const b = this.pendingBootstrap
      const cap = n.capacity()
      const r = await this.propose({
        cmd: 'bootstrap',
        bootstrap: {
          clusterId: b.clusterId,
          firstNode: { nodeId: n.nodeId, address: n.address, state: 'NODE_UP', ...cap, lastHeartbeatMs: Date.now(), joinedMs: Date.now(), rssBytes: 0 },
          firstRegion: b.region,
          settings: mergeSettings(n.opts.settings),
          createdMs: Date.now(),
        },
      }).catch((err: Error) => ({ ok: false as const, message: err.message }))
      if (r.ok) this.pendingBootstrap = null
      else n.log.warn({ message: r.message }, 'bootstrap command failed; retrying at the next heartbeat')
    }
    await this.announce()
  }

  /** Registers on every waypoint and tells every node, so nobody waits for a timeout. */
  private async announce(): Promise<void> {
    const n = this.node
    const info = this.masterInfo()
    if (!info.leader) return
    await Promise.all([
      this.announceToWaypoints(),
      ...(n.master?.state.nodes ?? [])
        .filter((x) => x.nodeId !== n.nodeId && x.state !== 'NODE_REMOVED' && x.address)
        .map((x) => n.clients.admin(x.address).masterChanged({ clusterId: n.clusterId, master: info }, { timeoutMs: 1000 }).catch(() => undefined)),
    ])
  }

  // ---------------------------------------------------------------- every heartbeat

  async everyHeartbeat(): Promise<void> {
    if (this.stopped || this.node.isClosed) return
    try {
      if (this.isLeader) {
        this.gaugeCluster()
        await this.leaderTick()
      } else {
        // Only the master leader reports the cluster's gauges, so that a sum over nodes is right.
        metrics.clusterNodes.reset()
        metrics.clusterRegions.reset()
        await this.sendHeartbeat()
      }
    } catch (err) {
      this.node.log.debug({ err }, 'heartbeat round failed')
    }
  }

  private async findMaster(): Promise<string | null> {
    const n = this.node
    const local = n.host.has(MASTER_GROUP) ? n.host.leaderOf(MASTER_GROUP) : 0
    if (local && n.addresses.get(local)) return n.addresses.get(local) as string
    if (n.masterLeader?.address) return n.masterLeader.address
    for (const w of n.opts.waypoints) {
      try {
        const m = await n.clients.waypoint(w).getMaster({}, { timeoutMs: 1000 })
        if (m.known && m.clusterId === n.clusterId && m.leader) {
          n.learnMaster({ leader: m.leader, term: m.term, voters: [], learners: [] })
          return m.leader.address
        }
        if (m.known && m.clusterId !== n.clusterId && !this.warnedOther.has(w)) {
          this.warnedOther.add(w)
          n.log.error({ waypoint: w, theirCluster: m.clusterId, ourCluster: n.clusterId }, 'this waypoint serves another cluster; this node never joins another cluster (check --waypoints, or remove the data dir to make a new node)')
        }
      } catch {
        // next one
      }
    }
    return n.identity.peers[Math.floor(Math.random() * n.identity.peers.length)] ?? null
  }

  private async sendHeartbeat(): Promise<void> {
    const n = this.node
    const at = await this.findMaster()
    if (!at) return
    const req: HeartbeatRequest = { clusterId: n.clusterId, nodeId: n.nodeId, address: n.address, ...n.capacity(), rssBytes: process.memoryUsage().rss, regions: n.regionStats() }
    let res: HeartbeatResponse
    try {
      res = await n.clients.master(at).heartbeat(req, { timeoutMs: 2000 })
    } catch (err) {
      n.masterLeader = null
      throw err
    }
    if (res.error?.code) {
      if (res.error.code === ErrorCode.NOT_LEADER && res.error.leader) n.learnMaster({ leader: res.error.leader, term: 0, voters: [], learners: [] })
      else n.masterLeader = null
      return
    }
    if (res.master) n.learnMaster(res.master)
    if (res.mapVersion !== this.lastMapVersion) await this.refreshMap(at, res.mapVersion)
  }

  /** Refreshes the address book (and the remembered master peers) from the cluster map. */
  private async refreshMap(at: string, version: number): Promise<void> {
    const n = this.node
    const map = await n.clients.master(at).getClusterMap({}, { timeoutMs: 2000 })
    if (map.error?.code) return
    for (const x of map.nodes ?? []) if (x.address && x.nodeId !== n.nodeId) n.addresses.set(x.nodeId, x.address)
    this.lastMapVersion = version
    const peers = (map.master?.voters ?? []).map((id) => n.addresses.get(id)).filter((a): a is string => !!a && a !== n.address)
    if (peers.join(',') !== n.identity.peers.join(',')) {
      n.identity = { ...n.identity, peers }
      saveIdentity(n.opts.dataDir, n.identity)
    }
  }

  private async leaderTick(): Promise<void> {
    const n = this.node
    const m = n.master
    if (!m) return
    if (!m.state.clusterId) {
      if (this.pendingBootstrap) await this.becameLeader()
      return
    }
    this.live.set(n.nodeId, { atMs: Date.now(), ...n.capacity(), rssBytes: process.memoryUsage().rss })
    this.noteRegions(n.regionStats())
    await this.announceToWaypoints()
    await this.updateNodeStates()
    await this.sizeMasterGroup()
    await this.growRegions()
  }

  private async announceToWaypoints(): Promise<void> {
    const n = this.node
    const info = this.masterInfo()
    if (!info.leader) return
    const members = info.voters.map((id) => ({ nodeId: id, address: n.addresses.get(id) ?? '' }))
    await Promise.all(n.opts.waypoints.map((w) => n.clients.waypoint(w).setMaster({ clusterId: n.clusterId, leader: info.leader, term: info.term, members }, { timeoutMs: 1000 }).catch(() => undefined)))
  }

  private lastHeard(id: number): number {
    return this.live.get(id)?.atMs ?? this.leaderSinceMs
  }

  private async once(key: string, fn: () => Promise<unknown>): Promise<void> {
    if (this.inflight.has(key)) return
    this.inflight.add(key)
    try {
      await fn()
    } catch (err) {
      if (!(err instanceof NotLeaderError)) this.node.log.info({ err: (err as Error).message, key }, 'master action failed; will retry')
    } finally {
      this.inflight.delete(key)
    }
  }

  private async updateNodeStates(): Promise<void> {
    const m = this.node.master
    if (!m) return
    const now = Date.now()
    const downAfter = m.settings.downAfterMs
    for (const x of m.state.nodes) {
      if (x.state === 'NODE_REMOVED') continue
      const silent = now - this.lastHeard(x.nodeId) > downAfter
      const want = silent ? 'NODE_DOWN' : 'NODE_UP'
      const l = this.live.get(x.nodeId)
      if (want !== x.state) {
        this.node.log.info({ nodeId: x.nodeId, state: want }, 'node state changed')
        void this.once(`node-${x.nodeId}`, async () => {
          const r = await this.propose({ cmd: 'updateNode', updateNode: { node: { ...x, state: want, lastHeartbeatMs: l?.atMs ?? x.lastHeartbeatMs } } })
          if (!r.ok) return
          if (want === 'NODE_DOWN') events.record({ kind: 'node-down', level: 'warn', subjectNode: x.nodeId, message: `node ${x.nodeId} (${x.address}) is down: no heartbeat for ${(downAfter / 1000).toFixed(0)} s` })
          else events.record({ kind: 'node-up', subjectNode: x.nodeId, message: `node ${x.nodeId} (${x.address}) is up again` })
        })
      }
    }
  }

  /** The master leader's cluster gauges (nodes by state). */
  private gaugeCluster(): void {
    const m = this.node.master
    if (!m) return
    const by: Record<string, number> = { up: 0, down: 0, removed: 0 }
    for (const x of m.state.nodes) by[x.state === 'NODE_UP' ? 'up' : x.state === 'NODE_DOWN' ? 'down' : 'removed'] = (by[x.state === 'NODE_UP' ? 'up' : x.state === 'NODE_DOWN' ? 'down' : 'removed'] ?? 0) + 1
    for (const [state, v] of Object.entries(by)) metrics.clusterNodes.set({ state }, v)
    const upIds = new Set(m.state.nodes.filter((x) => x.state === 'NODE_UP').map((x) => x.nodeId))
    const want = Math.min(Math.max(1, m.settings.dataReplicas), this.countedNodes().length)
    const health: Record<string, number> = { ok: 0, under_replicated: 0, unavailable: 0 }
    for (const r of m.state.regions) {
      const v = r.voters ?? []
      const up = v.filter((id) => upIds.has(id)).length
      const h = up < Math.floor(v.length / 2) + 1 ? 'unavailable' : up < v.length || v.length < want ? 'under_replicated' : 'ok'
      health[h] = (health[h] ?? 0) + 1
    }
    for (const [h, v] of Object.entries(health)) metrics.clusterRegions.set({ health: h }, v)
  }

  /** Nodes that count: every node not removed. */
  private countedNodes(): NodeInfo[] {
    return (this.node.master?.state.nodes ?? []).filter((x) => x.state !== 'NODE_REMOVED')
  }

  private fresh(id: number): boolean {
    const m = this.node.master
    return !!m && Date.now() - this.lastHeard(id) <= m.settings.downAfterMs && this.live.has(id)
  }

  private async sizeMasterGroup(): Promise<void> {
    const n = this.node
    const m = n.master
    const st = n.host.status(MASTER_GROUP)
    if (!m || !st) return
    const total = this.countedNodes().length
    const max = Math.max(1, m.settings.maxMasters)
    const goal = Math.min(max, total >= 5 ? 5 : total >= 3 ? 3 : 1)
    const voters = st.confState.voters
    const learners = st.confState.learners
    const now = Date.now()
    const learner = learners[0]
    if (learner !== undefined) {
      const pr = st.progress.get(learner)
      if (pr && pr.match >= st.commit) {
        n.log.info({ nodeId: learner }, 'master group: promoting learner to voter')
        await this.once('mrg', async () => {
          await n.host.proposeConfChange(MASTER_GROUP, { type: ConfChangeType.AddVoter, nodeId: learner })
          events.record({ kind: 'master-member-added', subjectNode: learner, message: `node ${learner} is a voter of the master group` })
        })
      } else if (!this.fresh(learner) && now - this.leaderSinceMs > m.settings.downAfterMs) {
        await this.once('mrg', () => n.host.proposeConfChange(MASTER_GROUP, { type: ConfChangeType.RemoveNode, nodeId: learner }))
      }
      return
    }
    const dead = voters.filter((v) => v !== n.nodeId && now - this.lastHeard(v) > m.settings.memberReplaceAfterMs)
    if (dead.length > 0 && voters.length > goal) {
      n.log.warn({ nodeId: dead[0] }, 'master group: removing a member silent for too long')
      const gone = dead[0] as number
      await this.once('mrg', async () => {
        await n.host.proposeConfChange(MASTER_GROUP, { type: ConfChangeType.RemoveNode, nodeId: gone })
        events.record({ kind: 'master-member-removed', level: 'warn', subjectNode: gone, message: `node ${gone} was removed from the master group after ${(m.settings.memberReplaceAfterMs / 1000).toFixed(0)} s of silence` })
      })
      return
    }
    if (voters.length < goal + (dead.length > 0 ? 1 : 0)) {
      const candidate = this.countedNodes()
        .filter((x) => !voters.includes(x.nodeId) && this.fresh(x.nodeId))
        .sort((a, b) => a.nodeId - b.nodeId)[0]
      if (!candidate) return
      n.addresses.set(candidate.nodeId, candidate.address)
      n.log.info({ nodeId: candidate.nodeId, goal }, 'master group: adding a member (learner first)')
      await this.once('mrg', async () => {
        await n.host.proposeConfChange(MASTER_GROUP, { type: ConfChangeType.AddLearner, nodeId: candidate.nodeId })
        events.record({ kind: 'master-member-adding', subjectNode: candidate.nodeId, message: `node ${candidate.nodeId} joins the master group as a learner (goal ${goal} members)` })
      })
    }
  }

  /** Records region descriptors reported by their leaders when they are newer. */
  private noteRegions(stats: HeartbeatRequest['regions'], from?: number): void {
    const m = this.node.master
    if (!m) return
    for (const s of stats ?? []) {
      const r = s.region
      if (!s.isLeader || !r || r.id === MASTER_GROUP) continue
      const known = m.region(r.id)
      const reported = { ...r, leader: from ?? this.node.nodeId }
      if (!known || newerEpoch(reported, known) || known.leader !== reported.leader) {
        void this.once(`region-${r.id}`, () => this.propose({ cmd: 'putRegion', putRegion: { region: reported } }))
      }
    }
  }

  private async growRegions(): Promise<void> {
    const n = this.node
    const m = n.master
    if (!m) return
    const total = this.countedNodes().length
    const desired = Math.min(Math.max(1, m.settings.dataReplicas), total)
    for (const r of m.state.regions) {
      const leader = r.leader
      const at = leader ? (leader === n.nodeId ? n.address : n.addresses.get(leader)) : undefined
      if (!leader || !at) continue
      const members = [...(r.voters ?? []), ...(r.learners ?? [])]
      let change: { change: 'ADD_LEARNER' | 'PROMOTE_LEARNER'; target: NodeInfo } | null = null
      const learner = (r.learners ?? [])[0]
      if (learner !== undefined) {
        const t = m.node(learner)
        if (t) change = { change: 'PROMOTE_LEARNER', target: t }
      } else if ((r.voters ?? []).length < desired) {
        const candidate = this.countedNodes()
          .filter((x) => !members.includes(x.nodeId) && this.fresh(x.nodeId))
          .sort((a, b) => b.freeBytes - a.freeBytes || a.nodeId - b.nodeId)[0]
        if (candidate) change = { change: 'ADD_LEARNER', target: candidate }
      }
      if (!change) continue
      const c = change
      await this.once(`grow-${r.id}`, async () => {
        const res = await n.clients.admin(at).changeReplicas(
          { clusterId: n.clusterId, regionId: r.id, epoch: r.epoch, change: c.change, target: { nodeId: c.target.nodeId, address: c.target.address } },
          { timeoutMs: 5000 },
        )
        if (res.error?.code && res.error.code !== ErrorCode.BUSY) n.log.info({ region: r.id, code: res.error.code, message: res.error.message }, 'replica change refused')
        if (!res.error?.code) {
          if (c.change === 'ADD_LEARNER') events.record({ kind: 're-replication-started', regionId: r.id, subjectNode: c.target.nodeId, message: `region ${r.id}: re-replication to node ${c.target.nodeId} started (${(r.voters ?? []).length} of ${desired} voters)` })
          else events.record({ kind: 're-replication-finished', regionId: r.id, subjectNode: c.target.nodeId, message: `region ${r.id}: node ${c.target.nodeId} caught up and is a voter` })
        }
        if (res.region) this.noteRegions([{ region: res.region, isLeader: true, appliedIndex: 0, sizeBytes: 0, keys: 0 }], leader)
      })
    }
  }

  // ---------------------------------------------------------------- region leader side

  /** On a region's leader: one replica change asked for by the master. */
  async changeReplicas(req: ChangeReplicasRequest): Promise<ChangeReplicasResponse> {
    const n = this.node
    if (req.clusterId !== n.clusterId) return { error: rpcError(ErrorCode.CLUSTER_MISMATCH, 'another cluster') }
    const r = n.regions.get(req.regionId)
    if (!r) return { error: rpcError(ErrorCode.REGION_NOT_FOUND, `region ${req.regionId} is not here`) }
    if (!n.host.isLeader(r.id)) return { error: n.notLeader(r.id, n.host.leaderOf(r.id)) }
    const cur = r.region.epoch ?? { confVer: 0, version: 0 }
    if (!req.epoch || req.epoch.confVer !== cur.confVer || req.epoch.version !== cur.version) {
      return { error: rpcError(ErrorCode.EPOCH_NOT_MATCH, 'stale region epoch', { region: n.descriptor(r.id) }), region: n.descriptor(r.id) }
    }
    const t = req.target
    if (!t || !t.nodeId) return { error: rpcError(ErrorCode.INVALID, 'no target node') }
    if (t.address) n.addresses.set(t.nodeId, t.address)
    try {
      switch (req.change) {
        case 'ADD_LEARNER':
          await n.host.proposeConfChange(r.id, { type: ConfChangeType.AddLearner, nodeId: t.nodeId })
          break
        case 'PROMOTE_LEARNER': {
          const st = n.host.status(r.id)
          const pr = st?.progress.get(t.nodeId)
          if (!st || !pr || pr.match < st.commit) return { error: rpcError(ErrorCode.BUSY, 'learner is still catching up'), region: n.descriptor(r.id) }
          await n.host.proposeConfChange(r.id, { type: ConfChangeType.AddVoter, nodeId: t.nodeId })
          break
        }
        case 'REMOVE_NODE':
          await n.host.proposeConfChange(r.id, { type: ConfChangeType.RemoveNode, nodeId: t.nodeId })
          break
        default:
          return { error: rpcError(ErrorCode.INVALID, `unknown change ${String(req.change)}`) }
      }
    } catch (err) {
      if (err instanceof NotLeaderError) return { error: n.notLeader(r.id, err.leader) }
      throw err
    }
    return { region: n.descriptor(r.id) }
  }

  // ---------------------------------------------------------------- master RPCs

  handlers() {
    return {
      join: (req: JoinRequest) => this.onJoin(req),
      heartbeat: (req: HeartbeatRequest) => this.onHeartbeat(req),
      getClusterMap: async () => this.clusterMap(),
    }
  }

  private async onJoin(req: JoinRequest): Promise<JoinResponse> {
    const n = this.node
    if (!this.isLeader || !n.master?.state.clusterId) return { ...this.notLeader(), clusterId: '', nodeId: 0 }
    const m = n.master
    if (req.clusterId && req.clusterId !== m.state.clusterId) return { error: rpcError(ErrorCode.CLUSTER_MISMATCH, `this is cluster ${m.state.clusterId}`), clusterId: '', nodeId: 0 }
    const bad = addressProblem(req.address) ?? (TOKEN_RULE.test(req.joinToken) ? null : 'a join token is 8 to 128 printable ASCII characters')
    if (bad) return { error: rpcError(ErrorCode.INVALID, `join refused: ${bad}`), clusterId: '', nodeId: 0 }
    try {
      if (req.nodeId) {
        const known = m.node(req.nodeId)
        if (!known) return { error: rpcError(ErrorCode.NODE_REMOVED, `node ${req.nodeId} is not in this cluster`), clusterId: '', nodeId: 0 }
        if (known.address !== req.address) await this.propose({ cmd: 'updateNode', updateNode: { node: { ...known, address: req.address } } })
        return { clusterId: m.state.clusterId, nodeId: req.nodeId, master: this.masterInfo() }
      }
      const r = await this.propose({
        cmd: 'addNode',
        addNode: { joinToken: req.joinToken, node: { nodeId: 0, address: req.address, state: 'NODE_UP', capacityBytes: req.capacityBytes, freeBytes: req.freeBytes, lastHeartbeatMs: Date.now(), joinedMs: Date.now(), rssBytes: 0 } },
      })
      if (!r.ok || !r.nodeId) return { error: rpcError(ErrorCode.INTERNAL, r.ok ? 'no node id' : r.message), clusterId: '', nodeId: 0 }
      n.addresses.set(r.nodeId, req.address)
      this.live.set(r.nodeId, { atMs: Date.now(), capacityBytes: req.capacityBytes, freeBytes: req.freeBytes, rssBytes: 0 })
      n.log.info({ nodeId: r.nodeId, address: req.address }, 'node joined')
      events.record({ kind: 'node-joined', subjectNode: r.nodeId, message: `node ${r.nodeId} (${req.address}) joined the cluster` })
      return { clusterId: m.state.clusterId, nodeId: r.nodeId, master: this.masterInfo() }
    } catch (err) {
      if (err instanceof NotLeaderError) return { ...this.notLeader(), clusterId: '', nodeId: 0 }
      throw err
    }
  }

  private async onHeartbeat(req: HeartbeatRequest): Promise<HeartbeatResponse> {
    const n = this.node
    const m = n.master
    if (!this.isLeader || !m?.state.clusterId) return { ...this.notLeader(), mapVersion: 0 }
    if (req.clusterId !== m.state.clusterId) return { error: rpcError(ErrorCode.CLUSTER_MISMATCH, `this is cluster ${m.state.clusterId}`), mapVersion: 0 }
    const known = m.node(req.nodeId)
    if (!known || known.state === 'NODE_REMOVED') return { error: rpcError(ErrorCode.NODE_REMOVED, `node ${req.nodeId} is not in this cluster`), mapVersion: 0 }
    this.live.set(req.nodeId, { atMs: Date.now(), capacityBytes: req.capacityBytes, freeBytes: req.freeBytes, rssBytes: req.rssBytes })
    if (req.address && addressProblem(req.address)) return { error: rpcError(ErrorCode.INVALID, `heartbeat refused: ${addressProblem(req.address)}`), mapVersion: 0 }
    if (req.address) n.addresses.set(req.nodeId, req.address)
    if (req.address && known.address !== req.address) void this.once(`node-${known.nodeId}`, () => this.propose({ cmd: 'updateNode', updateNode: { node: { ...known, address: req.address } } }))
    this.noteRegions(req.regions, req.nodeId)
    return { master: this.masterInfo(), mapVersion: m.appliedIndex }
  }

  clusterMap(): GetClusterMapResponse {
    const n = this.node
    const m = n.master
    if (!this.isLeader || !m?.state.clusterId) return { ...this.notLeader(), clusterId: '', mapVersion: 0, nodes: [], regions: [] }
    const nodes = m.state.nodes.map((x) => {
      const l = this.live.get(x.nodeId)
      return l ? { ...x, lastHeartbeatMs: l.atMs, capacityBytes: l.capacityBytes, freeBytes: l.freeBytes, rssBytes: l.rssBytes } : { ...x }
    })
    return { clusterId: m.state.clusterId, mapVersion: m.appliedIndex, master: this.masterInfo(), nodes, regions: m.state.regions.map((r) => ({ ...r })), settings: m.settings }
  }
}

