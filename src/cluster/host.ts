// RaftHost: drives every Raft group a node hosts (the master group and its region replicas)
// from one loop over one store. It is the "separate driver" of docs/raft.md: it ticks the pure
// cores, persists their Readys in ONE synced batch for all groups (group commit), sends their
// messages batched per peer, applies committed entries to each group's state machine, and
// settles the proposals and reads waiting on them.
//
// Ordering duties (src/raft/types.ts, Ready): persist, then send, then apply, then advance.
// One exception, as etcd does (Raft thesis 10.2.1): a leader's own `append` messages go out
// before its fsync. That is safe because this loop handles one Ready at a time: a commit index
// covering those entries can only be computed and sent in a later Ready, after this fsync.
import {
  RaftNode,
  ReadOnlyOption,
  SeededRng,
  applyToConfState,
  decodeConfChange,
  saveReady,
  type ConfChange,
  type GroupStorage,
  type Entry,
  type Loc,
  type HardState,
  type RaftLogStore,
  type Message,
  type NodeId,
  type Ready,
  type Role,
  type Snapshot,
  type Status,
} from '../raft'
import { counterCell, metrics, onCollect, type CounterCell } from '../observe/metrics'
import type { Logger } from '../util/log'

/** What a group's state machine does for the host. */
export interface GroupStateMachine {
  /** The index of the last entry applied (persisted with the applied data). */
  readonly appliedIndex: number
  /** Applies committed entries in order (conf changes included: `confAfter` gives the
   * configuration after each conf-change entry). Returns one result per entry. */
  applyEntries(entries: readonly Entry[], confAfter: (e: Entry) => { voters: number[]; learners: number[] }, locate?: (e: Entry) => Loc | undefined): Promise<unknown[]>
  /** An image of the state at appliedIndex, for a snapshot. */
  snapshotData(): Promise<Uint8Array>
  /** Replaces the whole state by a snapshot's image. */
  restore(snap: Snapshot): Promise<void>
  /** Makes everything applied durable (synced). A state machine that has it keeps its state
   * in the node's store: the log is compacted behind it without an image, and images are
   * made only when a follower needs one (docs/node-store.md, "Snapshots"). */
  persistApplied?(): Promise<void>
}

export interface HostOptions {
  readonly nodeId: NodeId
  readonly store: RaftLogStore
  /** Hands the messages of one loop iteration for one peer to the transport. */
  readonly send: (to: NodeId, messages: { group: number; message: Message }[]) => void
  readonly logger: Logger
  readonly tickMs?: number
  readonly electionTicks?: number
  readonly heartbeatTicks?: number
  /** Snapshot and compact a group's log past this many entries (default 16,384). */
  readonly compactAfterEntries?: number
  /** Called when a group's leader or this node's role in it changes. */
  readonly onSoftState?: (group: number, leader: NodeId, isLeader: boolean) => void
  /** Called after a group applied entries (e.g. to notice conf changes). */
  readonly onApplied?: (group: number) => void
}

/** Why a proposal or read did not happen; `leader` is the leader this replica knows (0 = none). */
export class NotLeaderError extends Error {
  readonly code = 'NOT_LEADER'
  constructor(readonly group: number, readonly leader: NodeId, why: string) {
    super(`group ${group}: not leader (${why})`)
  }
}

interface Pending {
  readonly term: number
  readonly resolve: (result: unknown) => void
  readonly reject: (err: Error) => void
}

interface PendingRead {
  readonly resolve: () => void
  readonly reject: (err: Error) => void
  readonly timer: NodeJS.Timeout
  index: number
}

