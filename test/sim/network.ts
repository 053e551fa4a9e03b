// The simulated network: every message is dropped, delayed (which reorders), or duplicated by a
// seeded random source, and links can be cut one direction at a time. Nothing here knows Raft
// beyond the `from`/`to` of a message, so the same network carries host-level pings.

import type { SeededRng } from '../../src/raft/rng';

export interface Envelope<M> {
  readonly from: number;
  readonly to: number;
  readonly deliverAt: number;
  readonly seq: number;
  readonly msg: M;
}

export interface NetworkFaults {
  dropRate: number;
  duplicateRate: number;
  minDelayTicks: number;
  maxDelayTicks: number;
}

export const CALM: NetworkFaults = { dropRate: 0, duplicateRate: 0, minDelayTicks: 0, maxDelayTicks: 1 };

/** Bound on messages in flight: a runaway protocol fails the run instead of eating memory. */
const MAX_IN_FLIGHT = 200_000;

export class SimNetwork<M extends { from: number; to: number }> {
  faults: NetworkFaults = { ...CALM };
  /** Directed links that are down: "from->to". */
  private readonly cut = new Set<string>();
  private inFlight: Array<Envelope<M>> = [];
  private seq = 0;
  sent = 0;
  dropped = 0;

  constructor(private readonly rng: SeededRng) {}

  send(msg: M, now: number): void {
    this.sent++;
    if (this.rng.chance(this.faults.dropRate)) {
      this.dropped++;
      return;
    }
    this.enqueue(msg, now);
    if (this.rng.chance(this.faults.duplicateRate)) this.enqueue(msg, now);
    if (this.inFlight.length > MAX_IN_FLIGHT) throw new Error('sim: more than MAX_IN_FLIGHT messages in flight');
  }

  private enqueue(msg: M, now: number): void {
    const span = this.faults.maxDelayTicks - this.faults.minDelayTicks;
    const delay = this.faults.minDelayTicks + (span > 0 ? this.rng.intn(span + 1) : 0);
    this.inFlight.push({ from: msg.from, to: msg.to, deliverAt: now + Math.max(1, delay), seq: this.seq++, msg });
  }

  /** Messages due at `now`, in a deterministic order; messages over a cut link are lost. */
  due(now: number): Array<Envelope<M>> {
    const ready: Array<Envelope<M>> = [];
    const later: Array<Envelope<M>> = [];
    for (const e of this.inFlight) (e.deliverAt <= now ? ready : later).push(e);
    this.inFlight = later;
    ready.sort((a, b) => a.deliverAt - b.deliverAt || a.seq - b.seq);
    return ready.filter((e) => {
      if (!this.cut.has(`${e.from}->${e.to}`)) return true;
      this.dropped++;
      return false;
    });
  }

  cutLink(from: number, to: number): void {
    this.cut.add(`${from}->${to}`);
  }

  /** Symmetric partition between two groups of nodes. */
  split(a: readonly number[], b: readonly number[]): void {
    for (const x of a) {
      for (const y of b) {
        this.cutLink(x, y);
        this.cutLink(y, x);
      }
    }
  }

  isolate(id: number, all: readonly number[]): void {
    this.split([id], all.filter((x) => x !== id));
  }

  healLinks(): void {
    this.cut.clear();
  }

  cutCount(): number {
    return this.cut.size;
  }

  pending(): number {
    return this.inFlight.length;
  }
}
