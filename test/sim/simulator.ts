// The deterministic simulation of a Raft group (after TigerBeetle's VOPR and FoundationDB's
// simulator). One seed sets everything: cluster size, protocol options, fault rates, workload.
// A run has a fault phase (lossy, reordering, duplicating network; partitions of every shape;
// crashes that lose unsynced writes; restarts; membership changes; leadership transfers;
// snapshots) and a heal phase that must elect a leader and commit within a bounded number of
// ticks. Checkers (checkers.ts, linearizability.ts) judge the run from outside.

import { ConfChangeType, NONE, ReadOnlyOption, SeededRng, MemoryStorage, type RaftConfig } from '../../src/raft';
import { SafetyChecker } from './checkers';
import { SimHost, type HostConfig, type SimMessage } from './host';
import { checkLinearizable, type Op } from './linearizability';
import { SimNetwork, CALM, type NetworkFaults } from './network';

export interface SimOptions {
  /** TEST ONLY: run every node with a deliberately broken rule. */
  readonly plantedBug?: RaftConfig['plantedBug'];
  /** Override the seeded fault-phase length. */
  readonly faultTicks?: number;
  /** Override seeded protocol options (applied after the seed's choices). */
  readonly raft?: Partial<HostConfig['raft']>;
  /** Override seeded fault rates (per tick probabilities). */
  readonly rates?: Partial<Simulation['rates']>;
  /** Force the cluster size (3 or 5). */
  readonly nodes?: number;
}

export interface SimResult {
  readonly seed: number;
  readonly summary: string;
  readonly violations: readonly string[];
  readonly stats: {
    ticks: number;
    committed: number;
    writes: number;
    reads: number;
    crashes: number;
    confChanges: number;
    snapshotsSent: number;
    healTicks: number;
  };
}

interface ClientOp {
  readonly id: number;
  readonly kind: 'write' | 'read';
  readonly key: string;
  value: string | null;
  readonly call: number;
  ret: number;
  /** Client gave up at this tick (outcome may still arrive for writes). */
  deadline: number;
  done: boolean;
  failed: boolean;
}

interface Client {
  readonly id: number;
  op: ClientOp | undefined;
  leaderHint: number;
  seq: number;
}

/** Bounds of a run; the heal phase must converge within HEAL_LIMIT_TICKS. */
const HEAL_LIMIT_TICKS = 400;
const CONVERGE_LIMIT_TICKS = 400;
const CLIENT_TIMEOUT_TICKS = 60;
const KEYS = ['a', 'b', 'c'];

export function runSimulation(seed: number, opts: SimOptions = {}): SimResult {
  return new Simulation(seed, opts).run();
}

class Simulation {
  private readonly rng: SeededRng;
  private readonly net: SimNetwork<SimMessage>;
  private readonly checker = new SafetyChecker();
  private readonly hosts = new Map<number, SimHost>();
  private readonly storages = new Map<number, MemoryStorage>();
  private readonly restartAt = new Map<number, number>();
  /** Node ids ever started; spares join as learners. */
  private readonly known: number[] = [];
  private nextId: number;
  private tickNow = 0;
  private clock = 0;
  private readonly ops = new Map<number, ClientOp>();
  private readonly clients: Client[] = [];
  private nextOpId = 1;
  private readonly hostCfg: HostConfig;
  private readonly size: number;
  private readonly faultTicks: number;
  readonly rates: { crash: number; partition: number; confChange: number; transfer: number; clientOp: number };
  private readonly faults: NetworkFaults;
  private stats = { ticks: 0, committed: 0, writes: 0, reads: 0, crashes: 0, confChanges: 0, snapshotsSent: 0, healTicks: 0 };
  private partitionUntil = 0;
  private idleUntil = 0;

