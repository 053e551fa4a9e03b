// The storage contract between the Raft core and the host, and an in-memory implementation.
// The core only reads storage (synchronously); the host writes it while handling a Ready. A
// durable implementation (durable.ts) keeps the same in-memory view and queues the writes into
// one synced batch per host tick.

import type { ConfState, Entry, HardState, Ready, Snapshot } from './types';
import { entryBytes } from './types';

export interface InitialState {
  readonly hardState: HardState;
  readonly confState: ConfState;
}

/** Thrown by entries() when part of the range has been compacted into the snapshot. */
export class CompactedError extends Error {
  readonly code = 'RAFT_COMPACTED';
  constructor(index: number) {
    super(`raft: index ${index} is compacted`);
  }
}

/**
 * What the core reads. Indexes in [firstIndex()-1, lastIndex()] have a known term.
 * firstIndex()-1 <= snapshot().meta.index: the host may keep a tail of entries the latest
 * snapshot already covers, so that slightly lagging followers need no snapshot.
 */
export interface RaftStorageReader {
  initialState(): InitialState;
  /** Entries in [lo, hi), at least one if any exist there, then up to maxBytes in total. */
  entries(lo: number, hi: number, maxBytes: number): Entry[];
  /** The term of entry i, or undefined if i is compacted or beyond the log. */
  term(i: number): number | undefined;
  firstIndex(): number;
  lastIndex(): number;
  snapshot(): Snapshot;
}

/** What the host writes. Every write must be durable before the host sends the Ready's messages. */
export interface RaftStorage extends RaftStorageReader {
  /** Appends entries; any existing entries at or after entries[0].index are replaced (truncation). */
  append(entries: readonly Entry[]): void;
  setHardState(hs: HardState): void;
  /** Replaces the whole log with a snapshot received from the leader. */
  applySnapshot(snap: Snapshot): void;
  /** Records a snapshot the host's state machine made at `index` (<= applied). */
  createSnapshot(index: number, confState: ConfState, data: Uint8Array): Snapshot;
  /** Discards entries before `index` (which must be <= the snapshot's index + 1). */
  compact(index: number): void;
}

/** The snapshot every member of a new group starts from: index 1, term 1, the initial voters.
 * Starting at index 1 means a node added later (with an empty log) always gets a snapshot
 * first, so it learns the configuration before any entry. */
export function bootstrapSnapshot(voters: readonly number[], data: Uint8Array = new Uint8Array(0)): Snapshot {
  return { meta: { index: 1, term: 1, confState: { voters: [...voters].sort((a, b) => a - b), learners: [] } }, data };
}

const EMPTY_SNAPSHOT: Snapshot = {
  meta: { index: 0, term: 0, confState: { voters: [], learners: [] } },
  data: new Uint8Array(0),
};

/** The whole log in memory. ents[0] is a dummy entry standing for the snapshot position. */
export class MemoryStorage implements RaftStorage {
  protected hardState: HardState = { term: 0, vote: 0, commit: 0 };
  protected snap: Snapshot = EMPTY_SNAPSHOT;
  protected ents: Entry[] = [{ term: 0, index: 0, type: 'normal', data: new Uint8Array(0) }];

  /** A fresh member of a new group (see bootstrapSnapshot), or of an existing one (no voters). */
  static bootstrap(voters: readonly number[]): MemoryStorage {
    const s = new MemoryStorage();
    if (voters.length > 0) {
      s.applySnapshot(bootstrapSnapshot(voters));
      s.setHardState({ term: 1, vote: 0, commit: 1 });
    }
    return s;
  }

  initialState(): InitialState {
    return { hardState: this.hardState, confState: this.snap.meta.confState };
  }

  entries(lo: number, hi: number, maxBytes: number): Entry[] {
    const offset = this.dummy().index;
    if (lo <= offset) throw new CompactedError(lo);
    if (hi > this.lastIndex() + 1) throw new Error(`raft: entries hi ${hi} beyond last ${this.lastIndex()}`);
    const out: Entry[] = [];
    let bytes = 0;
    for (let i = lo; i < hi; i++) {
      const e = this.ents[i - offset] as Entry;
      bytes += entryBytes(e);
      if (out.length > 0 && bytes > maxBytes) break;
      out.push(e);
    }
    return out;
  }

  term(i: number): number | undefined {
    const offset = this.dummy().index;
    if (i < offset || i > this.lastIndex()) return undefined;
    return (this.ents[i - offset] as Entry).term;
  }

  firstIndex(): number {
    return this.dummy().index + 1;
  }

  lastIndex(): number {
    return this.dummy().index + this.ents.length - 1;
  }

  snapshot(): Snapshot {
    return this.snap;
  }

  hardStateNow(): HardState {
    return this.hardState;
  }

  append(entries: readonly Entry[]): void {
    if (entries.length === 0) return;
    const first = this.firstIndex();
    let ents = entries;
    const firstNew = (ents[0] as Entry).index;
    if (firstNew + ents.length - 1 < first) return; // all compacted already
    if (firstNew < first) ents = ents.slice(first - firstNew);
    const start = (ents[0] as Entry).index;
    if (start > this.lastIndex() + 1) {
      throw new Error(`raft: append at ${start} leaves a gap after ${this.lastIndex()}`);
    }
    const offset = this.dummy().index;
    this.ents = this.ents.slice(0, start - offset).concat(ents);
  }

  setHardState(hs: HardState): void {
    this.hardState = hs;
  }

  applySnapshot(snap: Snapshot): void {
    if (snap.meta.index < this.snap.meta.index) return; // older than what we have: ignore
    this.snap = snap;
    this.ents = [{ term: snap.meta.term, index: snap.meta.index, type: 'normal', data: new Uint8Array(0) }];
  }

  createSnapshot(index: number, confState: ConfState, data: Uint8Array): Snapshot {
    if (index <= this.snap.meta.index) return this.snap;
    const term = this.term(index);
    if (term === undefined) throw new Error(`raft: snapshot at ${index} beyond last ${this.lastIndex()}`);
    this.snap = { meta: { index, term, confState }, data };
    return this.snap;
  }

  compact(index: number): void {
    const offset = this.dummy().index;
    if (index <= offset + 1) return;
    if (index > this.snap.meta.index + 1) throw new Error(`raft: compact to ${index} past snapshot ${this.snap.meta.index}`);
    this.ents = this.ents.slice(index - 1 - offset);
  }

  private dummy(): Entry {
    return this.ents[0] as Entry;
  }
}

/** Step 1 of handling a Ready: hands its snapshot, entries and hard state to storage, in that
 * order. With a durable store the host must still sync before sending the Ready's messages. */
export function saveReady(storage: RaftStorage, rd: Pick<Ready, 'snapshot' | 'entries' | 'hardState'>): void {
  if (rd.snapshot !== undefined) storage.applySnapshot(rd.snapshot);
  storage.append(rd.entries);
  if (rd.hardState !== undefined) storage.setHardState(rd.hardState);
}
