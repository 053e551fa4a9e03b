// The host-facing face of one Raft group: inputs (tick, step, propose, readIndex, membership,
// transfer, wake) and the Ready/advance handshake. Like etcd's RawNode: synchronous, owns no
// timer and no thread, so a host can drive thousands of groups from one loop.

import { decodeConfChange, type ConfChange } from './confchange';
import type { ProposeResult, RaftConfig } from './config';
import { Raft } from './raft';
import type { ProgressState } from './progress';
import {
  EntryType,
  isHardStateEqual,
  type ConfState,
  type HardState,
  type Message,
  type NodeId,
  type Ready,
  type Role,
  type SoftState,
} from './types';

export interface ProgressStatus {
  readonly match: number;
  readonly next: number;
  readonly state: ProgressState;
  readonly isLearner: boolean;
  /** While a snapshot is being sent: bytes the follower acknowledged, of the snapshot's size. */
  readonly snapshotAcked?: number;
  readonly snapshotBytes?: number;
}

export interface Status {
  readonly id: NodeId;
  readonly term: number;
  readonly vote: NodeId;
  readonly leader: NodeId;
  readonly role: Role;
  readonly commit: number;
  readonly applied: number;
  readonly lastIndex: number;
  readonly firstIndex: number;
  readonly confState: ConfState;
  readonly quiesced: boolean;
  readonly leadTransferee: NodeId;
  /** Only on the leader. */
  readonly progress: ReadonlyMap<NodeId, ProgressStatus>;
}

export class RaftNode {
  private readonly raft: Raft;
  private prevSoft: SoftState;
  private prevHard: HardState;
  private readonly maxCommittedBytes: number;
  /** A Ready handed out and not yet advanced: the next ready() must wait for it. */
  private outstanding = false;

  constructor(config: RaftConfig) {
    this.raft = new Raft(config);
    this.prevSoft = { leader: this.raft.lead, role: this.raft.role };
    this.prevHard = this.hardState();
    this.maxCommittedBytes = config.maxCommittedSizePerReadyBytes ?? 16 << 20;
  }

  get id(): NodeId {
    return this.raft.id;
  }

  /** One unit of logical time. Election and heartbeat timeouts are counted in ticks. */
  tick(): void {
    this.raft.tick();
  }

  /** Deliver a message from a peer. */
  step(m: Message): void {
    if (m.to !== this.raft.id) return;
    this.raft.step(m);
  }

  /** Propose entries; on success they were given indexes [index, index + data.length) in
   * `term`. The host learns the outcome when it applies that index: the same term means the
   * entry committed, any other term means it was lost with a leader change. */
  propose(data: Uint8Array | readonly Uint8Array[]): ProposeResult {
    return this.raft.propose(data instanceof Uint8Array ? [data] : data);
  }

  proposeConfChange(cc: ConfChange): ProposeResult {
    return this.raft.proposeConfChange(cc);
  }

  /** Start a linearizable read. The answer is a ReadState with this ctx in a later Ready: serve
   * the read once the state machine has applied its index. False: retry later or elsewhere. */
  readIndex(ctx: string): boolean {
    return this.raft.readIndex(ctx);
  }

  transferLeadership(to: NodeId): void {
    this.raft.transferLeadership(to);
  }

  /** Start an election now (if this node may). For tests and for a host that knows better. */
  campaign(): void {
    this.raft.hup('election');
  }

  /** Leave quiescence (see RaftConfig.quiesceAfterTicks). */
  wake(): void {
    this.raft.wake();
  }

  get quiesced(): boolean {
    return this.raft.quiesced;
  }

  hasReady(): boolean {
    if (this.outstanding) return false;
    const r = this.raft;
    if (r.hasPendingBroadcast()) return true;
    if (r.lead !== this.prevSoft.leader || r.role !== this.prevSoft.role) return true;
    if (!isHardStateEqual(this.hardState(), this.prevHard)) return true;
    if (r.log.unstable.snapshot !== undefined || r.log.unstableEntries().length > 0) return true;
    return r.msgs.length > 0 || r.readStates.length > 0 || r.log.hasNextCommittedEntries();
  }

