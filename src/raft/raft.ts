// The Raft protocol as a pure state machine. No I/O, no clock, no randomness of its own: input
// arrives through step() and tick(), output accumulates in `msgs`, `readStates` and the log's
// unstable part, and RaftNode (node.ts) packages it into Ready batches. Section numbers refer to
// Ongaro's thesis ("Consensus: bridging theory and practice", 2014).

import { ReadOnlyOption, resolveConfig, type ProposeResult, type RaftConfig, type ResolvedConfig } from './config';
import { applyToConfState, ConfChangeType, decodeConfChange, encodeConfChange, type ConfChange } from './confchange';
import { RaftLog } from './log';
import { Progress, ProgressState } from './progress';
import { concatBytes, ReadQueue, type IncomingSnapshot } from './readindex';
import { CompactedError } from './storage';
import {
  assertNever,
  entryBytes,
  EntryType,
  NONE,
  Role,
  type AppendRequest,
  type AppendResponse,
  type ConfState,
  type Entry,
  type Heartbeat,
  type HeartbeatResponse,
  type Message,
  type NodeId,
  type ReadState,
  type Snapshot,
  type SnapshotChunk,
  type SnapshotChunkResponse,
  type VoteRequest,
} from './types';

type CampaignKind = 'preElection' | 'election' | 'transfer';

export class Raft {
  readonly id: NodeId;
  term = 0;
  vote: NodeId = NONE;
  lead: NodeId = NONE;
  role: Role = Role.Follower;
  readonly log: RaftLog;
  voters = new Set<NodeId>();
  learners = new Set<NodeId>();
  progress = new Map<NodeId, Progress>();
  msgs: Message[] = [];
  readStates: ReadState[] = [];
  leadTransferee: NodeId = NONE;
  /** No conf change may be proposed until the entry at this index has been applied. */
  pendingConfIndex = 0;
  /** Ticks since this node was created; dates heartbeats for the lease. */
  tickCount = 0;
  quiesced = false;
  /** Proposals were appended since the last broadcast; appends go out at the next flush. */
  private needBroadcast = false;
  /** Lazy commit notice: the commit index advanced since the last broadcast to followers. */
  private commitUntold = false;
  /** imagesOnDemand: the image the host made for followers that need a snapshot, when. */
  private image: Snapshot | undefined;
  private imageTick = 0;
  /** imagesOnDemand: a follower needs a snapshot and there is no image to send. */
  private wantImage = false;

  private readonly cfg: ResolvedConfig;
  private votes = new Map<NodeId, boolean>();
  private electionElapsed = 0;
  private heartbeatElapsed = 0;
  private randomizedElectionTimeout = 0;
  /** Ticks since we last heard from a leader of our term. With lease reads it starts at 0, so
   * that a restarted node honours any lease it granted before the crash (it cannot remember). */
  private ticksSinceLeaderContact: number;
  private idleTicks = 0;
  /** A transfer was started this term: a forced election may follow, so no more lease reads. */
  private leaseRevoked = false;
  private readonly reads: ReadQueue;
  /** The log index the configuration is as of: the last conf change applied, or the snapshot
   * it came from. A snapshot can arrive while the host still applies older entries (a Ready
   * in progress); their conf changes are then already part of the snapshot's configuration
   * and must not be applied again on top of it. */
  private confIndex: number;
  /** A timeoutNow arrived in this term while a membership change was unapplied. */
  private transferCampaignTerm = 0;
  private incomingSnapshot: IncomingSnapshot | undefined = undefined;

  constructor(config: RaftConfig) {
    if (config.id === NONE) throw new Error('raft: node id 0 is reserved');
    if (config.heartbeatTicks <= 0 || config.electionTicks <= config.heartbeatTicks) {
      throw new Error('raft: need 0 < heartbeatTicks < electionTicks');
    }
    this.id = config.id;
    this.cfg = resolveConfig(config);
    this.reads = new ReadQueue(this.cfg.maxPendingReads);
    this.ticksSinceLeaderContact = this.cfg.readOnly === ReadOnlyOption.Lease ? 0 : this.cfg.electionTicks;
    this.log = new RaftLog(config.storage, config.applied ?? 0);
    const { hardState, confState } = config.storage.initialState();
    this.confIndex = config.storage.snapshot().meta.index;
    this.applyConfState(confState);
    this.term = hardState.term;
    this.vote = hardState.vote;
    if (hardState.commit > 0) this.log.commitTo(Math.min(hardState.commit, this.log.lastIndex()));
    this.becomeFollower(this.term, NONE);
  }

  get committedIndex(): number {
    return this.log.committed;
  }

  confState(): ConfState {
    return { voters: [...this.voters].sort((a, b) => a - b), learners: [...this.learners].sort((a, b) => a - b) };
  }

  /** A voter of its own configuration with no snapshot waiting to be installed. */
  promotable(): boolean {
    return this.voters.has(this.id) && this.log.unstable.snapshot === undefined;
  }

  // ---- Time ------------------------------------------------------------------------------------

  tick(): void {
    this.tickCount++;
    if (this.image !== undefined) this.dropIdleImage();
    if (this.quiesced) return;
    if (this.role === Role.Leader) this.tickHeartbeat();
    else this.tickElection();
  }

  private tickElection(): void {
    this.electionElapsed++;
    this.ticksSinceLeaderContact++;
    if (this.promotable() && this.electionElapsed >= this.randomizedElectionTimeout) {
      this.electionElapsed = 0;
      this.hup(this.cfg.preVote ? 'preElection' : 'election');
    }
  }

