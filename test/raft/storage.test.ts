import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { EntryType, LevelRaftStore, MemoryStorage, RaftNode, SeededRng, SegmentRaftStore, saveReady, type Entry, type GroupStorage, type RaftStorage } from '../../src/raft';

/** Both durable stores keep the same contract; every durable test runs against each. */
interface Store {
  openGroup(group: number, bootstrapVoters?: readonly number[], appliedHint?: number): Promise<GroupStorage>;
  sync(durable?: boolean): Promise<void>;
  close(): Promise<void>;
  syncCount: number;
}
const IMPLS: [string, (dir: string) => Promise<Store>][] = [
  ['LevelRaftStore', (dir) => LevelRaftStore.open(dir)],
  // Small segments, so that the tests roll over and free them too.
  ['SegmentRaftStore', (dir) => SegmentRaftStore.open(dir, { segmentBytes: 256 * 1024 })],
];

const ent = (index: number, term: number, text = `e${index}`): Entry => ({ index, term, type: EntryType.Normal, data: Buffer.from(text) });

function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'polyfs-raft-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** The storage contract, run against every implementation. */
function contract(s: RaftStorage): void {
  assert.equal(s.firstIndex(), 2);
  assert.equal(s.lastIndex(), 1);
  assert.equal(s.term(1), 1, 'the bootstrap snapshot position has a term');
  s.append([ent(2, 2), ent(3, 2), ent(4, 3)]);
  assert.equal(s.lastIndex(), 4);
  assert.deepEqual(s.entries(2, 5, 1 << 20).map((e) => e.index), [2, 3, 4]);
  assert.equal(s.entries(2, 5, 1).length, 1, 'maxBytes bounds the batch, but at least one entry');
  // Truncation: a conflicting suffix is replaced.
  s.append([ent(3, 4, 'new')]);
  assert.equal(s.lastIndex(), 3);
  assert.equal(s.term(3), 4);
  assert.equal(s.term(4), undefined);
  s.setHardState({ term: 4, vote: 2, commit: 3 });
  assert.deepEqual(s.initialState().hardState, { term: 4, vote: 2, commit: 3 });
  // Snapshot and compaction.
  const snap = s.createSnapshot(3, { voters: [1, 2, 3], learners: [] }, Buffer.from('state'));
  assert.equal(snap.meta.term, 4);
  s.compact(3);
  assert.equal(s.firstIndex(), 3);
  assert.throws(() => s.entries(2, 3, 100), /compacted/);
  s.append([ent(4, 4), ent(5, 4)]);
  // A snapshot from a leader replaces the log.
  s.applySnapshot({ meta: { index: 10, term: 5, confState: { voters: [1, 2], learners: [3] } }, data: Buffer.from('x') });
  assert.equal(s.firstIndex(), 11);
  assert.equal(s.lastIndex(), 10);
  assert.equal(s.term(10), 5);
}

test('raft: MemoryStorage keeps the storage contract', () => {
  contract(MemoryStorage.bootstrap([1, 2, 3]));
});