  /** The next batch of work; see Ready for the order the host must follow. Call advance() with
   * it before asking again. */
  ready(): Ready {
    if (this.outstanding) throw new Error('raft: ready() called again before advance()');
    const r = this.raft;
    r.flushProposals();
    const soft: SoftState = { leader: r.lead, role: r.role };
    const hard = this.hardState();
    const rd: Ready = {
      softState: soft.leader !== this.prevSoft.leader || soft.role !== this.prevSoft.role ? soft : undefined,
      hardState: isHardStateEqual(hard, this.prevHard) ? undefined : hard,
      entries: [...r.log.unstableEntries()],
      snapshot: r.log.unstable.snapshot,
      messages: r.msgs,
      committedEntries: r.log.nextCommittedEntries(this.maxCommittedBytes),
      readStates: r.readStates,
    };
    r.msgs = [];
    r.readStates = [];
    r.onMessagesTaken();
    this.prevSoft = soft;
    this.prevHard = hard;
    this.outstanding = true;
    return rd;
  }

  /** The host has persisted, sent and applied `rd`. Membership changes among its committed
   * entries take effect now. */
  advance(rd: Ready): void {
    if (!this.outstanding) throw new Error('raft: advance() without ready()');
    const log = this.raft.log;
    if (rd.snapshot !== undefined) {
      log.stableSnapTo(rd.snapshot.meta.index);
      if (log.applied < rd.snapshot.meta.index) log.applied = rd.snapshot.meta.index;
    }
    const lastEntry = rd.entries[rd.entries.length - 1];
    if (lastEntry !== undefined) log.stableTo(lastEntry.index, lastEntry.term);
    const lastCommitted = rd.committedEntries[rd.committedEntries.length - 1];
    if (lastCommitted !== undefined) {
      log.appliedTo(lastCommitted.index);
      for (const e of rd.committedEntries) {
        if (e.type === EntryType.ConfChange) this.raft.applyConfChange(decodeConfChange(e.data), e.index);
      }
      this.raft.afterApply();
    }
    this.outstanding = false;
  }

  /** imagesOnDemand: a follower waits for a snapshot image; the host makes one at its applied
   * index and hands it to offerImage (docs/node-store.md, "Snapshots"). */
  imageWanted(): boolean {
    return this.raft.imageWanted();
  }

  offerImage(index: number, confState: ConfState, data: Uint8Array): void {
    this.raft.offerImage(index, confState, data);
  }

  /** The configuration as of the applied index: what a snapshot taken now must record. */
  confState(): ConfState {
    return this.raft.confState();
  }

  status(): Status {
    const r = this.raft;
    const progress = new Map<NodeId, ProgressStatus>();
    if (r.role === 'leader') {
      for (const [id, pr] of r.progress) {
        const snap = pr.snapshotSend;
        progress.set(id, {
          match: pr.match,
          next: pr.next,
          state: pr.state,
          isLearner: pr.isLearner,
          ...(snap ? { snapshotAcked: snap.ackedOffset, snapshotBytes: snap.snapshot.data.length } : {}),
        });
      }
    }
    return {
      id: r.id,
      term: r.term,
      vote: r.vote,
      leader: r.lead,
      role: r.role,
      commit: r.log.committed,
      applied: r.log.applied,
      lastIndex: r.log.lastIndex(),
      firstIndex: r.log.firstIndex(),
      confState: r.confState(),
      quiesced: r.quiesced,
      leadTransferee: r.leadTransferee,
      progress,
    };
  }

  /** Term of entry i in this node's log (undefined if compacted or absent). For checkers. */
  termAt(i: number): number | undefined {
    return this.raft.log.term(i);
  }

  /** Whether this leader may serve a read from its state machine right now, without a round
   * trip: it holds a valid lease (Lease option only), has committed an entry of its own term,
   * and the host has applied everything committed (`applied` >= commit). Every write a client
   * saw acknowledged was applied here, and no other leader can exist until the lease ends. */
  canReadLocally(applied: number): boolean {
    const r = this.raft;
    return applied >= r.log.committed && r.log.term(r.log.committed) === r.term && r.leaseValid();
  }

  /** Whether reads may be served from the lease right now (Lease read option only). */
  leaseValid(): boolean {
    return this.raft.leaseValid();
  }

  private hardState(): HardState {
    return { term: this.raft.term, vote: this.raft.vote, commit: this.raft.log.committed };
  }
}