  private tickHeartbeat(): void {
    this.heartbeatElapsed++;
    this.electionElapsed++;
    this.ticksSinceLeaderContact = 0;
    if (this.electionElapsed >= this.cfg.electionTicks) {
      this.electionElapsed = 0;
      if (this.cfg.checkQuorum) {
        if (!this.quorumActive()) {
          // Section 6.2: a leader that cannot reach a quorum steps down, so clients find the
          // real leader and lease reads stop.
          this.becomeFollower(this.term, NONE);
          return;
        }
        for (const [id, pr] of this.progress) if (id !== this.id) pr.recentActive = false;
      }
      if (this.leadTransferee !== NONE) this.leadTransferee = NONE; // transfer timed out
    }
    // Lazy commit notice: nothing carried it within this tick, so send it on its own.
    if (this.commitUntold) this.bcastAppend();
    if (this.heartbeatElapsed >= this.cfg.heartbeatTicks) {
      this.heartbeatElapsed = 0;
      this.bcastHeartbeat(false);
      this.resendStalledSnapshots();
    }
    this.maybeQuiesce();
  }

  /** Resume ticking after quiescence: the host calls this when it suspects the leader's node
   * is gone (it watches node-level liveness, coalesced across all groups). */
  wake(): void {
    if (!this.quiesced) return;
    this.quiesced = false;
    this.idleTicks = 0;
    this.electionElapsed = 0;
    if (this.role === Role.Leader) {
      // Grant one election timeout before check-quorum judges the followers again.
      for (const pr of this.progress.values()) pr.recentActive = true;
      this.bcastHeartbeat(false);
    }
  }

  private maybeQuiesce(): void {
    if (this.cfg.quiesceAfterTicks <= 0) return;
    if (!this.isIdle()) {
      this.idleTicks = 0;
      return;
    }
    this.idleTicks++;
    if (this.idleTicks < this.cfg.quiesceAfterTicks) return;
    this.bcastHeartbeat(true);
    this.quiesced = true;
  }

  /** Nothing to replicate, commit, apply, read or transfer, and every follower knows it. */
  private isIdle(): boolean {
    const last = this.log.lastIndex();
    if (this.leadTransferee !== NONE || this.reads.size() > 0 || this.needBroadcast || this.commitUntold) return false;
    if (this.log.committed !== last || this.log.applied !== last) return false;
    for (const [id, pr] of this.progress) {
      if (id === this.id) continue;
      if (pr.match !== last || pr.commit !== last || pr.state !== ProgressState.Replicate) return false;
    }
    return true;
  }

  // ---- Elections -------------------------------------------------------------------------------

  /** Start an election if allowed (used by tick and by tests/hosts that force one). */
  hup(kind: CampaignKind): void {
    if (this.role === Role.Leader || !this.promotable()) return;
    if (this.hasUnappliedConfChanges()) return; // our configuration may be about to change
    this.campaign(kind);
  }

  private hasUnappliedConfChanges(): boolean {
    if (this.log.applied >= this.log.committed) return false;
    let lo = Math.max(this.log.applied + 1, this.log.firstIndex());
    while (lo <= this.log.committed) {
      const ents = this.log.slice(lo, this.log.committed + 1, 1 << 20);
      if (ents.some((e) => e.type === EntryType.ConfChange)) return true;
      lo += ents.length;
    }
    return false;
  }

  private campaign(kind: CampaignKind): void {
    let voteTerm: number;
    let type: 'vote' | 'preVote';
    if (kind === 'preElection') {
      this.becomePreCandidate();
      voteTerm = this.term + 1;
      type = 'preVote';
    } else {
      this.becomeCandidate();
      voteTerm = this.term;
      type = 'vote';
    }
    if (this.poll(this.id, true) === 'won') {
      // A single-voter group wins at once.
      if (kind === 'preElection') this.campaign('election');
      else this.becomeLeader();
      return;
    }
    for (const id of this.voters) {
      if (id === this.id) continue;
      this.send({
        type,
        from: this.id,
        to: id,
        term: voteTerm,
        lastLogIndex: this.log.lastIndex(),
        lastLogTerm: this.log.lastTerm(),
        force: kind === 'transfer',
      });
    }
  }

  private poll(id: NodeId, granted: boolean): 'won' | 'lost' | 'pending' {
    if (!this.votes.has(id)) this.votes.set(id, granted);
    let yes = 0;
    let no = 0;
    for (const v of this.voters) {
      const g = this.votes.get(v);
      if (g === true) yes++;
      else if (g === false) no++;
    }
    const q = quorum(this.voters.size);
    if (yes >= q) return 'won';
    if (no > this.voters.size - q) return 'lost';
    return 'pending';
  }

  /** A follower recently in contact with a live leader ignores vote requests (section 4.2.3):
   * a removed or partitioned node cannot depose a healthy leader, and a lease holds. */
  private inLease(): boolean {
    return this.cfg.checkQuorum && this.ticksSinceLeaderContact < this.cfg.electionTicks;
  }

  private onVote(m: VoteRequest): void {
    const canVote =
      this.vote === m.from ||
      (this.vote === NONE && this.lead === NONE) ||
      (m.type === 'preVote' && m.term > this.term);
    const respType = m.type === 'vote' ? 'voteResp' : 'preVoteResp';
    const upToDate = this.cfg.plantedBug === 'voteIgnoresLog' || this.log.isUpToDate(m.lastLogIndex, m.lastLogTerm);
    if (canVote && upToDate) {
      // A granted pre-vote answers in the candidate's future term, so the candidate counts it.
      this.send({ type: respType, from: this.id, to: m.from, term: m.term, reject: false });
      if (m.type === 'vote') {
        this.electionElapsed = 0;
        this.vote = m.from;
      }
    } else {
      this.send({ type: respType, from: this.id, to: m.from, term: this.term, reject: true });
    }
  }

