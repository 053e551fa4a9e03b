// The leader's queue of linearizable reads (ReadIndex, Raft thesis section 6.4). A read records
// the commit index when it arrives; it is released once a quorum has answered a heartbeat sent
// after it arrived, which proves no newer leader had been elected at that time. Each broadcast
// for reads carries a sequence number (a "round"); reads arriving before the round's heartbeats
// have left share that round, so a burst of reads costs one heartbeat per follower.

import type { NodeId } from './types';

export interface PendingRead {
  readonly from: NodeId;
  readonly ctx: string;
  readonly index: number;
  readonly seq: number;
}

export class ReadQueue {
  /** Reads that arrived before the leader committed an entry of its term: its commit index is
   * not yet known to be the cluster's, so they wait (section 6.4 step 1). */
  awaitingCommit: Array<{ from: NodeId; ctx: string }> = [];
  pending: PendingRead[] = [];
  /** Newest round number; rounds only grow within a term (reset with the queue). */
  seq = 0;
  /** The newest round's heartbeats have not been handed to the host yet: new reads may join it. */
  roundOpen = false;

  constructor(readonly maxReads: number) {}

  size(): number {
    return this.awaitingCommit.length + this.pending.length;
  }

  full(): boolean {
    return this.size() >= this.maxReads;
  }

  /** Adds a read; returns the round it must be confirmed by, and whether that round is new. */
  add(from: NodeId, ctx: string, index: number): { seq: number; newRound: boolean } {
    let newRound = false;
    if (!this.roundOpen) {
      this.seq++;
      this.roundOpen = true;
      newRound = true;
    }
    this.pending.push({ from, ctx, index, seq: this.seq });
    return { seq: this.seq, newRound };
  }

  /** Removes and returns every read confirmed by round `confirmedSeq`. */
  release(confirmedSeq: number): PendingRead[] {
    let n = 0;
    while (n < this.pending.length && (this.pending[n] as PendingRead).seq <= confirmedSeq) n++;
    return n === 0 ? [] : this.pending.splice(0, n);
  }

  /** The round still waiting for acknowledgement, if any (heartbeats repeat it until answered). */
  unconfirmedSeq(): number {
    return this.pending.length > 0 ? this.seq : 0;
  }

  clear(): void {
    this.awaitingCommit = [];
    this.pending = [];
    this.roundOpen = false;
  }
}

/** A follower's reassembly buffer for one incoming snapshot, bounded by the snapshot's size. */
export interface IncomingSnapshot {
  readonly index: number;
  readonly term: number;
  readonly parts: Uint8Array[];
  bytes: number;
}

export function concatBytes(parts: readonly Uint8Array[], total: number): Uint8Array {
  if (parts.length === 1) return parts[0] as Uint8Array;
  const out = new Uint8Array(total);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}