interface Group {
  readonly id: number
  readonly node: RaftNode
  readonly storage: GroupStorage
  readonly sm: GroupStateMachine
  /** Where an entry is durably written in the node's log, when its storage knows (pointer
   * values name those bytes: docs/node-store.md, "Steps 2-3"). */
  readonly locate: ((e: Entry) => Loc | undefined) | undefined
  /** Proposals by log index, settled when that index is applied. */
  readonly proposals: Map<number, Pending>
  readonly reads: Map<string, PendingRead>
  /** Reads whose index is known, waiting for apply. */
  readonly readWaiters: PendingRead[]
  leader: NodeId
  isLeader: boolean
  /** This node's role in the group as of the last soft state (elections are counted from it). */
  role: Role
  /** The last leader known (0 never counts as one), for counting leader changes. */
  lastLeader: NodeId
  /** The hard state last handed to the store (term and vote decide whether a sync is needed). */
  synced: HardState
  readonly m: KindMetrics
}

// ---- metrics: counters per group kind (group 0 is the master group), bumped as cells; the
// gauges (groups, leaders, log entries per group) are computed from the live hosts at scrape.

type Kind = 'master' | 'region'
const kindOf = (group: number): Kind => (group === 0 ? 'master' : 'region')

interface KindMetrics {
  readonly proposals: CounterCell
  readonly committed: CounterCell
  readonly applied: CounterCell
  readonly elections: CounterCell
  readonly leaderChanges: CounterCell
}

function kindMetrics(kind: Kind): KindMetrics {
  return {
    proposals: counterCell(metrics.raftProposals, { kind }),
    committed: counterCell(metrics.raftCommitted, { kind }),
    applied: counterCell(metrics.raftApplied, { kind }),
    elections: counterCell(metrics.raftElections, { kind }),
    leaderChanges: counterCell(metrics.raftLeaderChanges, { kind }),
  }
}

const KINDS: Record<Kind, KindMetrics> = { master: kindMetrics('master'), region: kindMetrics('region') }

/** Hosts not closed yet (one per node process; tests may run several in one process). */
const liveHosts = new Set<RaftHost>()

onCollect(metrics.raftGroups, () => {
  const n = { master: 0, region: 0 }
  for (const h of liveHosts) for (const id of h.groupIds()) n[kindOf(id)]++
  metrics.raftGroups.set({ kind: 'master' }, n.master)
  metrics.raftGroups.set({ kind: 'region' }, n.region)
})
onCollect(metrics.raftLeaders, () => {
  const n = { master: 0, region: 0 }
  for (const h of liveHosts) for (const id of h.groupIds()) if (h.isLeader(id)) n[kindOf(id)]++
  metrics.raftLeaders.set({ kind: 'master' }, n.master)
  metrics.raftLeaders.set({ kind: 'region' }, n.region)
})
onCollect(metrics.raftLogEntries, () => {
  // Rebuilt each time: a removed group's series goes away with it.
  metrics.raftLogEntries.reset()
  for (const h of liveHosts) for (const [id, entries] of h.logEntries()) metrics.raftLogEntries.set({ region: String(id) }, entries)
})

function noteSnapshot(event: 'taken' | 'compacted' | 'installed' | 'sent', bytes: number, count = 1): void {
  if (count) metrics.raftSnapshots.inc({ event }, count)
  if (bytes) metrics.raftSnapshotBytes.inc({ event }, bytes)
}

/** Bound on reads waiting per group; beyond it reads fail at once (flow control). */
const MAX_PENDING_READS = 10_000
const READ_TIMEOUT_MS = 3_000
/** Entries kept after a compaction, so slightly lagging followers need no snapshot. */
const KEEP_AFTER_COMPACT = 1_000

export class RaftHost {
  /** This node's id in every group; set once, before the first group is added. */
  nodeId: NodeId
  private readonly groups = new Map<number, Group>()
  private readonly tickMs: number
  private readonly electionTicks: number
  private readonly heartbeatTicks: number
  private readonly compactAfter: number
  private readonly rng = new SeededRng((Math.random() * 2 ** 32) >>> 0)
  private timer: NodeJS.Timeout | null = null
  private scheduled = false
  private running = false
  private again = false
  private closed = false
  private readSeq = 0

  constructor(private readonly opts: HostOptions) {
    this.nodeId = opts.nodeId
    this.tickMs = opts.tickMs ?? 100
    this.electionTicks = opts.electionTicks ?? 10
    this.heartbeatTicks = opts.heartbeatTicks ?? 2
    this.compactAfter = opts.compactAfterEntries ?? 16_384
  }