  // ---- Role transitions ------------------------------------------------------------------------

  private reset(term: number): void {
    if (this.term !== term) {
      this.term = term;
      this.vote = NONE;
      this.leaseRevoked = false;
    }
    this.lead = NONE;
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.randomizedElectionTimeout = this.cfg.electionTicks + this.cfg.rng.intn(this.cfg.electionTicks);
    this.leadTransferee = NONE;
    this.commitUntold = false;
    this.votes.clear();
    this.reads.clear();
    this.quiesced = false;
    this.idleTicks = 0;
    this.needBroadcast = false;
    const last = this.log.lastIndex();
    for (const [id, pr] of this.progress) {
      const fresh = this.newProgress(id, pr.isLearner);
      if (id === this.id) fresh.match = last;
      this.progress.set(id, fresh);
    }
    this.pendingConfIndex = 0;
  }

  private newProgress(id: NodeId, isLearner: boolean): Progress {
    return new Progress(id, this.log.lastIndex() + 1, isLearner, this.cfg.maxInflightMsgs, this.cfg.maxInflightBytes);
  }

  becomeFollower(term: number, lead: NodeId): void {
    this.reset(term);
    this.lead = lead;
    this.role = Role.Follower;
    if (lead !== NONE) this.ticksSinceLeaderContact = 0;
  }

  private becomePreCandidate(): void {
    if (this.role === Role.Leader) throw new Error('raft: leader cannot become pre-candidate');
    // Pre-vote changes neither term nor vote: a node that cannot win disturbs nobody.
    this.votes.clear();
    this.lead = NONE;
    this.role = Role.PreCandidate;
  }

  private becomeCandidate(): void {
    if (this.role === Role.Leader) throw new Error('raft: leader cannot become candidate');
    this.reset(this.term + 1);
    this.vote = this.id;
    this.role = Role.Candidate;
  }

  private becomeLeader(): void {
    if (this.role === Role.Follower) throw new Error('raft: follower cannot become leader');
    this.reset(this.term);
    this.lead = this.id;
    this.role = Role.Leader;
    this.ticksSinceLeaderContact = 0;
    for (const [id, pr] of this.progress) {
      pr.recentActive = id === this.id;
      if (id === this.id) pr.becomeReplicate();
    }
    // Section 5.4.2: an entry of the current term must commit before earlier ones can count.
    this.appendEntries([{ term: 0, index: 0, type: EntryType.Normal, data: new Uint8Array(0) }]);
    // No conf change until that no-op is applied: it fixes single-server changes across leader
    // changes (Ongaro, raft-dev "bug in single-server membership changes", 2015).
    this.pendingConfIndex = this.log.lastIndex();
    this.needBroadcast = true;
  }

  // ---- Message dispatch ------------------------------------------------------------------------

  step(m: Message): void {
    // Any message wakes a quiet group, except the quiesce heartbeat itself and the plain
    // acknowledgements of it, which bring no new work.
    if (this.quiesced && !(m.type === 'heartbeat' && m.quiesce) && m.type !== 'heartbeatResp' && !(m.type === 'appendResp' && !m.reject)) {
      this.wake();
    }
    if (m.term > this.term) {
      if ((m.type === 'vote' || m.type === 'preVote') && !m.force && this.inLease()) return;
      if (m.type === 'preVote') {
        // Never change term on a pre-vote.
      } else if (m.type === 'preVoteResp' && !m.reject) {
        // A granted pre-vote carries the term we are about to campaign in.
      } else if (m.type === 'append' || m.type === 'heartbeat' || m.type === 'snapshot') {
        this.becomeFollower(m.term, m.from);
      } else {
        this.becomeFollower(m.term, NONE);
      }
    } else if (m.term < this.term) {
      if (m.type === 'append' || m.type === 'heartbeat') {
        // A stale leader (say, back from a partition) learns our term and steps down. Without
        // this, a node whose term rose while pre-vote kept others' terms low could be ignored.
        this.sendAppendResp(m.from, 0, false, 0, 0);
      } else if (m.type === 'preVote') {
        this.send({ type: 'preVoteResp', from: this.id, to: m.from, term: this.term, reject: true });
      }
      return;
    }
    if (isVoteRequest(m)) {
      this.onVote(m);
      return;
    }
    switch (this.role) {
      case Role.Leader:
        this.stepLeader(m);
        return;
      case Role.Candidate:
      case Role.PreCandidate:
        this.stepCandidate(m);
        return;
      case Role.Follower:
        this.stepFollower(m);
        return;
      default:
        assertNever(this.role);
    }
  }

  private stepLeader(m: Exclude<Message, VoteRequest>): void {
    switch (m.type) {
      case 'appendResp':
        this.onAppendResp(m);
        return;
      case 'heartbeatResp':
        this.onHeartbeatResp(m);
        return;
      case 'snapshotResp':
        this.onSnapshotResp(m);
        return;
      case 'transferLeader':
        this.onTransferLeader(m.transferee);
        return;
      case 'readIndex':
        this.onReadIndex(m.from, m.ctx);
        return;
      case 'append':
      case 'heartbeat':
      case 'snapshot':
        // Another leader in our term would break election safety; the simulator's checker
        // reports that, here we just refuse to follow it.
        return;
      case 'voteResp':
      case 'preVoteResp':
      case 'timeoutNow':
      case 'readIndexResp':
        return;
      default:
        assertNever(m);
    }
  }

