// The log as the core sees it: the stable part in storage plus an unstable tail (and possibly an
// incoming snapshot) that the host has not persisted yet. Indexes below `committed` never change;
// the unstable tail may be truncated by a new leader before it is persisted.

import { CompactedError, type RaftStorageReader } from './storage';
import type { Entry, Snapshot } from './types';
import { entryBytes } from './types';

/** Entries (and a snapshot) not yet handed to storage. entries[i].index === offset + i. */
class Unstable {
  snapshot: Snapshot | undefined = undefined;
  entries: Entry[] = [];
  constructor(public offset: number) {}

  maybeFirstIndex(): number | undefined {
    return this.snapshot === undefined ? undefined : this.snapshot.meta.index + 1;
  }

  maybeLastIndex(): number | undefined {
    if (this.entries.length > 0) return this.offset + this.entries.length - 1;
    return this.snapshot === undefined ? undefined : this.snapshot.meta.index;
  }

  maybeTerm(i: number): number | undefined {
    if (i < this.offset) {
      if (this.snapshot !== undefined && this.snapshot.meta.index === i) return this.snapshot.meta.term;
      return undefined;
    }
    const last = this.maybeLastIndex();
    if (last === undefined || i > last) return undefined;
    return (this.entries[i - this.offset] as Entry).term;
  }

  /** The host persisted entries up to i (of term t). If the tail was replaced meanwhile, the
   * term no longer matches and nothing is dropped: the replacement is still unstable. */
  stableTo(i: number, t: number): void {
    const gt = this.maybeTerm(i);
    if (gt === t && i >= this.offset) {
      this.entries = this.entries.slice(i + 1 - this.offset);
      this.offset = i + 1;
    }
  }

  stableSnapTo(i: number): void {
    if (this.snapshot !== undefined && this.snapshot.meta.index === i) this.snapshot = undefined;
  }

  restore(s: Snapshot): void {
    this.offset = s.meta.index + 1;
    this.entries = [];
    this.snapshot = s;
  }

  truncateAndAppend(ents: readonly Entry[]): void {
    const after = (ents[0] as Entry).index;
    if (after === this.offset + this.entries.length) {
      this.entries.push(...ents);
    } else if (after <= this.offset) {
      // Replaces entries already handed to storage: the host's append() truncates there too.
      this.offset = after;
      this.entries = [...ents];
    } else {
      this.entries = this.entries.slice(0, after - this.offset).concat(ents);
    }
  }

  slice(lo: number, hi: number): Entry[] {
    return this.entries.slice(lo - this.offset, hi - this.offset);
  }
}

export class RaftLog {
  readonly unstable: Unstable;
  /** Highest index known to be committed. */
  committed: number;
  /** Highest index the host has applied (acknowledged by advance). */
  applied: number;

  constructor(readonly storage: RaftStorageReader, applied: number) {
    const first = storage.firstIndex();
    const last = storage.lastIndex();
    this.unstable = new Unstable(last + 1);
    // The snapshot is applied by construction (the host restores its state machine from it).
    const snapIndex = storage.snapshot().meta.index;
    this.committed = Math.max(first - 1, snapIndex);
    this.applied = Math.max(this.committed, applied);
  }

  firstIndex(): number {
    return this.unstable.maybeFirstIndex() ?? this.storage.firstIndex();
  }

  lastIndex(): number {
    return this.unstable.maybeLastIndex() ?? this.storage.lastIndex();
  }

  lastTerm(): number {
    return this.term(this.lastIndex()) ?? 0;
  }

  /** The term of entry i, or undefined if it is compacted or beyond the end. */
  term(i: number): number | undefined {
    if (i < this.firstIndex() - 1 || i > this.lastIndex()) return undefined;
    return this.unstable.maybeTerm(i) ?? this.storage.term(i);
  }

  matchTerm(i: number, t: number): boolean {
    return this.term(i) === t;
  }

  /** Raft's "at least as up-to-date" rule for granting a vote (section 5.4.1). */
  isUpToDate(lastIndex: number, lastTerm: number): boolean {
    const myTerm = this.lastTerm();
    return lastTerm > myTerm || (lastTerm === myTerm && lastIndex >= this.lastIndex());
  }