for (const [name, open] of IMPLS) {
  test(`raft: ${name}: keeps the storage contract and survives a restart`, async (t) => {
    const dir = tempDir(t);
    const store = await open(dir);
    const s = await store.openGroup(7, [1, 2, 3]);
    contract(s);
    s.append([ent(11, 5), ent(12, 5), ent(13, 6)]);
    s.append([ent(13, 7)]);
    s.setHardState({ term: 7, vote: 1, commit: 12 });
    await store.sync();
    await store.close();
    const again = await open(dir);
    t.after(() => again.close());
    const r = await again.openGroup(7);
    assert.equal(r.snapshot().meta.index, 10);
    assert.deepEqual(r.snapshot().meta.confState, { voters: [1, 2], learners: [3] });
    assert.equal(Buffer.from(r.snapshot().data).toString(), 'x');
    assert.deepEqual(r.entries(11, 14, 1 << 20).map((e) => `${e.index}:${e.term}`), ['11:5', '12:5', '13:7']);
    assert.deepEqual(r.initialState().hardState, { term: 7, vote: 1, commit: 12 });
  });

  test(`raft: ${name}: group-commits all groups of a tick in one synced batch`, async (t) => {
    const dir = tempDir(t);
    const store = await open(dir);
    // Ids 255 and 256 differ in two bytes of the key prefix: groups must stay apart there too.
    const ids = [...Array.from({ length: 198 }, (_, i) => i + 1), 255, 256];
    const groups = [];
    for (const g of ids) groups.push(await store.openGroup(g, [1]));
    await store.sync();
    const before = store.syncCount;
    for (const [i, s] of groups.entries()) {
      s.append([ent(2, 2, `group ${ids[i]}`), ent(3, 2)]);
      s.setHardState({ term: 2, vote: 1, commit: 3 });
    }
    await store.sync();
    assert.equal(store.syncCount - before, 1, 'one fsync for 200 groups');
    await store.close();
    const again = await open(dir);
    t.after(() => again.close());
    for (const g of [1, 198, 255, 256]) {
      const s = await again.openGroup(g);
      assert.equal(Buffer.from(s.entries(2, 3, 100)[0]?.data ?? []).toString(), `group ${g}`, 'groups do not see each other');
    }
  });

  test(`raft: ${name}: loses exactly the writes not yet synced when the process dies`, async (t) => {
    const dir = tempDir(t);
    const store = await open(dir);
    const s = await store.openGroup(1, [1, 2, 3]);
    s.append([ent(2, 2)]);
    s.setHardState({ term: 2, vote: 1, commit: 1 });
    await store.sync();
    s.append([ent(3, 2)]);
    s.setHardState({ term: 3, vote: 2, commit: 2 });
    await store.close(); // crash: the second batch was never synced
    const again = await open(dir);
    t.after(() => again.close());
    const r = await again.openGroup(1);
    assert.equal(r.lastIndex(), 2);
    assert.deepEqual(r.initialState().hardState, { term: 2, vote: 1, commit: 1 });
  });

  test(`raft: ${name}: a three-node group restarts from disk with its log and vote`, async (t) => {
    const dirs = [1, 2, 3].map(() => tempDir(t));
    const stores = await Promise.all(dirs.map((d) => open(d)));
    const storages = await Promise.all(stores.map((s) => s.openGroup(1, [1, 2, 3])));
    const mk = (i: number): RaftNode =>
      new RaftNode({ id: i + 1, storage: storages[i] as RaftStorage, rng: new SeededRng(i + 1), electionTicks: 10, heartbeatTicks: 1, applied: 1 });
    let nodes = [0, 1, 2].map(mk);
    const applied: string[][] = [[], [], []];
    const loop = async (): Promise<void> => {
      for (let round = 0; round < 50; round++) {
        const out = [];
        const readys = [];
        for (const [i, n] of nodes.entries()) {
          if (!n.hasReady()) continue;
          const rd = n.ready();
          saveReady(storages[i] as RaftStorage, rd);
          readys.push({ i, rd });
        }
        if (readys.length === 0) return;
        await Promise.all(stores.map((s) => s.sync())); // one fsync per store per round
        for (const { i, rd } of readys) {
          out.push(...rd.messages);
          for (const e of rd.committedEntries) if (e.data.length > 0) applied[i]?.push(Buffer.from(e.data).toString());
          nodes[i]?.advance(rd);
        }
        for (const m of out) nodes[m.to - 1]?.step(m);
      }
    };
    nodes[0]?.campaign();
    await loop();
    nodes[0]?.propose(Buffer.from('hello'));
    await loop();
    assert.deepEqual(applied, [['hello'], ['hello'], ['hello']]);
    const term = nodes[0]?.status().term;
    // Restart every node from its own disk.
    for (const s of stores) await s.close();
    const reopened = await Promise.all(dirs.map((d) => open(d)));
    t.after(() => Promise.all(reopened.map((s) => s.close())).then(() => undefined));
    const loaded = await Promise.all(reopened.map((s) => s.openGroup(1)));
    storages.splice(0, 3, ...loaded);
    stores.splice(0, 3, ...reopened);
    nodes = [0, 1, 2].map(mk);
    assert.equal(nodes[1]?.status().term, term);
    assert.equal(nodes[1]?.status().vote, 1);
    assert.equal(nodes[2]?.status().commit, 3, 'bootstrap snapshot, the no-op, then hello');
    applied.splice(0, 3, [], [], []);
    nodes[1]?.campaign();
    await loop();
    assert.deepEqual(applied, [['hello'], ['hello'], ['hello']], 'committed entries are re-applied from disk');
  });

  test(`raft: ${name}: drops applied payloads from memory and reads them back on demand`, async (t) => {
    const dir = tempDir(t);
    const store = await open(dir);
    t.after(() => store.close());
    const s = await store.openGroup(9, [1]);
    const payload = (i: number) => new Uint8Array(1000).fill(i & 0xff);
    const ents = Array.from({ length: 20 }, (_, k) => ({ term: 2, index: k + 2, type: 'normal' as const, data: payload(k + 2) }));
    s.append(ents);
    await store.sync();
    s.evict(15);
    // Every entry reads back with its payload, evicted or not.
    const all = s.entries(2, 22, Number.MAX_SAFE_INTEGER);
    assert.equal(all.length, 20);
    for (const e of all) assert.deepEqual(Buffer.from(e.data), Buffer.from(payload(e.index)));
    // maxBytes still counts an evicted entry's real size (1000 bytes + 24 of header each).
    assert.equal(s.entries(2, 22, 3 * 1024).length, 3);
    // A truncating append replaces evicted entries; the new ones read back as written.
    s.append([{ term: 3, index: 10, type: 'normal', data: payload(200) }]);
    await store.sync();
    assert.equal(s.lastIndex(), 10);
    assert.deepEqual(Buffer.from(s.entries(10, 11, 1 << 20)[0]!.data), Buffer.from(payload(200)));
    assert.deepEqual(Buffer.from(s.entries(9, 10, 1 << 20)[0]!.data), Buffer.from(payload(9)));
  });
}
