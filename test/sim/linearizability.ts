// A linearizability checker for a key-value store of registers, after Wing & Gong (1993) with
// Lowe's memoisation (2017), the algorithm behind Knossos and Porcupine. Keys are independent
// registers, so each key's history is checked alone (P-compositionality, Herlihy & Wing 1990).
//
// An operation has a call time and a return time; a write whose outcome is unknown (the client
// timed out, or its node crashed) has ret = Infinity: it may take effect at any point after its
// call, or never. Reads without an answer are left out of the history: they changed nothing.

export interface Op {
  readonly kind: 'write' | 'read';
  readonly key: string;
  /** The value written, or the value the read returned (null: the key was absent). */
  readonly value: string | null;
  readonly call: number;
  readonly ret: number;
}

export type CheckResult =
  | { readonly ok: true }
  | { readonly ok: false; readonly key: string; readonly ops: readonly Op[]; readonly reason: 'not linearizable' | 'search limit' };

interface Node {
  readonly op: number;
  readonly isCall: boolean;
  match: Node | undefined;
  prev: Node | undefined;
  next: Node | undefined;
}

/** Search steps per key before giving up (the answer is then "search limit", a failure). */
const MAX_STEPS_PER_KEY = 2_000_000;

export function checkLinearizable(history: readonly Op[]): CheckResult {
  const byKey = new Map<string, Op[]>();
  for (const op of history) {
    const list = byKey.get(op.key) ?? [];
    list.push(op);
    byKey.set(op.key, list);
  }
  for (const [key, ops] of [...byKey].sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
    const r = checkRegister(ops, null);
    if (r !== 'ok') return { ok: false, key, ops, reason: r };
  }
  return { ok: true };
}

/** Checks one register's history, starting from `initial`. */
export function checkRegister(ops: readonly Op[], initial: string | null): 'ok' | 'not linearizable' | 'search limit' {
  const events: Array<{ time: number; node: Node }> = [];
  let remainingReturns = 0;
  ops.forEach((op, i) => {
    if (op.ret < op.call) throw new Error('linearizability: an op returns before its call');
    const call: Node = { op: i, isCall: true, match: undefined, prev: undefined, next: undefined };
    events.push({ time: op.call, node: call });
    if (Number.isFinite(op.ret)) {
      const ret: Node = { op: i, isCall: false, match: call, prev: undefined, next: undefined };
      call.match = ret;
      events.push({ time: op.ret, node: ret });
      remainingReturns++;
    }
  });
  // At equal times a call sorts first: the operations are then concurrent (the weaker claim).
  events.sort((a, b) => a.time - b.time || (a.node.isCall === b.node.isCall ? 0 : a.node.isCall ? -1 : 1));
  const head: Node = { op: -1, isCall: true, match: undefined, prev: undefined, next: undefined };
  let prev = head;
  for (const { node } of events) {
    prev.next = node;
    node.prev = prev;
    prev = node;
  }

  const words = new Uint32Array(Math.ceil(ops.length / 32) + 1);
  const setBit = (i: number, on: boolean): void => {
    const w = i >>> 5;
    const bit = 1 << (i & 31);
    words[w] = on ? (words[w] as number) | bit : (words[w] as number) & ~bit;
  };
  const cache = new Set<string>();
  const stack: Array<{ node: Node; state: string | null }> = [];
  let state = initial;
  let entry = head.next;
  let steps = 0;

  while (remainingReturns > 0) {
    if (++steps > MAX_STEPS_PER_KEY) return 'search limit';
    if (entry !== undefined && entry.isCall) {
      const op = ops[entry.op] as Op;
      const ok = op.kind === 'write' || op.value === state;
      if (ok) {
        const newState = op.kind === 'write' ? op.value : state;
        setBit(entry.op, true);
        const key = `${words.join(',')}|${newState === null ? '\u0000' : newState}`;
        if (!cache.has(key)) {
          cache.add(key);
          stack.push({ node: entry, state });
          state = newState;
          lift(entry);
          if (entry.match !== undefined) remainingReturns--;
          entry = head.next;
          continue;
        }
        setBit(entry.op, false);
      }
      entry = entry.next;
      continue;
    }
    // A return event (or the end): the op it closes was not linearized before it. Backtrack.
    const top = stack.pop();
    if (top === undefined) return 'not linearizable';
    state = top.state;
    setBit(top.node.op, false);
    unlift(top.node);
    if (top.node.match !== undefined) remainingReturns++;
    entry = top.node.next;
  }
  return 'ok';
}

function lift(call: Node): void {
  unlink(call);
  if (call.match !== undefined) unlink(call.match);
}

function unlift(call: Node): void {
  if (call.match !== undefined) relink(call.match);
  relink(call);
}

function unlink(n: Node): void {
  (n.prev as Node).next = n.next;
  if (n.next !== undefined) n.next.prev = n.prev;
}

function relink(n: Node): void {
  (n.prev as Node).next = n;
  if (n.next !== undefined) n.next.prev = n;
}