  /** Follower side of AppendEntries. Returns the last index now known to match the leader, or
   * undefined when the log does not contain (prevIndex, prevTerm). */
  maybeAppend(prevIndex: number, prevTerm: number, commit: number, ents: readonly Entry[]): number | undefined {
    if (!this.matchTerm(prevIndex, prevTerm)) return undefined;
    const lastNew = prevIndex + ents.length;
    const ci = this.findConflict(ents);
    if (ci !== 0) {
      if (ci <= this.committed) {
        throw new Error(`raft: entry ${ci} conflicts with committed entry (committed ${this.committed})`);
      }
      this.append(ents.slice(ci - (prevIndex + 1)));
    }
    this.commitTo(Math.min(commit, lastNew));
    return lastNew;
  }

  append(ents: readonly Entry[]): number {
    if (ents.length === 0) return this.lastIndex();
    const after = (ents[0] as Entry).index - 1;
    if (after < this.committed) throw new Error(`raft: append after ${after} is below committed ${this.committed}`);
    this.unstable.truncateAndAppend(ents);
    return this.lastIndex();
  }

  /** The first entry whose term differs from ours (or which we lack), or 0 if none. */
  findConflict(ents: readonly Entry[]): number {
    for (const e of ents) {
      if (!this.matchTerm(e.index, e.term)) return e.index;
    }
    return 0;
  }

  /** The largest index <= `index` whose term is <= `term`. Both sides use it to skip a whole
   * term of mismatching entries per round trip instead of one entry. */
  findConflictByTerm(index: number, term: number): number {
    let i = Math.min(index, this.lastIndex());
    for (;;) {
      const t = this.term(i);
      if (t === undefined || t <= term) return i;
      i--;
    }
  }

  commitTo(tc: number): void {
    if (tc <= this.committed) return;
    if (tc > this.lastIndex()) throw new Error(`raft: commit ${tc} beyond last index ${this.lastIndex()}`);
    this.committed = tc;
  }

  appliedTo(i: number): void {
    if (i === 0) return;
    if (i > this.committed || i < this.applied) {
      throw new Error(`raft: applied ${i} outside [${this.applied}, ${this.committed}]`);
    }
    this.applied = i;
  }

  stableTo(i: number, t: number): void {
    this.unstable.stableTo(i, t);
  }

  stableSnapTo(i: number): void {
    this.unstable.stableSnapTo(i);
  }

  unstableEntries(): readonly Entry[] {
    return this.unstable.entries;
  }

  hasNextCommittedEntries(): boolean {
    return this.committed > this.applied && this.unstable.snapshot === undefined;
  }

  /** Committed entries not yet applied, at most maxBytes (and at least one). */
  nextCommittedEntries(maxBytes: number): Entry[] {
    if (!this.hasNextCommittedEntries()) return [];
    const lo = Math.max(this.applied + 1, this.firstIndex());
    return this.slice(lo, this.committed + 1, maxBytes);
  }

  /** Entries from lo to the end, bounded by maxBytes (at least one). Throws CompactedError. */
  entries(lo: number, maxBytes: number): Entry[] {
    if (lo > this.lastIndex()) return [];
    return this.slice(lo, this.lastIndex() + 1, maxBytes);
  }

  slice(lo: number, hi: number, maxBytes: number): Entry[] {
    if (lo < this.firstIndex()) throw new CompactedError(lo);
    if (hi > this.lastIndex() + 1) throw new Error(`raft: slice [${lo}, ${hi}) beyond last ${this.lastIndex()}`);
    if (lo >= hi) return [];
    let out: Entry[] = [];
    const uo = this.unstable.offset;
    if (lo < uo) {
      out = this.storage.entries(lo, Math.min(hi, uo), maxBytes);
      // Storage stopped early because of maxBytes: do not add unstable entries after a gap.
      if (out.length < Math.min(hi, uo) - lo) return out;
    }
    if (hi > uo) {
      let bytes = 0;
      for (const e of out) bytes += entryBytes(e);
      for (const e of this.unstable.slice(Math.max(lo, uo), hi)) {
        bytes += entryBytes(e);
        if (out.length > 0 && bytes > maxBytes) break;
        out.push(e);
      }
    }
    return out;
  }

  snapshot(): Snapshot {
    return this.unstable.snapshot ?? this.storage.snapshot();
  }

  /** Adopt a snapshot from the leader: the log now starts after it. */
  restore(s: Snapshot): void {
    this.committed = s.meta.index;
    this.unstable.restore(s);
  }
}
