// One simulated server hosting one Raft group: the driver a real host would be, with its disk
// modelled so that a crash loses every write not yet synced. A Ready is "being synced" for a
// seeded number of ticks; its messages leave only when the sync completes, as Raft requires.
// The storage object is the durable disk: it survives crashes; the host object does not.

import {
  EntryType,
  MemoryStorage,
  NONE,
  RaftNode,
  SeededRng,
  type Message,
  type RaftConfig,
  type Ready,
} from '../../src/raft';
import type { SafetyChecker } from './checkers';
import { KvStateMachine, decodePut } from './kv';

/** Host-level liveness ping (coalesced across groups in a real host; one group here). */
export interface Ping {
  readonly type: 'ping';
  readonly from: number;
  readonly to: number;
}
export type SimMessage = Message | Ping;

export interface HostEnv {
  now(): number;
  send(m: SimMessage): void;
  checker: SafetyChecker;
  onWriteDone(opId: number, committed: boolean): void;
  onReadDone(opId: number, value: string | null): void;
}

/** imagesOnDemand: the state machine's durable copy, made at each compaction (a real region
 * keeps it in its store, synced before the log is compacted). Keyed by the storage object,
 * which is the disk: it survives crashes. */
const storeImages = new WeakMap<MemoryStorage, { index: number; data: Uint8Array }>();

export interface HostConfig {
  readonly raft: Omit<RaftConfig, 'id' | 'storage' | 'rng' | 'applied'>;
  readonly snapshotEveryEntries: number;
  readonly keepTailEntries: number;
  readonly maxSyncDelayTicks: number;
  readonly pingEveryTicks: number;
}

/** Ready batches handled per host per tick: a bound, not a tuning knob. */
const MAX_READY_PER_TICK = 4;

export class SimHost {
  readonly node: RaftNode;
  sm: KvStateMachine;
  private pending: { rd: Ready; syncAt: number } | undefined = undefined;
  /** Client writes proposed here: index -> (term, op). */
  private readonly proposals = new Map<number, { term: number; opId: number; key: string }>();
  /** Client reads started here: ctx -> op, and the read index once known. */
  private readonly reads = new Map<string, { opId: number; key: string; index: number | undefined }>();
  private readonly lastHeard = new Map<number, number>();
  private commitChecked: number;
  private lastSnapshotIndex: number;

  constructor(
    readonly id: number,
    readonly storage: MemoryStorage,
    private readonly cfg: HostConfig,
    private readonly env: HostEnv,
    private readonly rng: SeededRng,
    private tickNow: number,
  ) {
    const snap = storage.snapshot();
    this.node = new RaftNode({ ...cfg.raft, id, storage, rng: new SeededRng(rng.intn(2 ** 31)), applied: snap.meta.index });
    // A compaction snapshot without an image: the state comes from the store's copy.
    const kept = snap.data.length === 0 && snap.meta.index > 1 ? storeImages.get(storage) : undefined;
    if (snap.data.length === 0 && snap.meta.index > 1 && kept?.index !== snap.meta.index) throw new Error(`sim host ${id}: compacted at ${snap.meta.index} but the store holds ${kept?.index}`);
    this.sm = KvStateMachine.restore(kept?.data ?? snap.data, snap.meta.index);
    this.commitChecked = storage.firstIndex() - 1;
    this.lastSnapshotIndex = snap.meta.index;
  }

  deliver(m: SimMessage): void {
    this.lastHeard.set(m.from, this.tickNow);
    if (m.type === 'ping') return;
    this.node.step(m);
  }

  tick(now: number): void {
    this.tickNow = now;
    this.node.tick();
    if (this.cfg.pingEveryTicks > 0) this.livenessWatch(now);
  }

  /** Node-level liveness, as a real host would run once for all its groups: ping peers, and
   * wake a quiet group whose leader (or, on the leader, whose quorum) went silent. */
  private livenessWatch(now: number): void {
    const st = this.node.status();
    const peers = [...st.confState.voters, ...st.confState.learners].filter((p) => p !== this.id);
    if (now % this.cfg.pingEveryTicks === 0) for (const p of peers) this.env.send({ type: 'ping', from: this.id, to: p });
    if (!this.node.quiesced) return;
    const silent = (p: number): boolean => now - (this.lastHeard.get(p) ?? -1e9) > this.cfg.raft.electionTicks;
    if (st.role === 'leader' ? st.confState.voters.some((v) => v !== this.id && silent(v)) : st.leader === NONE || silent(st.leader)) {
      this.node.wake();
    }
  }

