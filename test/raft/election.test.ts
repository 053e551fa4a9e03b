import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MemoryStorage, RaftNode, SeededRng } from '../../src/raft';
import { Cluster } from './harness';

test('raft: a single node elects itself and commits its proposals', () => {
  const c = new Cluster([1]);
  c.tickAll(25);
  assert.equal(c.leader(), 1);
  c.propose(1, 'a');
  assert.deepEqual(c.texts(1), ['a']);
});

test('raft: three nodes elect exactly one leader by timeout and replicate to all', () => {
  const c = new Cluster([1, 2, 3]);
  c.tickAll(30);
  const leader = c.leader();
  assert.ok(leader !== undefined);
  const leaders = [1, 2, 3].filter((id) => c.node(id).status().role === 'leader');
  assert.equal(leaders.length, 1);
  c.propose(leader, 'x');
  c.propose(leader, 'y');
  for (const id of [1, 2, 3]) assert.deepEqual(c.texts(id), ['x', 'y']);
});

test('raft: a node with a stale log does not win an election', () => {
  // Without leases and pre-vote, so the only thing standing in node 3's way is its log.
  const c = new Cluster([1, 2, 3], { checkQuorum: false, preVote: false });
  c.elect(1);
  const f = c.isolate(3);
  c.propose(1, 'a');
  c.removeFilter(f);
  // Node 3 missed 'a'. Its own election must fail: 1 and 2 have a longer log of the same term.
  const iso = c.isolate(1);
  c.node(3).campaign();
  c.stabilize();
  assert.notEqual(c.node(3).status().role, 'leader');
  // Node 2, whose log is up to date, can win.
  c.node(2).campaign();
  c.stabilize();
  assert.equal(c.node(2).status().role, 'leader');
  c.removeFilter(iso);
});

test('raft: pre-vote keeps a partitioned node from raising its term and disrupting the leader on return', () => {
  const c = new Cluster([1, 2, 3]);
  c.elect(1);
  const term = c.node(1).status().term;
  const f = c.isolate(3);
  for (let i = 0; i < 100; i++) {
    c.tick(3);
    c.stabilize();
  }
  assert.equal(c.node(3).status().term, term, 'pre-vote never succeeded so the term stayed');
  c.removeFilter(f);
  c.tickAll(3);
  assert.equal(c.leader(), 1);
  assert.equal(c.node(1).status().term, term);
  c.propose(1, 'after');
  assert.deepEqual(c.texts(3), ['after']);
});

test('raft: check-quorum makes an isolated leader step down', () => {
  const c = new Cluster([1, 2, 3]);
  c.elect(1);
  c.isolate(1);
  c.tickAll(25);
  assert.notEqual(c.node(1).status().role, 'leader');
  const others = [2, 3].filter((id) => c.node(id).status().role === 'leader');
  assert.equal(others.length, 1, 'the majority side elected a new leader');
});

test('raft: followers in contact with a leader ignore vote requests (leader lease)', () => {
  const c = new Cluster([1, 2, 3]);
  c.elect(1);
  const term = c.node(1).status().term;
  c.node(3).campaign(); // skips pre-vote: a real vote request in term+1
  c.stabilize();
  assert.equal(c.leader(), 1);
  assert.notEqual(c.node(3).status().role, 'leader');
  // Node 3 raised its own term; the leader learns it from the answers and steps down, but
  // nobody voted for 3. The cluster then elects a leader again.
  c.tickAll(40);
  const leader = c.leader();
  assert.ok(leader !== undefined);
  assert.ok(c.node(leader).status().term > term);
});

test('raft: a node that restarts remembers its vote and does not vote twice in a term', () => {
  const c = new Cluster([1, 2, 3], { checkQuorum: false, preVote: false });
  c.isolate(3);
  c.node(1).campaign();
  // Deliver only node 1's vote request to node 2, which grants and persists the vote.
  c.processAll();
  const req = c.queue.filter((m) => m.type === 'vote' && m.to === 2);
  c.queue = [];
  for (const m of req) c.node(2).step(m);
  const rd = c.node(2).ready();
  const grant = rd.messages.find((m) => m.type === 'voteResp');
  assert.ok(grant !== undefined && grant.type === 'voteResp' && !grant.reject);
  assert.equal(rd.hardState?.vote, 1, 'the vote is in the same Ready as its response: persisted first');
  c.get(2).storage.setHardState(rd.hardState);
  c.node(2).advance(rd);
  // Node 2 crashes and restarts; node 3 asks for its vote in the same term.
  c.restart(2);
  const term = c.node(2).status().term;
  assert.equal(c.node(2).status().vote, 1);
  c.node(2).step({ type: 'vote', from: 3, to: 2, term, lastLogIndex: 100, lastLogTerm: term, force: false });
  const rd2 = c.node(2).ready();
  const answer = rd2.messages.find((m) => m.type === 'voteResp');
  assert.ok(answer !== undefined && answer.type === 'voteResp' && answer.reject, 'second vote in the term refused');
});

test('raft: a vote lost with unsynced writes was never sent, so voting again is safe', () => {
  // The Ready carries both the vote (hard state) and the vote response; a host that crashes
  // before persisting also never sent the response. The restarted node may vote anew.
  const storage = MemoryStorage.bootstrap([1, 2, 3]);
  const node = new RaftNode({ id: 2, storage, rng: new SeededRng(1), electionTicks: 10, heartbeatTicks: 1, checkQuorum: false });
  node.step({ type: 'vote', from: 1, to: 2, term: 2, lastLogIndex: 1, lastLogTerm: 1, force: false });
  const rd = node.ready();
  assert.equal(rd.hardState?.vote, 1);
  assert.ok(rd.messages.some((m) => m.type === 'voteResp'));
  // Crash: nothing persisted, nothing sent.
  const again = new RaftNode({ id: 2, storage, rng: new SeededRng(1), electionTicks: 10, heartbeatTicks: 1, checkQuorum: false });
  assert.equal(again.status().vote, 0);
  assert.equal(again.status().term, 1);
});