  constructor(readonly seed: number, opts: SimOptions) {
    this.rng = new SeededRng(seed);
    const r = this.rng;
    this.net = new SimNetwork(new SeededRng(r.intn(2 ** 31)));
    this.size = r.chance(0.5) ? 3 : 5;
    if (opts.nodes !== undefined) this.size = opts.nodes;
    this.nextId = this.size + 1;
    const checkQuorum = r.chance(0.8);
    const electionTicks = 10;
    this.hostCfg = {
      raft: {
        electionTicks,
        heartbeatTicks: 1 + r.intn(3),
        preVote: r.chance(0.8),
        checkQuorum,
        readOnly: checkQuorum && r.chance(0.4) ? ReadOnlyOption.Lease : ReadOnlyOption.Safe,
        quiesceAfterTicks: r.chance(0.3) ? 3 + r.intn(15) : 0,
        maxInflightMsgs: 1 + r.intn(8),
        maxSizePerMsgBytes: 64 + r.intn(512),
        snapshotChunkBytes: 16 + r.intn(256),
        // From the seed's parity, not the generator: earlier seeds keep their scenarios.
        commitNotice: this.seed % 2 === 0 ? 'lazy' : 'immediate',
        imagesOnDemand: Math.floor(this.seed / 2) % 2 === 1,
        plantedBug: opts.plantedBug,
        ...opts.raft,
      },
      snapshotEveryEntries: 5 + r.intn(40),
      keepTailEntries: r.intn(6),
      maxSyncDelayTicks: r.intn(4),
      pingEveryTicks: 2,
    };
    this.faultTicks = opts.faultTicks ?? 500 + r.intn(700);
    this.rates = {
      crash: 0.001 + r.next() * 0.008,
      partition: 0.005 + r.next() * 0.02,
      confChange: r.next() * 0.02,
      transfer: r.next() * 0.01,
      clientOp: 0.1 + r.next() * 0.5,
      ...opts.rates,
    };
    this.faults = {
      dropRate: r.next() * 0.15,
      duplicateRate: r.next() * 0.08,
      minDelayTicks: 0,
      maxDelayTicks: 1 + r.intn(6),
    };
    const ids = Array.from({ length: this.size }, (_, i) => i + 1);
    for (const id of ids) this.startNode(id, MemoryStorage.bootstrap(ids));
    for (let c = 0; c < 2 + r.intn(3); c++) this.clients.push({ id: c + 1, op: undefined, leaderHint: NONE, seq: 0 });
  }

  private describe(): string {
    const c = this.hostCfg;
    return (
      `seed=${this.seed} nodes=${this.size} faultTicks=${this.faultTicks} preVote=${c.raft.preVote} ` +
      `checkQuorum=${c.raft.checkQuorum} readOnly=${c.raft.readOnly} quiesce=${c.raft.quiesceAfterTicks} commitNotice=${c.raft.commitNotice} ` +
      `heartbeat=${c.raft.heartbeatTicks} inflight=${c.raft.maxInflightMsgs} snapEvery=${c.snapshotEveryEntries} ` +
      `syncDelay=${c.maxSyncDelayTicks} drop=${this.faults.dropRate.toFixed(3)} dup=${this.faults.duplicateRate.toFixed(3)} ` +
      `delay<=${this.faults.maxDelayTicks} crash=${this.rates.crash.toFixed(4)}`
    );
  }

  run(): SimResult {
    this.net.faults = this.faults;
    for (; this.tickNow < this.faultTicks; ) {
      this.faultStep();
      this.step(true);
    }
    this.heal();
    this.checkHistory();
    return { seed: this.seed, summary: this.describe(), violations: this.checker.violations, stats: this.stats };
  }

  // ---- The world ---------------------------------------------------------------------------------

  private startNode(id: number, storage: MemoryStorage): void {
    this.storages.set(id, storage);
    if (!this.known.includes(id)) this.known.push(id);
    const env = {
      now: () => ++this.clock,
      send: (m: SimMessage) => {
        if (m.type === 'snapshot' && m.offset === 0) this.stats.snapshotsSent++;
        this.net.send(m, this.tickNow);
      },
      checker: this.checker,
      onWriteDone: (opId: number, committed: boolean) => this.writeDone(opId, committed),
      onReadDone: (opId: number, value: string | null) => this.readDone(opId, value),
    };
    this.hosts.set(id, new SimHost(id, storage, this.hostCfg, env, new SeededRng(this.rng.intn(2 ** 31)), this.tickNow));
  }

  private crash(id: number): void {
    const h = this.hosts.get(id);
    if (h === undefined) return;
    // Writes it was serving keep an unknown outcome (ret stays Infinity); its reads vanish.
    for (const opId of h.abandonedReads()) this.dropOp(opId);
    this.hosts.delete(id);
    this.stats.crashes++;
  }