  private stepCandidate(m: Exclude<Message, VoteRequest>): void {
    switch (m.type) {
      case 'append':
        this.becomeFollower(m.term, m.from);
        this.onAppend(m);
        return;
      case 'heartbeat':
        this.becomeFollower(m.term, m.from);
        this.onHeartbeat(m);
        return;
      case 'snapshot':
        this.becomeFollower(m.term, m.from);
        this.onSnapshotChunk(m);
        return;
      case 'voteResp':
      case 'preVoteResp': {
        const mine = this.role === Role.PreCandidate ? 'preVoteResp' : 'voteResp';
        if (m.type !== mine) return;
        const result = this.poll(m.from, !m.reject);
        if (result === 'won') {
          if (this.role === Role.PreCandidate) this.campaign('election');
          else this.becomeLeader();
        } else if (result === 'lost') {
          this.becomeFollower(this.term, NONE);
        }
        return;
      }
      case 'appendResp':
      case 'heartbeatResp':
      case 'snapshotResp':
      case 'timeoutNow':
      case 'transferLeader':
      case 'readIndex':
      case 'readIndexResp':
        return;
      default:
        assertNever(m);
    }
  }

  private stepFollower(m: Exclude<Message, VoteRequest>): void {
    switch (m.type) {
      case 'append':
        this.heardFromLeader(m.from);
        this.onAppend(m);
        return;
      case 'heartbeat':
        this.heardFromLeader(m.from);
        this.onHeartbeat(m);
        return;
      case 'snapshot':
        this.heardFromLeader(m.from);
        this.onSnapshotChunk(m);
        return;
      case 'timeoutNow':
        // Leadership transfer (section 3.10): campaign at once, skipping pre-vote and leases.
        // If a committed membership change is still unapplied here (a leader removing itself
        // hands over right after applying it), campaign as soon as it is applied.
        if (this.hasUnappliedConfChanges()) this.transferCampaignTerm = this.term;
        else this.hup('transfer');
        return;
      case 'transferLeader':
        if (this.lead !== NONE) this.send({ ...m, to: this.lead, term: this.term });
        return;
      case 'readIndexResp':
        this.readStates.push({ index: m.index, ctx: m.ctx });
        return;
      case 'readIndex':
      case 'appendResp':
      case 'heartbeatResp':
      case 'snapshotResp':
      case 'voteResp':
      case 'preVoteResp':
        return;
      default:
        assertNever(m);
    }
  }

  private heardFromLeader(from: NodeId): void {
    this.electionElapsed = 0;
    this.ticksSinceLeaderContact = 0;
    this.lead = from;
  }

  // ---- Follower side of replication --------------------------------------------------------------

  private onAppend(m: AppendRequest): void {
    if (m.prevIndex < this.log.committed) {
      this.sendAppendResp(m.from, this.log.committed, false, 0, 0);
      return;
    }
    const lastNew = this.log.maybeAppend(m.prevIndex, m.prevTerm, m.commit, m.entries);
    if (lastNew !== undefined) {
      this.sendAppendResp(m.from, lastNew, false, 0, 0);
      return;
    }
    // Section 5.3's optimisation: hint the largest index whose term is <= prevTerm, so the
    // leader skips every entry of a conflicting term in one round trip.
    const hintIndex = this.log.findConflictByTerm(Math.min(m.prevIndex, this.log.lastIndex()), m.prevTerm);
    this.sendAppendResp(m.from, m.prevIndex, true, hintIndex, this.log.term(hintIndex) ?? 0);
  }

  private sendAppendResp(to: NodeId, index: number, reject: boolean, rejectHint: number, logTerm: number): void {
    this.send({ type: 'appendResp', from: this.id, to, term: this.term, index, reject, rejectHint, logTerm, commit: this.log.committed });
  }

  private onHeartbeat(m: Heartbeat): void {
    // The leader sends min(its commit, our match), so everything up to it matches its log.
    this.log.commitTo(Math.min(m.commit, this.log.lastIndex()));
    this.send({
      type: 'heartbeatResp',
      from: this.id,
      to: m.from,
      term: this.term,
      readSeq: m.readSeq,
      sentTick: m.sentTick,
      commit: this.log.committed,
      lastIndex: this.log.lastIndex(),
    });
    if (m.quiesce && this.log.committed === m.commit && this.log.lastIndex() === m.commit) this.quiesced = true;
  }