  start(): void {
    this.timer = setInterval(() => this.tick(), this.tickMs)
    this.timer.unref()
    liveHosts.add(this)
  }

  async close(): Promise<void> {
    this.closed = true
    liveHosts.delete(this)
    if (this.timer) clearInterval(this.timer)
    while (this.running) await new Promise((r) => setTimeout(r, 5))
    for (const g of this.groups.values()) this.failAll(g, new NotLeaderError(g.id, 0, 'node shutting down'))
  }

  /** Starts hosting a group whose storage is loaded and whose state machine is at sm.appliedIndex. */
  addGroup(id: number, storage: GroupStorage, sm: GroupStateMachine): void {
    if (this.groups.has(id)) throw new Error(`group ${id} is already hosted`)
    if (this.nodeId === 0) throw new Error('raft host: node id not set')
    const node = new RaftNode({
      id: this.nodeId,
      storage,
      rng: this.rng,
      electionTicks: this.electionTicks,
      heartbeatTicks: this.heartbeatTicks,
      // Not the state machine's applied index: the core must see every committed entry since
      // the snapshot again, or it would miss the membership changes among them (its
      // configuration starts from the snapshot's). apply() skips what the state machine has.
      applied: storage.snapshot().meta.index,
      checkQuorum: true,
      preVote: true,
      // Lease reads: a leader serves reads without a quorum round while its lease holds
      // (clock-rate assumption in docs/raft.md, "Lease reads").
      readOnly: ReadOnlyOption.Lease,
      // Followers learn the commit index from the next append (or within a tick): a serial
      // writer then costs each follower one message, one loop iteration and one write per
      // commit instead of two (docs/raft.md, "Commit notice").
      commitNotice: 'lazy',
      imagesOnDemand: typeof sm.persistApplied === 'function',
    })
    const locate = 'locOf' in storage ? (e: Entry) => storage.locOf(e) : undefined
    this.groups.set(id, { id, node, storage, sm, locate, proposals: new Map(), reads: new Map(), readWaiters: [], leader: 0, isLeader: false, role: 'follower', lastLeader: 0, synced: storage.initialState().hardState, m: KINDS[kindOf(id)] })
    this.schedule()
  }

  has(id: number): boolean {
    return this.groups.has(id)
  }

  groupIds(): number[] {
    return [...this.groups.keys()]
  }

  /** Entries in each group's log (since its snapshot), by group id. */
  *logEntries(): IterableIterator<[number, number]> {
    for (const g of this.groups.values()) yield [g.id, Math.max(0, g.storage.lastIndex() - g.storage.firstIndex() + 1)]
  }

  /** Stops hosting a group (its replica was removed); pending work fails. */
  removeGroup(id: number): void {
    const g = this.groups.get(id)
    if (!g) return
    this.groups.delete(id)
    this.failAll(g, new NotLeaderError(id, 0, 'replica removed'))
  }

  step(group: number, m: Message): void {
    const g = this.groups.get(group)
    if (!g) return
    g.node.step(m)
    this.schedule()
  }

  status(group: number): Status | undefined {
    return this.groups.get(group)?.node.status()
  }

  /** A group's configuration as of its applied index (cheap, unlike status()). */
  confOf(group: number): { voters: readonly NodeId[]; learners: readonly NodeId[] } | undefined {
    return this.groups.get(group)?.node.confState()
  }

  leaderOf(group: number): NodeId {
    return this.groups.get(group)?.leader ?? 0
  }

  isLeader(group: number): boolean {
    return this.groups.get(group)?.isLeader ?? false
  }

  campaign(group: number): void {
    this.groups.get(group)?.node.campaign()
    this.schedule()
  }

