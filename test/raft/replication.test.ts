import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Message, RaftConfig } from '../../src/raft';
import { Cluster } from './harness';

const appendsTo = (msgs: readonly Message[], to: number): Message[] => msgs.filter((m) => m.type === 'append' && m.to === to);

test('raft: follower log repair skips back a whole term per round trip, not one entry', () => {
  const c = new Cluster([1, 2, 3], { checkQuorum: false, preVote: false });
  c.elect(1);
  // Node 1 appends 50 entries nobody else gets, then node 2 leads a new term.
  const iso = c.isolate(1);
  for (let i = 0; i < 50; i++) c.node(1).propose(Buffer.from(`lost${i}`));
  c.stabilize();
  c.elect(2);
  for (let i = 0; i < 5; i++) c.propose(2, `kept${i}`);
  c.removeFilter(iso);
  c.restart(1);
  c.get(2).sent = [];
  c.tickAll(1);
  c.stabilize();
  const rejects = c.get(1).sent.filter((m) => m.type === 'appendResp' && m.reject);
  assert.ok(rejects.length <= 2, `${rejects.length} rejections for 50 conflicting entries`);
  assert.deepEqual(c.texts(1), ['kept0', 'kept1', 'kept2', 'kept3', 'kept4']);
});

test('raft: the leader pipelines appends up to its flow-control window', () => {
  const c = new Cluster([1, 2, 3], { maxSizePerMsgBytes: 1, maxInflightMsgs: 4 });
  c.elect(1);
  for (let i = 0; i < 10; i++) c.node(1).propose(Buffer.from(`p${i}`));
  const rd = c.node(1).ready();
  assert.equal(appendsTo(rd.messages, 2).length, 4, 'four appends in flight, then wait for acknowledgements');
  c.get(1).storage.append(rd.entries);
  c.node(1).advance(rd);
  for (const m of rd.messages) c.queue.push(m);
  c.stabilize();
  assert.equal(c.texts(2).length, 10, 'acknowledgements open the window until everything is sent');
});

test('raft: proposals made between two Readys go out as one append per follower (batching)', () => {
  const c = new Cluster([1, 2, 3]);
  c.elect(1);
  for (let i = 0; i < 20; i++) c.node(1).propose(Buffer.from(`b${i}`));
  const rd = c.node(1).ready();
  const toTwo = appendsTo(rd.messages, 2);
  assert.equal(toTwo.length, 1);
  assert.equal(toTwo[0]?.type === 'append' && toTwo[0].entries.length, 20);
});

test('raft: a follower behind a compacted log gets a snapshot in chunks and catches up', () => {
  const c = new Cluster([1, 2, 3], { snapshotChunkBytes: 4 });
  c.elect(1);
  const iso = c.isolate(3);
  for (let i = 0; i < 5; i++) c.propose(1, `s${i}`);
  const leader = c.get(1);
  const applied = leader.node.status().applied;
  leader.storage.createSnapshot(applied, leader.node.confState(), Buffer.from('0123456789'));
  leader.storage.compact(applied + 1);
  c.removeFilter(iso);
  c.tickAll(2);
  const chunks = c.get(1).sent.filter((m) => m.type === 'snapshot' && m.to === 3);
  assert.deepEqual(chunks.map((m) => (m.type === 'snapshot' ? m.offset : -1)), [0, 4, 8]);
  assert.equal(Buffer.from(c.get(3).storage.snapshot().data).toString(), '0123456789');
  c.propose(1, 'after');
  assert.deepEqual(c.texts(3), ['after']);
});

/** Leader 1 commits `entries` while `lagging` is cut off, then compacts its log behind them
 * without an image (imagesOnDemand), keeping the last `tail` entries, and lets `lagging`
 * back: it needs a snapshot. */
function compactedWithoutImage(lagging: number, entries: number, tail: number, opts: Partial<RaftConfig> = {}): { c: Cluster; applied: number } {
  const c = new Cluster([1, 2, 3], { ...opts, imagesOnDemand: true });
  c.elect(1);
  const iso = c.isolate(lagging);
  for (let i = 0; i < entries; i++) c.propose(1, `s${i}`);
  const leader = c.get(1);
  const applied = leader.node.status().applied;
  leader.storage.createSnapshot(applied, leader.node.confState(), new Uint8Array(0));
  leader.storage.compact(applied + 1 - tail);
  c.removeFilter(iso);
  c.tickAll(2);
  return { c, applied };
}