  /** One tick of the world: deliver, tick, process Readys, run clients. */
  private step(faulty: boolean): void {
    this.tickNow++;
    this.stats.ticks++;
    for (const e of this.net.due(this.tickNow)) this.guard(e.to, (h) => h.deliver(e.msg));
    for (const id of this.sortedHostIds()) this.guard(id, (h) => h.tick(this.tickNow));
    for (const id of this.sortedHostIds()) this.guard(id, (h) => h.process(this.tickNow));
    for (const [id, at] of [...this.restartAt]) {
      if (at <= this.tickNow) {
        this.restartAt.delete(id);
        this.startNode(id, this.storages.get(id) as MemoryStorage);
      }
    }
    this.runClients(faulty);
  }

  /** Runs host code; an invariant the core asserts (a thrown error) is a violation, and the
   * node is taken down for good, as a real process would crash. */
  private guard(id: number, f: (h: SimHost) => void): void {
    const h = this.hosts.get(id);
    if (h === undefined) return;
    try {
      f(h);
    } catch (e) {
      this.checker.fail(`node ${id} threw: ${(e as Error).message}`);
      this.crash(id);
      this.storages.delete(id);
      this.restartAt.delete(id);
    }
  }

  private sortedHostIds(): number[] {
    return [...this.hosts.keys()].sort((a, b) => a - b);
  }

  /** The configuration as the newest committed state shows it: that of the live node with the
   * highest applied index. */
  private currentConfig(): { voters: number[]; learners: number[] } {
    let best: SimHost | undefined;
    for (const h of this.hosts.values()) if (best === undefined || h.sm.appliedIndex > best.sm.appliedIndex) best = h;
    if (best === undefined) return { voters: [], learners: [] };
    const cs = best.node.confState();
    return { voters: [...cs.voters], learners: [...cs.learners] };
  }

  private leaderHost(): SimHost | undefined {
    let best: SimHost | undefined;
    for (const h of this.hosts.values()) {
      const st = h.node.status();
      if (st.role === 'leader' && (best === undefined || st.term > best.node.status().term)) best = h;
    }
    return best;
  }

  // ---- Faults ------------------------------------------------------------------------------------

  private faultStep(): void {
    const r = this.rng;
    const all = this.known;
    if (r.chance(this.rates.crash)) {
      const live = this.sortedHostIds();
      if (live.length > 0) {
        const id = r.pick(live);
        this.crash(id);
        this.restartAt.set(id, this.tickNow + 5 + r.intn(100));
      }
    }
    if (this.tickNow >= this.partitionUntil && this.net.cutCount() > 0) this.net.healLinks();
    if (this.net.cutCount() === 0 && r.chance(this.rates.partition)) {
      this.partitionUntil = this.tickNow + 10 + r.intn(120);
      const shape = r.intn(4);
      const shuffled = [...all].sort(() => r.next() - 0.5);
      if (shape === 0) {
        const k = 1 + r.intn(Math.max(1, Math.floor(all.length / 2)));
        this.net.split(shuffled.slice(0, k), shuffled.slice(k));
      } else if (shape === 1) {
        // Asymmetric: one node hears nothing from some others but still talks to them.
        const a = shuffled[0] as number;
        for (const b of shuffled.slice(1, 1 + r.intn(all.length))) this.net.cutLink(b, a);
      } else if (shape === 2) {
        const l = this.leaderHost();
        if (l !== undefined) this.net.isolate(l.id, all);
      } else {
        // A bridge: two sides that only shuffled[0] connects (the classic check-quorum case).
        const rest = shuffled.slice(1);
        const half = Math.floor(rest.length / 2);
        this.net.split(rest.slice(0, half), rest.slice(half));
      }
    }
    const leader = this.leaderHost();
    if (leader !== undefined && r.chance(this.rates.confChange)) this.changeMembership(leader);
    if (leader !== undefined && r.chance(this.rates.transfer)) {
      leader.node.transferLeadership(r.pick(this.currentConfig().voters));
    }
  }

