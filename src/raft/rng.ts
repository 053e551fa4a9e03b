// The only source of randomness the core sees. Raft needs it for one thing: spreading election
// timeouts so that candidates rarely split the vote. The host injects it, so a seeded run of the
// simulator replays exactly.

export interface Rng {
  /** A uniformly distributed integer in [0, n). n is a positive integer. */
  intn(n: number): number;
}

/** A small, fast, seeded generator (mulberry32). Good enough for timeouts and simulation; not
 * for anything secret. */
export class SeededRng implements Rng {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** A float in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  intn(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** True with probability p. */
  chance(p: number): boolean {
    return p > 0 && this.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error('rng: pick from an empty list');
    return items[this.intn(items.length)] as T;
  }
}