  /** Handles Readys: hands a new one to the "disk" and completes those whose sync is done. */
  process(now: number): void {
    this.tickNow = now;
    for (let i = 0; i < MAX_READY_PER_TICK; i++) {
      if (this.pending !== undefined) {
        if (this.pending.syncAt > now) break;
        const { rd } = this.pending;
        this.pending = undefined;
        this.complete(rd);
      }
      // A follower needs a snapshot and the log was compacted without an image: make one.
      if (this.node.imageWanted()) this.node.offerImage(this.sm.appliedIndex, this.node.confState(), this.sm.snapshot());
      if (!this.node.hasReady()) break;
      const rd = this.node.ready();
      this.pending = { rd, syncAt: now + this.rng.intn(this.cfg.maxSyncDelayTicks + 1) };
    }
    this.observeCommit();
  }

  private complete(rd: Ready): void {
    // 1. Persist (the sync has completed). 2. Send. 3. Apply. 4. Advance.
    if (rd.snapshot !== undefined) this.storage.applySnapshot(rd.snapshot);
    this.storage.append(rd.entries);
    if (rd.hardState !== undefined) this.storage.setHardState(rd.hardState);
    for (const m of rd.messages) this.env.send(m);
    if (rd.snapshot !== undefined) {
      this.sm = KvStateMachine.restore(rd.snapshot.data, rd.snapshot.meta.index);
      this.env.checker.observeCommitted(this.id, rd.snapshot.meta.index, rd.snapshot.meta.term);
      this.env.checker.observeChain(this.id, rd.snapshot.meta.index, this.sm.chain);
      this.lastSnapshotIndex = rd.snapshot.meta.index;
      // Proposals at or below the snapshot can no longer be matched to entries: unknown outcome.
      for (const [index] of this.proposals) if (index <= rd.snapshot.meta.index) this.proposals.delete(index);
    }
    for (const e of rd.committedEntries) {
      this.sm.apply(e);
      this.env.checker.observeApplied(this.id, e, this.sm.chain);
      const p = this.proposals.get(e.index);
      if (p !== undefined) {
        this.proposals.delete(e.index);
        const cmd = e.type === EntryType.Normal ? decodePut(e.data) : undefined;
        this.env.onWriteDone(p.opId, e.term === p.term && cmd?.key === p.key);
      }
    }
    for (const rs of rd.readStates) {
      const r = this.reads.get(rs.ctx);
      if (r !== undefined && r.index === undefined) r.index = rs.index;
    }
    this.node.advance(rd);
    this.answerReads();
    this.maybeSnapshot();
  }

  private answerReads(): void {
    for (const [ctx, r] of this.reads) {
      if (r.index !== undefined && r.index <= this.sm.appliedIndex) {
        this.reads.delete(ctx);
        this.env.onReadDone(r.opId, this.sm.map.get(r.key) ?? null);
      }
    }
  }

  private maybeSnapshot(): void {
    const applied = this.sm.appliedIndex;
    if (applied - this.lastSnapshotIndex < this.cfg.snapshotEveryEntries) return;
    if (this.cfg.raft.imagesOnDemand) {
      storeImages.set(this.storage, { index: applied, data: this.sm.snapshot() });
      this.storage.createSnapshot(applied, this.node.confState(), new Uint8Array(0));
    } else {
      this.storage.createSnapshot(applied, this.node.confState(), this.sm.snapshot());
    }
    this.storage.compact(Math.max(1, applied - this.cfg.keepTailEntries + 1));
    this.lastSnapshotIndex = applied;
  }

  private observeCommit(): void {
    const st = this.node.status();
    if (st.role === 'leader') this.env.checker.observeLeader(st.term, this.id);
    if (st.commit <= this.commitChecked) return;
    for (let i = Math.max(this.commitChecked + 1, st.firstIndex); i <= st.commit; i++) {
      const t = this.node.termAt(i);
      if (t !== undefined) this.env.checker.observeCommitted(this.id, i, t);
    }
    this.commitChecked = st.commit;
  }

  /** A client write; false if refused (the client then looks elsewhere). */
  write(opId: number, key: string, value: string): { ok: boolean; leaderHint: number } {
    const r = this.node.propose(Buffer.from(`${key}=${value}`));
    if (!r.ok) return { ok: false, leaderHint: r.leader };
    this.proposals.set(r.index, { term: r.term, opId, key });
    return { ok: true, leaderHint: this.id };
  }

  read(opId: number, key: string): boolean {
    const ctx = `r${opId}`;
    if (!this.node.readIndex(ctx)) return false;
    this.reads.set(ctx, { opId, key, index: undefined });
    return true;
  }

  /** Ops this host was serving when it crashed: writes become unknown, reads vanish. */
  abandonedWrites(): number[] {
    return [...this.proposals.values()].map((p) => p.opId);
  }

  abandonedReads(): number[] {
    return [...this.reads.values()].map((r) => r.opId);
  }

  forgetRead(opId: number): void {
    for (const [ctx, r] of this.reads) if (r.opId === opId) this.reads.delete(ctx);
  }
}
