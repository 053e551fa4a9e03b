import assert from 'node:assert/strict';
import { test } from 'node:test';
import { checkLinearizable, type Op } from './linearizability';

const w = (key: string, value: string, call: number, ret: number): Op => ({ kind: 'write', key, value, call, ret });
const r = (key: string, value: string | null, call: number, ret: number): Op => ({ kind: 'read', key, value, call, ret });

test('raft: the linearizability checker accepts an empty history and a sequential one', () => {
  assert.equal(checkLinearizable([]).ok, true);
  assert.equal(checkLinearizable([r('k', null, 0, 1), w('k', '1', 2, 3), r('k', '1', 4, 5), w('k', '2', 6, 7), r('k', '2', 8, 9)]).ok, true);
});

test('raft: the linearizability checker rejects a stale read after a newer write completed', () => {
  const res = checkLinearizable([w('k', '1', 0, 1), w('k', '2', 2, 3), r('k', '1', 4, 5)]);
  assert.equal(res.ok, false);
});

test('raft: the linearizability checker rejects a read of a value nobody wrote', () => {
  assert.equal(checkLinearizable([w('k', '1', 0, 1), r('k', '7', 2, 3)]).ok, false);
});

test('raft: the linearizability checker lets a concurrent write be seen by one read and then by all later reads', () => {
  assert.equal(checkLinearizable([w('k', '1', 0, 10), r('k', null, 1, 2), r('k', '1', 3, 4), r('k', '1', 5, 6)]).ok, true);
  // Once a read saw the new value, a later read may not see the old one.
  assert.equal(checkLinearizable([w('k', '1', 0, 10), r('k', '1', 1, 2), r('k', null, 3, 4)]).ok, false);
});

test('raft: the linearizability checker lets a write of unknown outcome have happened or not, but not both', () => {
  assert.equal(checkLinearizable([w('k', '1', 0, Infinity), r('k', '1', 5, 6)]).ok, true);
  assert.equal(checkLinearizable([w('k', '1', 0, Infinity), r('k', null, 5, 6)]).ok, true);
  assert.equal(checkLinearizable([w('k', '1', 0, Infinity), r('k', '1', 5, 6), r('k', null, 7, 8)]).ok, false);
});

test('raft: the linearizability checker orders two concurrent writers once, for every reader', () => {
  const base = [w('k', '1', 0, 5), w('k', '2', 1, 6)];
  assert.equal(checkLinearizable([...base, r('k', '2', 7, 8), r('k', '2', 9, 10)]).ok, true);
  assert.equal(checkLinearizable([...base, r('k', '2', 7, 8), r('k', '1', 9, 10)]).ok, false);
  // Readers overlapping the writes may see either order, as long as it is one order.
  assert.equal(checkLinearizable([...base, r('k', '1', 2, 3), r('k', '2', 4, 8)]).ok, true);
});

test('raft: the linearizability checker checks keys independently and reports the failing key', () => {
  const res = checkLinearizable([w('a', '1', 0, 1), r('a', '1', 2, 3), w('b', 'x', 0, 1), w('b', 'y', 2, 3), r('b', 'x', 4, 5)]);
  assert.equal(res.ok, false);
  assert.equal(res.ok === false && res.key, 'b');
});

test('raft: the linearizability checker handles a larger concurrent history thanks to memoisation', () => {
  // 60 overlapping writes of distinct values and reads that each return the latest finished one.
  const ops: Op[] = [];
  for (let i = 0; i < 60; i++) ops.push(w('k', `v${i}`, i * 10, i * 10 + 15));
  for (let i = 1; i < 60; i++) ops.push(r('k', `v${i - 1}`, i * 10 + 6, i * 10 + 9));
  assert.equal(checkLinearizable(ops).ok, true);
});