test('raft: with images on demand, a compaction snapshot carries no image and a lagging follower is sent the one the host makes', () => {
  const { c, applied } = compactedWithoutImage(3, 5, 0, { snapshotChunkBytes: 4 });
  const leader = c.get(1);
  // Nothing to send yet: the leader asks for an image and sends no empty snapshot.
  assert.equal(leader.sent.filter((m) => m.type === 'snapshot').length, 0);
  assert.equal(leader.node.imageWanted(), true);
  // Two more entries applied meanwhile: the image is of a later state than the compaction.
  c.propose(1, 'm1');
  c.propose(1, 'm2');
  const at = leader.node.status().applied;
  assert.ok(at > applied);
  leader.node.offerImage(at, leader.node.confState(), Buffer.from('IMAGE-at-late'));
  assert.equal(leader.node.imageWanted(), false);
  c.stabilize();
  const chunks = leader.sent.filter((m) => m.type === 'snapshot' && m.to === 3);
  assert.ok(chunks.length >= 3 && chunks.every((m) => m.type === 'snapshot' && m.meta.index === at));
  assert.equal(Buffer.from(c.get(3).storage.snapshot().data).toString(), 'IMAGE-at-late');
  assert.equal(c.get(3).storage.snapshot().meta.index, at);
  // The follower goes on from the entries after the image.
  c.propose(1, 'after');
  assert.deepEqual(c.texts(3), ['after']);
});

test('raft: with images on demand, an image older than the log\'s snapshot is refused and asked for again', () => {
  // A tail of two entries is kept, so the log still knows the stale image's term.
  const { c, applied } = compactedWithoutImage(2, 4, 2);
  const leader = c.get(1);
  // The follower lags behind the whole log (it missed the entries before the tail).
  leader.node.offerImage(applied - 1, leader.node.confState(), Buffer.from('stale'));
  c.tickAll(2);
  assert.equal(leader.sent.filter((m) => m.type === 'snapshot').length, 0);
  assert.equal(leader.node.imageWanted(), true);
});

test('raft: a lost snapshot chunk is sent again after a timeout', () => {
  const c = new Cluster([1, 2, 3], { snapshotChunkBytes: 4, snapshotResendTicks: 3 });
  c.elect(1);
  const iso = c.isolate(3);
  c.propose(1, 'x');
  const leader = c.get(1);
  const applied = leader.node.status().applied;
  leader.storage.createSnapshot(applied, leader.node.confState(), Buffer.from('0123456789'));
  leader.storage.compact(applied + 1);
  c.removeFilter(iso);
  let dropped = 0;
  const f = c.addFilter((m) => {
    if (m.type === 'snapshot' && m.offset === 4 && dropped === 0) {
      dropped++;
      return true;
    }
    return false;
  });
  c.tickAll(8);
  c.removeFilter(f);
  assert.equal(dropped, 1);
  assert.equal(Buffer.from(c.get(3).storage.snapshot().data).toString(), '0123456789');
});

test('raft: a follower applies only committed entries, in order, exactly once', () => {
  const c = new Cluster([1, 2, 3]);
  c.elect(1);
  const iso = c.partition([1], [2, 3]);
  c.node(1).propose(Buffer.from('uncommitted'));
  c.stabilize();
  assert.deepEqual(c.texts(1), [], 'no quorum, no commit, nothing applied');
  c.removeFilter(iso);
  c.tickAll(1);
  for (const id of [1, 2, 3]) assert.deepEqual(c.texts(id), ['uncommitted']);
});

test('raft: the host batches the messages of many groups into one frame per peer', async () => {
  const { batchByPeer } = await import('../../src/raft');
  const groups = [1, 2, 3].map(() => new Cluster([1, 2, 3]));
  for (const c of groups) c.node(1).campaign();
  const frames = batchByPeer(groups.map((c, i) => ({ group: i + 1, ready: c.node(1).ready() })));
  assert.deepEqual([...frames.keys()].sort(), [2, 3]);
  assert.deepEqual(frames.get(2)?.map((gm) => gm.group), [1, 2, 3], 'one frame to node 2 carries all three groups');
});

test('raft: a lazy commit notice rides on the next append, or goes out alone at the next tick', () => {
  const c = new Cluster([1, 2, 3], { commitNotice: 'lazy', heartbeatTicks: 5 });
  c.elect(1);
  c.get(1).sent = [];
  c.propose(1, 'a');
  assert.deepEqual(c.texts(1), ['a'], 'the leader commits and applies on the acknowledgements');
  assert.deepEqual(c.texts(2), [], 'followers have not been told yet');
  assert.equal(appendsTo(c.get(1).sent, 2).length, 1, 'one append per follower for the commit, not two');
  // The next proposal's append carries the earlier commit.
  c.propose(1, 'b');
  assert.deepEqual(c.texts(2), ['a']);
  assert.equal(appendsTo(c.get(1).sent, 2).length, 2);
  // Nothing else to send: the next tick tells the followers on its own (before any heartbeat).
  c.tick(1);
  c.stabilize();
  for (const id of [2, 3]) assert.deepEqual(c.texts(id), ['a', 'b']);
});

test('raft: an immediate commit notice tells followers as soon as the commit index moves', () => {
  const c = new Cluster([1, 2, 3], { commitNotice: 'immediate', heartbeatTicks: 5 });
  c.elect(1);
  c.propose(1, 'a');
  for (const id of [1, 2, 3]) assert.deepEqual(c.texts(id), ['a']);
});