  private onSnapshotChunk(m: SnapshotChunk): void {
    const { meta } = m;
    if (meta.index <= this.log.committed) {
      this.incomingSnapshot = undefined;
      this.sendAppendResp(m.from, this.log.committed, false, 0, 0);
      return;
    }
    if (m.offset === 0) this.incomingSnapshot = { index: meta.index, term: meta.term, parts: [], bytes: 0 };
    const inc = this.incomingSnapshot;
    if (inc === undefined || inc.index !== meta.index || inc.term !== meta.term || inc.bytes !== m.offset) {
      const next = inc !== undefined && inc.index === meta.index && inc.term === meta.term ? inc.bytes : 0;
      this.send({ type: 'snapshotResp', from: this.id, to: m.from, term: this.term, snapshotIndex: meta.index, nextOffset: next });
      return;
    }
    inc.parts.push(m.data);
    inc.bytes += m.data.length;
    if (!m.done) {
      this.send({ type: 'snapshotResp', from: this.id, to: m.from, term: this.term, snapshotIndex: meta.index, nextOffset: inc.bytes });
      return;
    }
    this.incomingSnapshot = undefined;
    if (inc.bytes !== m.totalBytes) {
      this.send({ type: 'snapshotResp', from: this.id, to: m.from, term: this.term, snapshotIndex: meta.index, nextOffset: 0 });
      return;
    }
    const installed = this.restore({ meta, data: concatBytes(inc.parts, inc.bytes) });
    this.sendAppendResp(m.from, installed ? this.log.lastIndex() : this.log.committed, false, 0, 0);
  }

  /** Adopt a leader's snapshot. Returns false if our log already has it (commit fast-forwards). */
  private restore(s: Snapshot): boolean {
    if (s.meta.index <= this.log.committed) return false;
    if (this.log.matchTerm(s.meta.index, s.meta.term)) {
      this.log.commitTo(s.meta.index);
      return false;
    }
    this.log.restore(s);
    this.applyConfState(s.meta.confState);
    this.confIndex = s.meta.index;
    return true;
  }

  // ---- Leader side of replication ----------------------------------------------------------------

  /** Appends proposals (term and index are assigned here) to the leader's own log. */
  private appendEntries(ents: readonly Entry[]): void {
    let index = this.log.lastIndex();
    const stamped = ents.map((e) => ({ term: this.term, index: ++index, type: e.type, data: e.data }));
    this.log.append(stamped);
    this.progress.get(this.id)?.maybeUpdate(this.log.lastIndex());
    this.maybeCommit();
  }

  /** Advances the commit index to the highest index stored on a quorum, but only through an
   * entry of the current term (section 5.4.2, Figure 8): older entries commit indirectly. */
  private maybeCommit(): boolean {
    const matches: number[] = [];
    for (const id of this.voters) matches.push(this.progress.get(id)?.match ?? 0);
    matches.sort((a, b) => b - a);
    const mci = matches[quorum(this.voters.size) - 1] ?? 0;
    if (mci <= this.log.committed) return false;
    if (this.cfg.plantedBug !== 'commitPreviousTermByCount' && this.log.term(mci) !== this.term) return false;
    this.log.commitTo(mci);
    this.onCommitAdvanced();
    return true;
  }

  private onCommitAdvanced(): void {
    if (this.reads.awaitingCommit.length > 0 && this.log.term(this.log.committed) === this.term) {
      const waiting = this.reads.awaitingCommit;
      this.reads.awaitingCommit = [];
      for (const r of waiting) this.onReadIndex(r.from, r.ctx);
    }
  }

  private onAppendResp(m: AppendResponse): void {
    const pr = this.progress.get(m.from);
    if (pr === undefined) return;
    pr.recentActive = true;
    pr.commit = Math.max(pr.commit, m.commit);
    if (m.reject) {
      const hint = m.logTerm > 0 ? this.log.findConflictByTerm(m.rejectHint, m.logTerm) : m.rejectHint;
      if (pr.maybeDecrTo(m.index, hint)) {
        if (pr.state === ProgressState.Replicate) pr.becomeProbe();
        this.sendAppend(m.from);
      }
      return;
    }
    const wasPaused = pr.isPaused();
    // A probe answered at exactly our match still proves where the logs agree.
    const probeConfirmed = pr.state === ProgressState.Probe && pr.match === m.index;
    // The follower has (at least) the snapshot we were sending, even if that is old news.
    const snapshotDone = pr.snapshotSend !== undefined && m.index >= pr.snapshotSend.snapshot.meta.index;
    if (!pr.maybeUpdate(m.index) && !probeConfirmed && !snapshotDone) return;
    switch (pr.state) {
      case ProgressState.Probe:
        pr.becomeReplicate();
        break;
      case ProgressState.Snapshot:
        if (pr.match + 1 >= this.log.firstIndex()) {
          pr.becomeProbe();
          pr.becomeReplicate();
        } else if (snapshotDone) {
          // The log was compacted again meanwhile: probe, which leads to a newer snapshot.
          pr.becomeProbe();
        }
        break;
      case ProgressState.Replicate:
        pr.inflights.freeLE(m.index);
        break;
      default:
        assertNever(pr.state);
    }
    if (this.maybeCommit()) this.noticeCommit();
    else if (wasPaused) this.sendAppend(m.from);
    // Pipelining: keep the window full while there is anything to send.
    while (this.maybeSendAppend(m.from, false)) {
      /* fill the flow-control window */
    }
    if (m.from === this.leadTransferee && pr.match === this.log.lastIndex()) this.sendTimeoutNow(m.from);
  }

  private onHeartbeatResp(m: HeartbeatResponse): void {
    const pr = this.progress.get(m.from);
    if (pr === undefined) return;
    pr.recentActive = true;
    pr.commit = Math.max(pr.commit, m.commit);
    pr.ackedSentTick = Math.max(pr.ackedSentTick, m.sentTick);
    pr.probeSent = false;
    // Appends may have been lost: free one slot so that the next append finds the gap.
    if (pr.state === ProgressState.Replicate && pr.inflights.full()) pr.inflights.freeFirstOne();
    if (pr.match < this.log.lastIndex()) this.sendAppend(m.from);
    if (m.readSeq > pr.ackedReadSeq) {
      pr.ackedReadSeq = m.readSeq;
      this.releaseConfirmedReads();
    }
  }