  private changeMembership(leader: SimHost): void {
    const r = this.rng;
    const cfg = this.currentConfig();
    const learner = cfg.learners[0];
    if (learner !== undefined) {
      const res = leader.node.proposeConfChange({ type: ConfChangeType.AddVoter, nodeId: learner });
      if (res.ok) this.stats.confChanges++;
      return;
    }
    if (cfg.voters.length > this.size || (cfg.voters.length > 3 && r.chance(0.3))) {
      // Remove a voter, sometimes the leader itself.
      const victim = r.chance(0.3) ? leader.id : r.pick(cfg.voters);
      const res = leader.node.proposeConfChange({ type: ConfChangeType.RemoveNode, nodeId: victim });
      if (res.ok) this.stats.confChanges++;
      return;
    }
    if (this.nextId > this.size + 4) return; // bound the number of nodes ever started
    const id = this.nextId;
    const res = leader.node.proposeConfChange({ type: ConfChangeType.AddLearner, nodeId: id });
    if (res.ok) {
      this.nextId++;
      this.stats.confChanges++;
      this.startNode(id, MemoryStorage.bootstrap([]));
    }
  }

  // ---- Heal phase and liveness -------------------------------------------------------------------

  private heal(): void {
    this.net.faults = { ...CALM };
    this.net.healLinks();
    const start = this.tickNow;
    let probe: ClientOp | undefined;
    let committedAt = -1;
    while (this.tickNow - start < HEAL_LIMIT_TICKS) {
      this.restartMembers();
      this.step(false);
      const leader = this.leaderHost();
      if (leader === undefined || !this.currentConfig().voters.includes(leader.id)) continue;
      if (probe === undefined || probe.failed || (probe.done === false && this.tickNow > probe.deadline)) {
        probe = this.startOp({ id: 0, leaderHint: leader.id, seq: 0 }, 'write', leader.id);
      }
      if (probe !== undefined && probe.done && !probe.failed) {
        committedAt = this.tickNow;
        break;
      }
    }
    this.stats.healTicks = this.tickNow - start;
    if (committedAt < 0) {
      this.checker.fail(`liveness: no leader committed a proposal within ${HEAL_LIMIT_TICKS} ticks after healing: ${this.dump()}`);
      return;
    }
    this.converge();
  }

  private restartMembers(): void {
    const cfg = this.currentConfig();
    for (const id of [...cfg.voters, ...cfg.learners]) {
      if (!this.hosts.has(id) && this.storages.has(id)) {
        this.restartAt.delete(id);
        this.startNode(id, this.storages.get(id) as MemoryStorage);
      }
    }
  }

  /** After a commit, every member must catch up to the same state within a bound. */
  private converge(): void {
    const start = this.tickNow;
    this.idleUntil = Infinity; // no new client operations: convergence needs a still target
    for (;;) {
      const leader = this.leaderHost();
      const cfg = this.currentConfig();
      const members = [...cfg.voters, ...cfg.learners];
      if (leader !== undefined) {
        const target = leader.node.status().commit;
        if (members.every((id) => this.hosts.get(id)?.sm.appliedIndex === target)) {
          const chains = new Set(members.map((id) => this.hosts.get(id)?.sm.chain));
          if (chains.size !== 1) this.checker.fail('state machine safety: members applied the same index to different states');
          this.checkLeaderCompleteness(leader);
          this.stats.committed = target;
          return;
        }
      }
      if (this.tickNow - start > CONVERGE_LIMIT_TICKS) {
        this.checker.fail(`liveness: members did not converge within ${CONVERGE_LIMIT_TICKS} ticks: ${this.dump()}`);
        return;
      }
      this.restartMembers();
      this.step(false);
    }
  }

  /** The state of every node, for a failure message. */
  private dump(): string {
    const parts: string[] = [];
    for (const id of this.known) {
      const h = this.hosts.get(id);
      if (h === undefined) {
        parts.push(`${id}:down`);
        continue;
      }
      const st = h.node.status();
      const prs = [...st.progress].map(([p, pr]) => `${p}=${pr.state}/${pr.match}/${pr.next}`).join(',');
      parts.push(
        `${id}:${st.role} t${st.term} lead${st.leader} commit${st.commit} applied${h.sm.appliedIndex} last${st.lastIndex} ` +
          `first${st.firstIndex} v[${st.confState.voters}] l[${st.confState.learners}]${st.quiesced ? ' quiet' : ''}${prs ? ' ' + prs : ''}`,
      );
    }
    return parts.join(' | ');
  }

