// Safety checkers of the simulation. They watch from outside and never influence the run:
//  - election safety: at most one leader per term;
//  - committed entries never change: once any node's commit index covers (index, term), every
//    node that commits or applies that index has the same term there;
//  - state machine safety: every replica applies the same entry at each index, and the hash
//    chain of its state machine agrees at every index (snapshots included);
//  - leader completeness (at the end): the final leader's log holds every committed entry.

import type { Entry } from '../../src/raft';
import { entryId } from './kv';

/** Stop recording after this many violations: the first few explain the run. */
const MAX_VIOLATIONS = 20;

export class SafetyChecker {
  readonly violations: string[] = [];
  private readonly leaderOfTerm = new Map<number, number>();
  /** index -> term, from commit indexes. */
  private readonly committedTerm = new Map<number, number>();
  /** index -> entry identity, from applied entries. */
  private readonly appliedEntry = new Map<number, string>();
  /** index -> state machine hash chain after applying it. */
  private readonly chainAt = new Map<number, number>();
  maxCommitted = 0;

  fail(msg: string): void {
    if (this.violations.length < MAX_VIOLATIONS) this.violations.push(msg);
  }

  observeLeader(term: number, id: number): void {
    const prev = this.leaderOfTerm.get(term);
    if (prev === undefined) this.leaderOfTerm.set(term, id);
    else if (prev !== id) this.fail(`election safety: nodes ${prev} and ${id} both lead term ${term}`);
  }

  observeCommitted(node: number, index: number, term: number): void {
    const prev = this.committedTerm.get(index);
    if (prev === undefined) {
      this.committedTerm.set(index, term);
      if (index > this.maxCommitted) this.maxCommitted = index;
    } else if (prev !== term) {
      this.fail(`committed entry changed: index ${index} was committed in term ${prev}, node ${node} commits term ${term}`);
    }
  }

  observeApplied(node: number, e: Entry, chain: number): void {
    this.observeCommitted(node, e.index, e.term);
    const id = entryId(e);
    const prev = this.appliedEntry.get(e.index);
    if (prev === undefined) this.appliedEntry.set(e.index, id);
    else if (prev !== id) this.fail(`state machine safety: node ${node} applies ${id} at ${e.index}, another applied ${prev}`);
    this.observeChain(node, e.index, chain);
  }

  observeChain(node: number, index: number, chain: number): void {
    const prev = this.chainAt.get(index);
    if (prev === undefined) this.chainAt.set(index, chain);
    else if (prev !== chain) this.fail(`state machine safety: node ${node} state at ${index} differs from another replica's`);
  }

  committedTermAt(index: number): number | undefined {
    return this.committedTerm.get(index);
  }

  /** Every committed index in [from, to] must be in `termAt` with the recorded term. */
  checkLogHoldsCommitted(node: number, from: number, to: number, termAt: (i: number) => number | undefined, what: string): void {
    for (let i = from; i <= to; i++) {
      const want = this.committedTerm.get(i);
      if (want === undefined) continue;
      const got = termAt(i);
      if (got !== want) {
        this.fail(`${what}: node ${node} has term ${got} at committed index ${i}, want ${want}`);
        return;
      }
    }
  }
}