  private releaseConfirmedReads(): void {
    const seqs: number[] = [];
    for (const id of this.voters) seqs.push(id === this.id ? this.reads.seq : this.progress.get(id)?.ackedReadSeq ?? 0);
    seqs.sort((a, b) => b - a);
    const confirmed = seqs[quorum(this.voters.size) - 1] ?? 0;
    for (const r of this.reads.release(confirmed)) this.answerRead(r.from, r.ctx, r.index);
  }

  private sendAppend(to: NodeId): void {
    this.maybeSendAppend(to, true);
  }

  /** Sends the next batch of entries to `to` if its flow control allows. Returns whether a
   * message was sent. Falls back to a snapshot when the entries are compacted. */
  private maybeSendAppend(to: NodeId, sendIfEmpty: boolean): boolean {
    const pr = this.progress.get(to);
    if (pr === undefined || pr.isPaused()) return false;
    const prevIndex = pr.next - 1;
    const prevTerm = this.log.term(prevIndex);
    let ents: Entry[] | undefined;
    if (prevTerm !== undefined) {
      try {
        ents = this.log.entries(pr.next, this.cfg.maxSizePerMsgBytes);
      } catch (e) {
        if (!(e instanceof CompactedError)) throw e;
      }
    }
    if (prevTerm === undefined || ents === undefined) return this.sendSnapshot(to, pr);
    if (ents.length === 0 && !sendIfEmpty) return false;
    let bytes = 0;
    for (const e of ents) bytes += entryBytes(e);
    this.send({ type: 'append', from: this.id, to, term: this.term, prevIndex, prevTerm, entries: ents, commit: this.log.committed });
    pr.sentEntries(ents.length, prevIndex + ents.length, bytes);
    return true;
  }

  private sendSnapshot(to: NodeId, pr: Progress): boolean {
    // Do not push a possibly large snapshot at a node we have not heard from lately.
    if (!pr.recentActive) return false;
    let snap = this.log.snapshot();
    if (this.cfg.imagesOnDemand && snap.data.length === 0 && snap.meta.index > 1) {
      // The log was compacted without an image: send the host's, once it has made one that
      // covers everything compacted (the entries after it are still in the log).
      if (this.image === undefined || this.image.meta.index < snap.meta.index) {
        this.wantImage = true;
        return false;
      }
      snap = this.image;
    }
    pr.becomeSnapshot(snap, this.tickCount);
    this.sendSnapshotChunk(to, pr);
    return true;
  }

  /** imagesOnDemand: a follower is waiting for a snapshot image (only a leader asks). */
  imageWanted(): boolean {
    return this.wantImage && this.role === Role.Leader;
  }

  /** imagesOnDemand: the host's image of its state at `index` (applied, and not before the
   * log's snapshot), with the configuration as of that index. Followers waiting are sent it. */
  offerImage(index: number, confState: ConfState, data: Uint8Array): void {
    this.wantImage = false;
    const term = this.log.term(index);
    if (term === undefined || index < this.log.snapshot().meta.index || this.role !== Role.Leader) return;
    this.image = { meta: { index, term, confState: { voters: [...confState.voters], learners: [...confState.learners] } }, data };
    this.imageTick = this.tickCount;
    for (const [id, pr] of this.progress) {
      if (id !== this.id && pr.state !== ProgressState.Snapshot && this.log.term(pr.next - 1) === undefined) this.sendAppend(id);
    }
  }

  /** Forgets an image no send is using once it is an election timeout old (they are large). */
  private dropIdleImage(): void {
    if (this.image === undefined) return;
    if (this.role === Role.Leader && this.tickCount - this.imageTick < this.cfg.electionTicks) return;
    if (this.role === Role.Leader) for (const pr of this.progress.values()) if (pr.snapshotSend?.snapshot === this.image) return;
    this.image = undefined;
  }

  private sendSnapshotChunk(to: NodeId, pr: Progress): void {
    const s = pr.snapshotSend;
    if (s === undefined) return;
    const data = s.snapshot.data;
    const start = Math.min(s.ackedOffset, data.length);
    const end = Math.min(data.length, start + this.cfg.snapshotChunkBytes);
    s.lastSentTick = this.tickCount;
    this.send({
      type: 'snapshot',
      from: this.id,
      to,
      term: this.term,
      meta: s.snapshot.meta,
      offset: start,
      totalBytes: data.length,
      data: data.subarray(start, end),
      done: end === data.length,
    });
  }

  private onSnapshotResp(m: SnapshotChunkResponse): void {
    const pr = this.progress.get(m.from);
    if (pr === undefined) return;
    pr.recentActive = true;
    const s = pr.snapshotSend;
    if (pr.state !== ProgressState.Snapshot || s === undefined || s.snapshot.meta.index !== m.snapshotIndex) return;
    s.ackedOffset = Math.min(m.nextOffset, s.snapshot.data.length);
    this.sendSnapshotChunk(m.from, pr);
  }

  private resendStalledSnapshots(): void {
    for (const [id, pr] of this.progress) {
      const s = pr.snapshotSend;
      if (pr.state !== ProgressState.Snapshot || s === undefined) continue;
      if (this.tickCount - s.lastSentTick < this.cfg.snapshotResendTicks) continue;
      // Restart from the last acknowledged chunk; a lost final chunk is sent again whole.
      const total = s.snapshot.data.length;
      if (s.ackedOffset >= total && total > 0) {
        s.ackedOffset = Math.floor((total - 1) / this.cfg.snapshotChunkBytes) * this.cfg.snapshotChunkBytes;
      }
      this.sendSnapshotChunk(id, pr);
    }
  }

