// A tiny synchronous cluster for unit tests: nodes with MemoryStorage, a message queue we drain
// by hand, and filters to drop messages. Like etcd's raft_test.go "network": every step is
// explicit, so a test can stage the exact interleaving a rule is about.

import {
  EntryType,
  MemoryStorage,
  RaftNode,
  SeededRng,
  type Entry,
  type Message,
  type NodeId,
  type RaftConfig,
  type ReadState,
} from '../../src/raft';

export interface TestNode {
  node: RaftNode;
  storage: MemoryStorage;
  /** Normal entries applied, in order (no-ops excluded). */
  applied: Entry[];
  readStates: ReadState[];
  /** Every message this node handed out, for assertions on traffic. */
  sent: Message[];
}

export type Filter = (m: Message) => boolean;

export class Cluster {
  readonly nodes = new Map<NodeId, TestNode>();
  /** Messages sent but not yet delivered, in order. */
  queue: Message[] = [];
  private filters: Filter[] = [];

  constructor(readonly ids: readonly NodeId[], readonly opts: Partial<RaftConfig> = {}) {
    for (const id of ids) this.add(id, MemoryStorage.bootstrap(ids));
  }

  add(id: NodeId, storage: MemoryStorage, opts: Partial<RaftConfig> = {}): TestNode {
    const node = new RaftNode({
      id,
      storage,
      rng: new SeededRng(id * 7919),
      electionTicks: 10,
      heartbeatTicks: 1,
      ...this.opts,
      ...opts,
    });
    const n: TestNode = { node, storage, applied: [], readStates: [], sent: [] };
    this.nodes.set(id, n);
    return n;
  }

  get(id: NodeId): TestNode {
    const n = this.nodes.get(id);
    if (n === undefined) throw new Error(`no node ${id}`);
    return n;
  }

  node(id: NodeId): RaftNode {
    return this.get(id).node;
  }

  /** Simulates a crash and restart: everything not in storage is lost. */
  restart(id: NodeId, opts: Partial<RaftConfig> = {}): TestNode {
    const old = this.get(id);
    // The state machine is rebuilt by replaying the log from the snapshot.
    return this.add(id, old.storage, { applied: old.storage.snapshot().meta.index, ...opts });
  }

  /** Handles one Ready of one node the way a correct host does: persist, send, apply, advance. */
  processReady(id: NodeId): boolean {
    const n = this.get(id);
    if (!n.node.hasReady()) return false;
    const rd = n.node.ready();
    if (rd.snapshot !== undefined) n.storage.applySnapshot(rd.snapshot);
    n.storage.append(rd.entries);
    if (rd.hardState !== undefined) n.storage.setHardState(rd.hardState);
    for (const m of rd.messages) {
      n.sent.push(m);
      this.queue.push(m);
    }
    for (const e of rd.committedEntries) if (e.type === EntryType.Normal && e.data.length > 0) n.applied.push(e);
    n.readStates.push(...rd.readStates);
    n.node.advance(rd);
    return true;
  }

  processAll(): void {
    for (let guard = 0; guard < 1000; guard++) {
      let any = false;
      for (const id of this.nodes.keys()) any = this.processReady(id) || any;
      if (!any) return;
    }
    throw new Error('processAll did not settle');
  }

  /** Delivers messages (and the messages they cause) until the network is quiet. */
  stabilize(maxRounds = 10_000): void {
    for (let round = 0; round < maxRounds; round++) {
      this.processAll();
      if (this.queue.length === 0) return;
      const batch = this.queue;
      this.queue = [];
      for (const m of batch) this.deliver(m);
    }
    throw new Error('stabilize did not settle');
  }

  deliver(m: Message): void {
    if (this.filters.some((f) => f(m))) return;
    this.nodes.get(m.to)?.node.step(m);
  }

  tick(id: NodeId, n = 1): void {
    for (let i = 0; i < n; i++) this.node(id).tick();
  }

  tickAll(n = 1): void {
    for (let i = 0; i < n; i++) {
      for (const t of this.nodes.values()) t.node.tick();
      this.stabilize();
    }
  }

  elect(id: NodeId): void {
    this.node(id).campaign();
    this.stabilize();
  }

  propose(id: NodeId, text: string): void {
    const r = this.node(id).propose(Buffer.from(text));
    if (!r.ok) throw new Error(`proposal refused: ${r.reason}`);
    this.stabilize();
  }

  addFilter(f: Filter): Filter {
    this.filters.push(f);
    return f;
  }

  removeFilter(f: Filter): void {
    this.filters = this.filters.filter((x) => x !== f);
  }

  /** Drops every message to or from `id`. */
  isolate(id: NodeId): Filter {
    return this.addFilter((m) => m.from === id || m.to === id);
  }

  /** Drops messages between the two sides. */
  partition(a: readonly NodeId[], b: readonly NodeId[]): Filter {
    return this.addFilter((m) => (a.includes(m.from) && b.includes(m.to)) || (b.includes(m.from) && a.includes(m.to)));
  }

  heal(): void {
    this.filters = [];
  }

  leader(): NodeId | undefined {
    const leaders = [...this.nodes.values()].filter((n) => n.node.status().role === 'leader');
    return leaders[0]?.node.id;
  }

  texts(id: NodeId): string[] {
    return this.get(id).applied.map((e) => Buffer.from(e.data).toString());
  }
}
