// What the leader knows about each follower's log, and the flow control of appends to it.
// A follower is in one of three states:
//  - probe: we do not know where its log matches ours; send one append per heartbeat interval
//    and move back (by term, using the follower's hint) on each rejection;
//  - replicate: matching is known; stream appends optimistically (pipelining), bounded by a
//    window of in-flight messages and bytes;
//  - snapshot: it needs a snapshot; send chunks one at a time until it acknowledges the last.

import type { NodeId, Snapshot } from './types';

export const ProgressState = { Probe: 'probe', Replicate: 'replicate', Snapshot: 'snapshot' } as const;
export type ProgressState = (typeof ProgressState)[keyof typeof ProgressState];

/** The flow-control window: last index and size of each append in flight, oldest first. A ring
 * buffer bounded by count (maxMessages) and bytes (maxBytes). */
export class Inflights {
  private readonly indexes: number[];
  private readonly sizes: number[];
  private start = 0;
  private count = 0;
  private bytes = 0;

  constructor(readonly maxMessages: number, readonly maxBytes: number) {
    this.indexes = new Array<number>(maxMessages).fill(0);
    this.sizes = new Array<number>(maxMessages).fill(0);
  }

  add(index: number, sizeBytes: number): void {
    if (this.full()) throw new Error('raft: inflights window is full');
    const slot = (this.start + this.count) % this.maxMessages;
    this.indexes[slot] = index;
    this.sizes[slot] = sizeBytes;
    this.count++;
    this.bytes += sizeBytes;
  }

  /** Frees every message whose last index is <= index (they are acknowledged). */
  freeLE(index: number): void {
    while (this.count > 0 && (this.indexes[this.start] as number) <= index) {
      this.bytes -= this.sizes[this.start] as number;
      this.start = (this.start + 1) % this.maxMessages;
      this.count--;
    }
  }

  /** Frees the oldest message: used when a heartbeat response shows the follower alive but the
   * window is full, probably because appends were lost. */
  freeFirstOne(): void {
    if (this.count === 0) return;
    this.freeLE(this.indexes[this.start] as number);
  }

  full(): boolean {
    return this.count >= this.maxMessages || (this.maxBytes > 0 && this.bytes >= this.maxBytes);
  }

  size(): number {
    return this.count;
  }

  reset(): void {
    this.start = 0;
    this.count = 0;
    this.bytes = 0;
  }
}

/** The snapshot being streamed to a follower in Snapshot state. */
export interface SnapshotSend {
  readonly snapshot: Snapshot;
  /** Bytes the follower has acknowledged; the next chunk starts here. */
  ackedOffset: number;
  /** Leader tick when the last chunk went out; used to resend after a loss. */
  lastSentTick: number;
}

export class Progress {
  match = 0;
  next: number;
  state: ProgressState = ProgressState.Probe;
  /** Probe state: an append is out and we wait for its answer or the next heartbeat. */
  probeSent = false;
  /** Heard from since the last check-quorum round. */
  recentActive = false;
  /** The follower's commit index as last reported (quiescence needs everyone to be told). */
  commit = 0;
  /** The leader tick echoed by the newest heartbeat response; dates the leader lease. */
  ackedSentTick = -1;
  /** Newest read-index round this follower has confirmed. */
  ackedReadSeq = 0;
  snapshotSend: SnapshotSend | undefined = undefined;
  readonly inflights: Inflights;

  constructor(readonly id: NodeId, next: number, public isLearner: boolean, maxInflightMsgs: number, maxInflightBytes: number) {
    this.next = next;
    this.inflights = new Inflights(maxInflightMsgs, maxInflightBytes);
  }

  becomeProbe(): void {
    // After a snapshot the follower has at least the snapshot's index.
    if (this.state === ProgressState.Snapshot && this.snapshotSend !== undefined) {
      const pending = this.snapshotSend.snapshot.meta.index;
      this.next = Math.max(this.match + 1, pending + 1);
    } else {
      this.next = this.match + 1;
    }
    this.reset(ProgressState.Probe);
  }

  becomeReplicate(): void {
    this.next = this.match + 1;
    this.reset(ProgressState.Replicate);
  }

  becomeSnapshot(snapshot: Snapshot, nowTick: number): void {
    this.reset(ProgressState.Snapshot);
    this.snapshotSend = { snapshot, ackedOffset: 0, lastSentTick: nowTick };
  }

  private reset(state: ProgressState): void {
    this.state = state;
    this.probeSent = false;
    this.snapshotSend = undefined;
    this.inflights.reset();
  }

  /** An append was acknowledged up to n. Returns false if the answer is stale. */
  maybeUpdate(n: number): boolean {
    let updated = false;
    if (this.match < n) {
      this.match = n;
      updated = true;
      this.probeSent = false;
    }
    this.next = Math.max(this.next, n + 1);
    return updated;
  }

  /** An append at `rejected` was refused; the follower hinted that its log may match up to
   * `matchHint`. Returns false if the refusal is stale (an old message). */
  maybeDecrTo(rejected: number, matchHint: number): boolean {
    if (this.state === ProgressState.Replicate) {
      if (rejected <= this.match) return false;
      this.next = this.match + 1;
      return true;
    }
    if (this.next - 1 !== rejected) return false;
    this.next = Math.max(Math.min(rejected, matchHint + 1), this.match + 1, 1);
    this.probeSent = false;
    return true;
  }

  /** Whether sending another append must wait. */
  isPaused(): boolean {
    switch (this.state) {
      case ProgressState.Probe:
        return this.probeSent;
      case ProgressState.Replicate:
        return this.inflights.full();
      case ProgressState.Snapshot:
        return true;
    }
  }

  /** Book-keeping after sending an append of `count` entries ending at lastIndex. */
  sentEntries(count: number, lastIndex: number, sizeBytes: number): void {
    switch (this.state) {
      case ProgressState.Replicate:
        if (count > 0) {
          this.next = lastIndex + 1;
          this.inflights.add(lastIndex, sizeBytes);
        }
        break;
      case ProgressState.Probe:
        this.probeSent = true;
        break;
      case ProgressState.Snapshot:
        throw new Error('raft: append sent to a follower in snapshot state');
    }
  }
}