  /** Flush batched proposals: one append per follower for everything proposed since the last
   * flush (bounded per message by maxSizePerMsgBytes, in number by the window). */
  flushProposals(): void {
    if (!this.needBroadcast) return;
    this.needBroadcast = false;
    if (this.role === Role.Leader) this.bcastAppend();
  }

  hasPendingBroadcast(): boolean {
    return this.needBroadcast;
  }

  /** The commit index advanced: tell the followers now, or with the next append (lazy). */
  private noticeCommit(): void {
    if (this.cfg.commitNotice === 'lazy') this.commitUntold = true;
    else this.bcastAppend();
  }

  /** Sends to every follower; one in Replicate state gets as many appends as its window allows
   * (pipelining), one in Probe state a single one. Every append carries the commit index. */
  private bcastAppend(): void {
    this.commitUntold = false;
    for (const id of this.progress.keys()) {
      if (id === this.id) continue;
      this.sendAppend(id);
      while (this.maybeSendAppend(id, false)) {
        /* fill the flow-control window */
      }
    }
  }

  private bcastHeartbeat(quiesce: boolean): void {
    const readSeq = this.reads.unconfirmedSeq();
    for (const [id, pr] of this.progress) {
      if (id === this.id) continue;
      this.sendHeartbeat(id, pr, readSeq, quiesce);
    }
  }

  private sendHeartbeat(to: NodeId, pr: Progress, readSeq: number, quiesce: boolean): void {
    this.send({
      type: 'heartbeat',
      from: this.id,
      to,
      term: this.term,
      commit: Math.min(pr.match, this.log.committed),
      readSeq,
      sentTick: this.tickCount,
      quiesce,
    });
  }

  private quorumActive(): boolean {
    let active = 0;
    for (const id of this.voters) if (id === this.id || this.progress.get(id)?.recentActive) active++;
    return active >= quorum(this.voters.size);
  }

  // ---- Reads -------------------------------------------------------------------------------------

  /** A linearizable read at this node. Returns false if it cannot start (no leader known, or
   * the queue is full); the answer arrives later as a ReadState with the same ctx. */
  readIndex(ctx: string): boolean {
    if (this.quiesced) this.wake();
    if (this.role === Role.Leader) return this.onReadIndex(this.id, ctx);
    if (this.lead === NONE) return false;
    this.send({ type: 'readIndex', from: this.id, to: this.lead, term: this.term, ctx });
    return true;
  }

  private onReadIndex(from: NodeId, ctx: string): boolean {
    if (this.reads.full()) return false;
    if (this.log.term(this.log.committed) !== this.term) {
      this.reads.awaitingCommit.push({ from, ctx });
      return true;
    }
    const index = this.log.committed;
    if (this.voters.size === 1 && this.voters.has(this.id)) {
      this.answerRead(from, ctx, index);
      return true;
    }
    if (this.leaseValid() || this.cfg.plantedBug === 'readWithoutQuorum') {
      this.answerRead(from, ctx, index);
      return true;
    }
    const { seq, newRound } = this.reads.add(from, ctx, index);
    if (newRound) {
      for (const [id, pr] of this.progress) if (id !== this.id) this.sendHeartbeat(id, pr, seq, false);
    }
    return true;
  }

  private answerRead(from: NodeId, ctx: string, index: number): void {
    if (from === this.id) this.readStates.push({ index, ctx });
    else this.send({ type: 'readIndexResp', from: this.id, to: from, term: this.term, ctx, index });
  }

  /** The leader lease: a quorum acknowledged heartbeats sent at or after tick s, and each of
   * them ignores vote requests for electionTicks after receiving one, so no other leader can
   * exist before s + electionTicks (less a margin for clock-rate differences). */
  leaseValid(): boolean {
    if (this.cfg.readOnly !== ReadOnlyOption.Lease || !this.cfg.checkQuorum) return false;
    if (this.role !== Role.Leader || this.quiesced || this.leadTransferee !== NONE || this.leaseRevoked) return false;
    const sent: number[] = [];
    for (const id of this.voters) sent.push(id === this.id ? this.tickCount : this.progress.get(id)?.ackedSentTick ?? -1);
    sent.sort((a, b) => b - a);
    const s = sent[quorum(this.voters.size) - 1] ?? -1;
    return s >= 0 && this.tickCount < s + this.cfg.electionTicks - this.cfg.leaseSafetyTicks;
  }

  /** Called by the host-facing layer when the host has clear the message queue. */
  onMessagesTaken(): void {
    this.reads.roundOpen = false;
  }

  // ---- Proposals, membership, transfer -------------------------------------------------------

  propose(data: readonly Uint8Array[]): ProposeResult {
    if (this.quiesced) this.wake();
    const refused = this.refuseProposal();
    if (refused !== undefined) return refused;
    if (data.length === 0) return { ok: false, reason: 'invalid', leader: this.id };
    const first = this.log.lastIndex() + 1;
    this.appendEntries(data.map((d) => ({ term: 0, index: 0, type: EntryType.Normal, data: d })));
    this.needBroadcast = true;
    return { ok: true, index: first, term: this.term };
  }