  private checkLeaderCompleteness(leader: SimHost): void {
    const st = leader.node.status();
    this.checker.checkLogHoldsCommitted(leader.id, st.firstIndex, st.lastIndex, (i) => leader.node.termAt(i), 'leader completeness');
    for (const h of this.hosts.values()) {
      const hs = h.node.status();
      this.checker.checkLogHoldsCommitted(h.id, hs.firstIndex, Math.min(hs.lastIndex, hs.commit), (i) => h.node.termAt(i), 'committed entry lost');
    }
  }

  // ---- Clients and the history -------------------------------------------------------------------

  private runClients(faulty: boolean): void {
    // Quiet stretches with no new client operations, so that idle groups go quiet and faults
    // (a crashed leader, a partition) meet quiet groups too.
    if (faulty && this.tickNow >= this.idleUntil && this.rng.chance(0.01)) this.idleUntil = this.tickNow + 30 + this.rng.intn(120);
    for (const c of this.clients) {
      const op = c.op;
      if (op !== undefined) {
        if (op.done || op.failed) c.op = undefined;
        else if (this.tickNow > op.deadline) {
          // Give up: a write keeps an unknown outcome; a read is withdrawn.
          if (op.kind === 'read') this.dropOp(op.id);
          c.op = undefined;
          c.leaderHint = NONE;
        } else continue;
      }
      if (this.tickNow < this.idleUntil) continue;
      if (!this.rng.chance(faulty ? this.rates.clientOp : this.rates.clientOp / 2)) continue;
      const live = this.sortedHostIds();
      if (live.length === 0) continue;
      const target = this.hosts.has(c.leaderHint) && this.rng.chance(0.8) ? c.leaderHint : this.rng.pick(live);
      c.op = this.startOp(c, this.rng.chance(0.5) ? 'write' : 'read', target);
    }
  }

  private startOp(c: { id: number; leaderHint: number; seq: number }, kind: 'write' | 'read', target: number): ClientOp | undefined {
    const host = this.hosts.get(target);
    if (host === undefined) return undefined;
    const key = this.rng.pick(KEYS);
    const id = this.nextOpId++;
    const op: ClientOp = {
      id,
      kind,
      key,
      value: kind === 'write' ? `c${c.id}.${++c.seq}.${id}` : null,
      call: ++this.clock,
      ret: Infinity,
      deadline: this.tickNow + CLIENT_TIMEOUT_TICKS,
      done: false,
      failed: false,
    };
    if (kind === 'write') {
      const res = host.write(id, key, op.value as string);
      if (!res.ok) {
        c.leaderHint = res.leaderHint;
        return undefined; // refused: it never happened, so it is not in the history
      }
      this.stats.writes++;
    } else {
      if (!host.read(id, key)) return undefined;
      this.stats.reads++;
    }
    this.ops.set(id, op);
    return op;
  }

  private writeDone(opId: number, committed: boolean): void {
    const op = this.ops.get(opId);
    if (op === undefined || op.done) return;
    if (!committed) {
      op.failed = true;
      this.ops.delete(opId); // definitely not applied: not part of the history
      return;
    }
    op.done = true;
    op.ret = ++this.clock;
  }

  private readDone(opId: number, value: string | null): void {
    const op = this.ops.get(opId);
    if (op === undefined || op.done) return;
    op.done = true;
    op.value = value;
    op.ret = ++this.clock;
  }

  private dropOp(opId: number): void {
    const op = this.ops.get(opId);
    if (op === undefined || op.done) return;
    op.failed = true;
    this.ops.delete(opId);
    for (const h of this.hosts.values()) h.forgetRead(opId);
  }

  private checkHistory(): void {
    const history: Op[] = [];
    for (const op of this.ops.values()) {
      if (op.kind === 'read' && !op.done) continue;
      history.push({ kind: op.kind, key: op.key, value: op.value, call: op.call, ret: op.done ? op.ret : Infinity });
    }
    const res = checkLinearizable(history);
    if (!res.ok) {
      const ops = res.ops.slice(0, 40).map((o) => `${o.kind} ${o.value} [${o.call}, ${o.ret}]`).join('; ');
      this.checker.fail(`linearizability (${res.reason}) on key ${res.key}: ${ops}`);
    }
  }
}