  /** Proposes one command; resolves with the state machine's result once it is applied, or
   * rejects (NotLeaderError) when it was refused or lost with a leader change. */
  propose(group: number, data: Uint8Array): Promise<unknown> {
    const g = this.groups.get(group)
    if (!g) return Promise.reject(new NotLeaderError(group, 0, 'group not hosted here'))
    const r = g.node.propose(data)
    if (!r.ok) return Promise.reject(new NotLeaderError(group, r.leader, r.reason))
    g.m.proposals.inc()
    this.schedule()
    return new Promise((resolve, reject) => g.proposals.set(r.index, { term: r.term, resolve, reject }))
  }

  proposeConfChange(group: number, cc: ConfChange): Promise<unknown> {
    const g = this.groups.get(group)
    if (!g) return Promise.reject(new NotLeaderError(group, 0, 'group not hosted here'))
    const r = g.node.proposeConfChange(cc)
    if (!r.ok) return Promise.reject(new NotLeaderError(group, r.leader, r.reason))
    g.m.proposals.inc()
    this.schedule()
    return new Promise((resolve, reject) => g.proposals.set(r.index, { term: r.term, resolve, reject }))
  }

  /** A linearizable read barrier: resolves once this replica may serve a read (at once when
   * the leader holds its lease and has applied everything committed; else by ReadIndex,
   * confirmed by a quorum, once that index is applied). */
  readBarrier(group: number): Promise<void> {
    const g = this.groups.get(group)
    if (!g) return Promise.reject(new NotLeaderError(group, 0, 'group not hosted here'))
    if (g.node.canReadLocally(g.sm.appliedIndex)) return Promise.resolve()
    if (g.reads.size + g.readWaiters.length >= MAX_PENDING_READS) return Promise.reject(new NotLeaderError(group, g.leader, 'too many reads waiting'))
    const ctx = `r${++this.readSeq}`
    if (!g.node.readIndex(ctx)) return Promise.reject(new NotLeaderError(group, g.leader, 'read index refused'))
    this.schedule()
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        g.reads.delete(ctx)
        const i = g.readWaiters.indexOf(p)
        if (i >= 0) g.readWaiters.splice(i, 1)
        reject(new NotLeaderError(group, g.leader, 'read index timed out'))
      }, READ_TIMEOUT_MS)
      const p: PendingRead = { resolve, reject, timer, index: 0 }
      g.reads.set(ctx, p)
    })
  }

  private tick(): void {
    for (const g of this.groups.values()) g.node.tick()
    this.schedule()
  }

  private schedule(): void {
    if (this.scheduled || this.closed) return
    this.scheduled = true
    setImmediate(() => {
      this.scheduled = false
      void this.run()
    })
  }

  private async run(): Promise<void> {
    if (this.running) {
      this.again = true
      return
    }
    this.running = true
    try {
      do {
        this.again = false
        await this.iterate()
      } while (this.again && !this.closed)
    } catch (err) {
      // A failed fsync or apply leaves the node unable to keep its promises: stop serving.
      this.opts.logger.fatal({ err }, 'raft loop failed; stopping the node')
      this.closed = true
      process.exitCode = 1
      setImmediate(() => process.kill(process.pid, 'SIGTERM'))
    } finally {
      this.running = false
    }
  }

  /** One loop iteration: every group with work, one synced batch, sends, applies, advances. */
  private async iterate(): Promise<void> {
    // Between loop iterations, so the image is of a state no apply is changing.
    for (const g of this.groups.values()) if (g.node.imageWanted()) await this.makeImage(g)
    const work: { g: Group; rd: Ready }[] = []
    for (const g of this.groups.values()) if (g.node.hasReady()) work.push({ g, rd: g.node.ready() })
    if (work.length === 0) return
    const early = new Map<NodeId, { group: number; message: Message }[]>()
    const late = new Map<NodeId, { group: number; message: Message }[]>()
    // fsync only when something a promise depends on changed: entries, a snapshot, or the
    // term or vote. A hard state that only advanced its commit index can be lost harmlessly.
    let durable = false
    for (const { g, rd } of work) {
      this.noteRoles(g, rd)
      saveReady(g.storage, rd)
      if (rd.entries.length > 0 || rd.snapshot) durable = true
      if (rd.hardState && (rd.hardState.term !== g.synced.term || rd.hardState.vote !== g.synced.vote)) durable = true
      if (rd.hardState) g.synced = rd.hardState
      const leading = (rd.softState?.role ?? (g.isLeader ? 'leader' : 'follower')) === 'leader'
      for (const message of rd.messages) {
        if (message.type === 'snapshot') noteSnapshot('sent', message.data.length, message.done ? 1 : 0)
        const into = leading && message.type === 'append' ? early : late
        let list = into.get(message.to)
        if (!list) into.set(message.to, (list = []))
        list.push({ group: g.id, message })
      }
    }
    for (const [to, msgs] of early) this.opts.send(to, msgs)
    await this.opts.store.sync(durable)
    for (const [to, msgs] of late) this.opts.send(to, msgs)
    // A follower's acknowledgements go on the wire before it applies: Node writes a stream's
    // data out in the loop's check phase, so an apply made now (a follower applies the entry
    // the append's commit index covered, ~0.2 ms) would hold them back and the leader's commit
    // with them. One loop turn lets the writes out first (docs/raft.md, "The Ready batch...").
    if (late.size > 0 && work.some(({ rd }) => rd.committedEntries.length > 0 || rd.snapshot)) await new Promise<void>((r) => setImmediate(r))
    for (const { g, rd } of work) {
      if (rd.softState) {
        const wasLeader = g.isLeader
        g.leader = rd.softState.leader
        g.isLeader = rd.softState.role === 'leader'
        this.opts.onSoftState?.(g.id, g.leader, g.isLeader)
        if (wasLeader && !g.isLeader) this.failReads(g, 'lost leadership')
      }
      if (rd.snapshot) {
        await g.sm.restore(rd.snapshot)
        noteSnapshot('installed', rd.snapshot.data.length)
        this.opts.logger.info({ region: g.id, index: rd.snapshot.meta.index, bytes: rd.snapshot.data.length }, 'snapshot installed')
        // Proposals the snapshot covers may or may not be in it: their outcome is unknown here,
        // and the client retries them under the same transaction id (docs/cluster.md).
        this.settleUpTo(g, rd.snapshot.meta.index)
      }
      if (rd.committedEntries.length > 0) {
        g.m.committed.inc(rd.committedEntries.length)
        await this.apply(g, rd.committedEntries)
      }
      for (const rs of rd.readStates) {
        const p = g.reads.get(rs.ctx)
        if (!p) continue
        g.reads.delete(rs.ctx)
        p.index = rs.index
        g.readWaiters.push(p)
      }
      g.node.advance(rd)
      // Applied entries are persisted: their payloads need not stay in memory.
      if (rd.committedEntries.length > 0) g.storage.evict(g.sm.appliedIndex)
      this.releaseReads(g)
      if (rd.committedEntries.length > 0) {
        await this.maybeCompact(g)
        this.opts.onApplied?.(g.id)
      }
    }
    this.again = true
  }

  /** Counts elections and leader changes from a Ready's soft and hard state (before g.synced
   * moves on). An election this node started: it became pre-candidate or candidate, or
   * campaigned again as candidate in a new term, or went from follower straight to leader (a
   * campaign won within one step, as a single voter does). A pre-candidate retrying keeps its
   * role and term, so its retries are not seen. */
  private noteRoles(g: Group, rd: Ready): void {
    const role = rd.softState?.role ?? g.role
    const was = g.role
    const campaigning = role === 'candidate' || role === 'preCandidate'
    const wasCampaigning = was === 'candidate' || was === 'preCandidate'
    const newTerm = !!rd.hardState && rd.hardState.term > g.synced.term
    if ((campaigning && !wasCampaigning) || (role === 'candidate' && was === 'candidate' && newTerm) || (role === 'leader' && was === 'follower')) g.m.elections.inc()
    g.role = role
    const leader = rd.softState?.leader ?? 0
    if (leader !== 0 && leader !== g.lastLeader) {
      g.m.leaderChanges.inc()
      g.lastLeader = leader
    }
  }

  private async apply(g: Group, entries: readonly Entry[]): Promise<void> {
    // Conf changes take effect in the core at advance(); the state machine needs the
    // configuration after each one now, so compute it along the way.
    let conf = g.node.confState()
    const after = new Map<number, { voters: number[]; learners: number[] }>()
    for (const e of entries) {
      if (e.type !== 'confChange') continue
      conf = applyToConfState(conf, decodeConfChange(e.data))
      after.set(e.index, { voters: [...conf.voters], learners: [...conf.learners] })
    }
    const applied = g.sm.appliedIndex
    const fresh = entries.filter((e) => e.index > applied)
    g.m.applied.inc(fresh.length)
    const results = fresh.length === 0 ? [] : await g.sm.applyEntries(fresh, (e) => after.get(e.index) ?? { voters: [...conf.voters], learners: [...conf.learners] }, g.locate)
    fresh.forEach((e, i) => {
      const p = g.proposals.get(e.index)
      if (!p) return
      g.proposals.delete(e.index)
      if (p.term === e.term) p.resolve(results[i])
      else p.reject(new NotLeaderError(g.id, g.leader, 'proposal lost with a leader change'))
    })
    // Anything older that was never applied with its term is gone too.
    const last = entries[entries.length - 1] as Entry
    this.settleUpTo(g, last.index)
  }

  private settleUpTo(g: Group, index: number): void {
    for (const [i, p] of g.proposals) {
      if (i > index) continue
      g.proposals.delete(i)
      p.reject(new NotLeaderError(g.id, g.leader, 'proposal lost with a leader change'))
    }
  }

  private releaseReads(g: Group): void {
    if (g.readWaiters.length === 0) return
    const applied = g.sm.appliedIndex
    const keep: PendingRead[] = []
    for (const p of g.readWaiters) {
      if (p.index <= applied) {
        clearTimeout(p.timer)
        p.resolve()
      } else keep.push(p)
    }
    g.readWaiters.length = 0
    g.readWaiters.push(...keep)
  }

  private failReads(g: Group, why: string): void {
    for (const p of g.reads.values()) {
      clearTimeout(p.timer)
      p.reject(new NotLeaderError(g.id, g.leader, why))
    }
    g.reads.clear()
  }

  private failAll(g: Group, err: Error): void {
    for (const p of g.proposals.values()) p.reject(err)
    g.proposals.clear()
    for (const p of [...g.reads.values(), ...g.readWaiters]) {
      clearTimeout(p.timer)
      p.reject(err)
    }
    g.reads.clear()
    g.readWaiters.length = 0
  }

  private async maybeCompact(g: Group): Promise<void> {
    const s = g.storage
    const applied = g.sm.appliedIndex
    if (applied - s.snapshot().meta.index < this.compactAfter) return
    if (g.sm.persistApplied) {
      // The state is in the store: make it durable, then drop the log behind it. No image.
      await g.sm.persistApplied()
      s.createSnapshot(applied, g.node.confState(), new Uint8Array(0))
      s.compact(Math.max(s.firstIndex(), applied - KEEP_AFTER_COMPACT))
      noteSnapshot('compacted', 0)
      this.opts.logger.info({ region: g.id, index: applied }, 'log compacted (state in the store, no image)')
      return
    }
    const data = await g.sm.snapshotData()
    s.createSnapshot(applied, g.node.confState(), data)
    s.compact(Math.max(s.firstIndex(), applied - KEEP_AFTER_COMPACT))
    noteSnapshot('taken', data.length)
    this.opts.logger.info({ region: g.id, index: applied, bytes: data.length }, 'snapshot taken, log compacted')
  }

  /** An image at the applied index for a follower that needs a snapshot (imagesOnDemand). */
  private async makeImage(g: Group): Promise<void> {
    const started = performance.now()
    const index = g.sm.appliedIndex
    const data = await g.sm.snapshotData()
    g.node.offerImage(index, g.node.confState(), data)
    noteSnapshot('taken', data.length)
    this.opts.logger.info({ region: g.id, index, bytes: data.length, ms: Math.round(performance.now() - started) }, 'snapshot image made for a follower')
  }
}