  proposeConfChange(cc: ConfChange): ProposeResult {
    if (this.quiesced) this.wake();
    const refused = this.refuseProposal();
    if (refused !== undefined) return refused;
    const no = (reason: 'confChangePending' | 'invalid' | 'learnerBehind'): ProposeResult => ({ ok: false, reason, leader: this.id });
    if (this.pendingConfIndex > this.log.applied) return no('confChangePending');
    switch (cc.type) {
      case ConfChangeType.AddVoter: {
        if (this.voters.has(cc.nodeId)) return no('invalid');
        // A learner is promoted only once caught up, so the new quorum is not left waiting.
        const pr = this.progress.get(cc.nodeId);
        if (pr !== undefined && pr.isLearner && pr.match < this.log.committed) return no('learnerBehind');
        break;
      }
      case ConfChangeType.AddLearner:
        if (this.voters.has(cc.nodeId) || this.learners.has(cc.nodeId)) return no('invalid');
        break;
      case ConfChangeType.RemoveNode:
        if (!this.voters.has(cc.nodeId) && !this.learners.has(cc.nodeId)) return no('invalid');
        if (this.voters.has(cc.nodeId) && this.voters.size === 1) return no('invalid');
        break;
      default:
        assertNever(cc.type);
    }
    const first = this.log.lastIndex() + 1;
    this.appendEntries([{ term: 0, index: 0, type: EntryType.ConfChange, data: encodeConfChange(cc) }]);
    this.pendingConfIndex = this.log.lastIndex();
    this.needBroadcast = true;
    return { ok: true, index: first, term: this.term };
  }

  private refuseProposal(): ProposeResult | undefined {
    if (this.role !== Role.Leader) return { ok: false, reason: 'notLeader', leader: this.lead };
    if (this.leadTransferee !== NONE) return { ok: false, reason: 'transferring', leader: this.id };
    if (this.log.lastIndex() - this.log.committed >= this.cfg.maxUncommittedEntries) {
      return { ok: false, reason: 'tooManyUncommitted', leader: this.id };
    }
    return undefined;
  }

  transferLeadership(transferee: NodeId): void {
    if (this.quiesced) this.wake();
    if (this.role === Role.Leader) this.onTransferLeader(transferee);
    else if (this.lead !== NONE) {
      this.send({ type: 'transferLeader', from: this.id, to: this.lead, term: this.term, transferee });
    }
  }

  private onTransferLeader(transferee: NodeId): void {
    if (!this.voters.has(transferee) || transferee === this.id) return;
    if (this.leadTransferee === transferee) return;
    this.leadTransferee = transferee;
    this.leaseRevoked = true;
    // The transfer must finish within an election timeout or it is abandoned (tickHeartbeat).
    this.electionElapsed = 0;
    const pr = this.progress.get(transferee);
    if (pr !== undefined && pr.match === this.log.lastIndex()) this.sendTimeoutNow(transferee);
    else this.sendAppend(transferee);
  }

  private sendTimeoutNow(to: NodeId): void {
    this.send({ type: 'timeoutNow', from: this.id, to, term: this.term });
  }

  /** Called after the host applied a batch of committed entries (advance). */
  afterApply(): void {
    if (this.transferCampaignTerm === 0) return;
    if (this.transferCampaignTerm !== this.term || this.role !== Role.Follower) {
      this.transferCampaignTerm = 0;
    } else if (!this.hasUnappliedConfChanges()) {
      this.transferCampaignTerm = 0;
      this.hup('transfer');
    }
  }

  /** Applies a committed membership change; the host has applied the entry (advance). */
  applyConfChange(cc: ConfChange, index: number): void {
    if (index <= this.confIndex) return; // already part of a newer snapshot's configuration
    this.confIndex = index;
    this.applyConfState(applyToConfState(this.confState(), cc));
    if (this.role !== Role.Leader) return;
    if (!this.voters.has(this.id)) {
      // The leader removed itself (section 4.2.2). Hand over to the most up-to-date voter at
      // once instead of making the cluster wait an election timeout, then step down.
      let best: Progress | undefined;
      for (const id of this.voters) {
        const pr = this.progress.get(id);
        if (pr !== undefined && (best === undefined || pr.match > best.match)) best = pr;
      }
      if (best !== undefined && best.match === this.log.lastIndex()) this.sendTimeoutNow(best.id);
      this.becomeFollower(this.term, NONE);
      return;
    }
    if (this.leadTransferee !== NONE && !this.voters.has(this.leadTransferee)) this.leadTransferee = NONE;
    if (this.maybeCommit()) this.bcastAppend();
    else this.needBroadcast = true;
  }

  private applyConfState(cs: ConfState): void {
    this.voters = new Set(cs.voters);
    this.learners = new Set(cs.learners);
    const next = new Map<NodeId, Progress>();
    for (const id of [...cs.voters, ...cs.learners]) {
      const isLearner = this.learners.has(id);
      const pr = this.progress.get(id) ?? this.newProgress(id, isLearner);
      pr.isLearner = isLearner;
      if (id === this.id) pr.match = Math.max(pr.match, this.role === Role.Leader ? this.log.lastIndex() : 0);
      next.set(id, pr);
    }
    this.progress = next;
  }

  private send(m: Message): void {
    this.msgs.push(m);
  }

  decodeConfChangeEntry(e: Entry): ConfChange {
    return decodeConfChange(e.data);
  }
}

function isVoteRequest(m: Message): m is VoteRequest {
  return m.type === 'vote' || m.type === 'preVote';
}

/** Votes (or replicas) needed out of n voters. */
export function quorum(n: number): number {
  return Math.floor(n / 2) + 1;
}
