import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Cluster } from './harness';

test('raft: ReadIndex on the leader is answered with the commit index after a quorum heartbeat round', () => {
  const c = new Cluster([1, 2, 3]);
  c.elect(1);
  c.propose(1, 'a');
  const commit = c.node(1).status().commit;
  assert.equal(c.node(1).readIndex('r1'), true);
  c.processAll();
  assert.deepEqual(c.get(1).readStates, [], 'not before the heartbeat round');
  assert.ok(c.queue.some((m) => m.type === 'heartbeat' && m.readSeq > 0));
  c.stabilize();
  assert.deepEqual(c.get(1).readStates, [{ index: commit, ctx: 'r1' }]);
});

test('raft: reads arriving together share one heartbeat round', () => {
  const c = new Cluster([1, 2, 3]);
  c.elect(1);
  for (let i = 0; i < 10; i++) c.node(1).readIndex(`r${i}`);
  const rd = c.node(1).ready();
  assert.equal(rd.messages.filter((m) => m.type === 'heartbeat' && m.to === 2).length, 1);
  c.node(1).advance(rd);
  for (const m of rd.messages) c.queue.push(m);
  c.stabilize();
  assert.equal(c.get(1).readStates.length, 10);
});

test('raft: ReadIndex on a follower is forwarded to the leader', () => {
  const c = new Cluster([1, 2, 3]);
  c.elect(1);
  c.propose(1, 'a');
  assert.equal(c.node(2).readIndex('f1'), true);
  c.stabilize();
  assert.deepEqual(c.get(2).readStates, [{ index: c.node(1).status().commit, ctx: 'f1' }]);
});

test('raft: a leader cut off from its quorum cannot answer a ReadIndex', () => {
  const c = new Cluster([1, 2, 3], { checkQuorum: false });
  c.elect(1);
  c.isolate(1);
  c.node(1).readIndex('stale?');
  c.tickAll(30);
  assert.deepEqual(c.get(1).readStates, []);
});

test('raft: a new leader answers reads only once an entry of its term is committed', () => {
  const c = new Cluster([1, 2, 3]);
  const noAppends = c.addFilter((m) => m.type === 'append');
  c.elect(1);
  c.node(1).readIndex('early');
  c.tickAll(2);
  assert.deepEqual(c.get(1).readStates, []);
  c.removeFilter(noAppends);
  c.tickAll(1);
  assert.equal(c.get(1).readStates.length, 1);
  assert.equal(c.get(1).readStates[0]?.index, c.node(1).status().commit);
});

test('raft: lease reads are answered at once while the lease holds, and not once a transfer began', () => {
  const c = new Cluster([1, 2, 3], { readOnly: 'lease' });
  c.tickAll(12); // past the startup lease every node honours
  c.elect(1);
  c.tickAll(1); // heartbeats acknowledged: the lease starts
  assert.equal(c.node(1).leaseValid(), true);
  c.node(1).readIndex('lease');
  c.processAll();
  assert.equal(c.get(1).readStates.length, 1, 'no heartbeat round needed');
  // After losing contact the lease runs out before another leader could be elected.
  const iso = c.isolate(1);
  c.tick(1, 10);
  assert.equal(c.node(1).leaseValid(), false);
  c.removeFilter(iso);
  c.tickAll(1);
  const hold = c.addFilter((m) => m.type === 'timeoutNow');
  c.node(1).transferLeadership(2);
  assert.equal(c.node(1).leaseValid(), false, 'a transfer may lead to a forced election');
  c.removeFilter(hold);
});

test('raft: an idle group goes quiet and a proposal wakes it', () => {
  const c = new Cluster([1, 2, 3], { quiesceAfterTicks: 3 });
  c.elect(1);
  c.tickAll(10);
  assert.equal(c.node(1).quiesced, true);
  assert.equal(c.node(2).quiesced, true);
  for (const id of [1, 2, 3]) c.get(id).sent = [];
  c.tickAll(100);
  for (const id of [1, 2, 3]) assert.deepEqual(c.get(id).sent, [], 'no heartbeats while quiet');
  assert.equal(c.leader(), 1, 'followers did not time out');
  c.propose(1, 'wake up');
  assert.deepEqual(c.texts(2), ['wake up']);
  assert.equal(c.node(1).quiesced, false);
});

test('raft: when the leader of a quiet group dies, the host wakes the followers and they elect a new one', () => {
  const c = new Cluster([1, 2, 3], { quiesceAfterTicks: 3 });
  c.elect(1);
  c.tickAll(10);
  c.isolate(1);
  c.tickAll(50);
  assert.equal(c.node(2).status().leader, 1, 'a quiet follower waits');
  // The host's node-level liveness notices node 1 is gone and wakes its groups.
  c.node(2).wake();
  c.node(3).wake();
  c.tickAll(40);
  const leader = c.leader() === 1 ? [2, 3].find((id) => c.node(id).status().role === 'leader') : c.leader();
  assert.ok(leader === 2 || leader === 3);
});
