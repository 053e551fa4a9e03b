// The segment store's own promises (src/raft/segments.ts, docs/node-store.md "The Raft log
// segments"): torn tails, the conflict rule across restarts, freeing segments, reading evicted
// payloads back (and refusing corrupt ones), migration from the LevelDB format, size limits.
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { EntryType, LevelRaftStore, SegmentCorruptError, SegmentRaftStore, type Entry } from '../../src/raft';

const SEG = 256 * 1024;
const ent = (index: number, term: number, size = 16, fill = index): Entry => ({ index, term, type: EntryType.Normal, data: Buffer.alloc(size, fill & 0xff) });

function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'polyfs-seglog-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}
const open = (dir: string, segmentBytes = SEG): Promise<SegmentRaftStore> => SegmentRaftStore.open(dir, { segmentBytes });
const segFiles = (dir: string): string[] => readdirSync(join(dir, 'segments')).filter((n) => n.endsWith('.log')).sort();
const terms = (s: { entries(lo: number, hi: number, max: number): Entry[]; firstIndex(): number; lastIndex(): number }): string[] =>
  s.lastIndex() < s.firstIndex() ? [] : s.entries(s.firstIndex(), s.lastIndex() + 1, Number.MAX_SAFE_INTEGER).map((e) => `${e.index}:${e.term}`);

test('segments: a torn tail (cut mid-record) recovers to the last complete record, and writing goes on from there', async (t) => {
  const dir = tempDir(t);
  const store = await open(dir);
  const s = await store.openGroup(1, [1]);
  s.append([ent(2, 2), ent(3, 2)]);
  s.setHardState({ term: 2, vote: 1, commit: 3 });
  await store.sync();
  const { path, end } = store.activeSegment();
  s.append([ent(4, 2, 1000)]);
  await store.sync();
  await store.close();
  // The last record (entry 4) loses its second half, as a crash during its write would leave it.
  const buf = readFileSync(path);
  buf.fill(0, end + 500);
  writeFileSync(path, buf);
  const again = await open(dir);
  const r = await again.openGroup(1);
  assert.deepEqual(terms(r), ['2:2', '3:2'], 'everything before the torn record, nothing of it');
  assert.deepEqual(r.initialState().hardState, { term: 2, vote: 1, commit: 3 });
  // New records overwrite the torn one and survive the next restart.
  r.append([ent(4, 3, 10)]);
  await again.sync();
  await again.close();
  const third = await open(dir);
  t.after(() => third.close());
  assert.deepEqual(terms(await third.openGroup(1)), ['2:2', '3:2', '4:3']);
});

test('segments: a corrupt crc ends the log there; nothing a resolved sync covered before it is lost', async (t) => {
  const dir = tempDir(t);
  const store = await open(dir);
  const s = await store.openGroup(1, [1]);
  s.append([ent(2, 2)]);
  await store.sync();
  const { path, end } = store.activeSegment();
  s.append([ent(3, 2), ent(4, 2)]);
  await store.sync();
  await store.close();
  const buf = readFileSync(path);
  buf[end + SegmentRaftStore.recordHeaderBytes + 3] ^= 0x40; // a payload byte of entry 3
  writeFileSync(path, buf);
  const again = await open(dir);
  t.after(() => again.close());
  assert.deepEqual(terms(await again.openGroup(1)), ['2:2'], 'entry 3 fails its crc; entry 4 after it is not replayed');
});

test('segments: damage in a sealed segment followed by records is refused, not taken for a torn tail', async (t) => {
  const dir = tempDir(t);
  const store = await open(dir);
  const s = await store.openGroup(1, [1]);
  s.append([ent(2, 2)]);
  await store.sync();
  const first = store.activeSegment();
  // Roll into the next segment: the first is sealed and synced before anything goes there.
  s.append(Array.from({ length: 30 }, (_, k) => ent(3 + k, 2, 10_000)));
  await store.sync();
  assert.ok(store.segmentCount() >= 2);
  await store.close();
  const clean = await open(dir);
  assert.equal(terms(await clean.openGroup(1)).length, 31, 'a clean restart reads both segments');
  await clean.close();
  // A flipped payload byte of entry 2, in the sealed first segment: later, acknowledged
  // records exist, so this is damage, and forgetting them could undo an acknowledged write.
  const buf = readFileSync(first.path);
  buf[first.end - 5] ^= 0x40;
  writeFileSync(first.path, buf);
  await assert.rejects(open(dir), (err: Error) => err instanceof SegmentCorruptError && /holds records/.test(err.message));
});

test('segments: a truncated segment file (a crash mid-preparation of the next one) is refused or replaced, never half-read', async (t) => {
  const dir = tempDir(t);
  const store = await open(dir);
  const s = await store.openGroup(1, [1]);
  s.append([ent(2, 2)]);
  await store.sync();
  await store.close();
  // The spare segment prepared ahead, cut short: it is after the log's end, so it is replaced.
  const files = segFiles(dir);
  assert.equal(files.length, 2, 'the active segment and the spare prepared ahead');
  truncateSync(join(dir, 'segments', files[1] as string), 1000);
  const again = await open(dir);
  assert.deepEqual(terms(await again.openGroup(1)), ['2:2']);
  await again.close();
  // The active one cut short: the store refuses to guess.
  truncateSync(join(dir, 'segments', files[0] as string), 1000);
  await assert.rejects(open(dir), SegmentCorruptError);
});

test('segments: a conflicting suffix truncates the log across a restart (the conflict rule), also across segments', async (t) => {
  const dir = tempDir(t);
  const store = await open(dir);
  const s = await store.openGroup(3, [1, 2, 3]);
  s.append([ent(2, 2), ent(3, 2), ent(4, 2), ent(5, 2)]);
  await store.sync();
  // Enough to roll into the next segment, then the conflicting shorter suffix.
  const big = Array.from({ length: 30 }, (_, k) => ent(6 + k, 2, 10_000));
  s.append(big);
  await store.sync();
  s.append([ent(4, 3), ent(5, 3)]);
  s.setHardState({ term: 3, vote: 2, commit: 3 });
  await store.sync();
  assert.ok(store.segmentCount() >= 2);
  await store.close();
  const again = await open(dir);
  t.after(() => again.close());
  const r = await again.openGroup(3);
  assert.deepEqual(terms(r), ['2:2', '3:2', '4:3', '5:3'], 'entries 6.. of term 2 are gone');
  assert.deepEqual(r.initialState().hardState, { term: 3, vote: 2, commit: 3 });
});

test('segments: a received snapshot voids the old log, also when its Reset record was lost', async (t) => {
  const dir = tempDir(t);
  const store = await open(dir);
  const s = await store.openGroup(4, [1, 2, 3]);
  s.append([ent(2, 2), ent(3, 2), ent(4, 2)]);
  await store.sync();
  // The leader's snapshot at 3 has term 5: our entries 3 and 4 are from another history.
  s.applySnapshot({ meta: { index: 3, term: 5, confState: { voters: [1, 2, 3], learners: [] } }, data: Buffer.from('s') });
  s.append([ent(4, 5)]);
  await store.sync();
  await store.close();
  let again = await open(dir);
  let r = await again.openGroup(4);
  assert.deepEqual(terms(r), ['4:5']);
  assert.equal(r.snapshot().meta.index, 3);
  await again.close();
  // Simulate a crash between the snapshot's LevelDB batch and the segment write: a store
  // where only the snapshot landed (written here through a second group's view of the keys).
  const dir2 = tempDir(t);
  const st2 = await open(dir2);
  const g = await st2.openGroup(4, [1, 2, 3]);
  g.append([ent(2, 2), ent(3, 2), ent(4, 2)]);
  await st2.sync();
  g.applySnapshot({ meta: { index: 3, term: 5, confState: { voters: [1, 2, 3], learners: [] } }, data: Buffer.from('s') });
  (st2 as unknown as { pending: unknown[] }).pending = []; // the segment records never reach disk
  await st2.sync();
  await st2.close();
  again = await open(dir2);
  t.after(() => again.close());
  r = await again.openGroup(4);
  assert.equal(r.snapshot().meta.index, 3);
  assert.deepEqual(terms(r), [], 'entry 3 disagrees with the snapshot: the whole old log goes, entry 4 too');
});

test('segments: compaction frees segments, keeps what each group still needs, and rewrites hard states it held', async (t) => {
  const dir = tempDir(t);
  const store = await open(dir);
  const a = await store.openGroup(1, [1]);
  const b = await store.openGroup(2, [1]);
  b.append([ent(2, 1, 1000)]);
  b.setHardState({ term: 7, vote: 1, commit: 2 });
  await store.sync();
  b.evict(2); // its payload is read from disk from now on, wherever the entry moves
  // Group 1 writes 2 MiB (8 segments); group 2 stays quiet, its entry and vote in segment 1.
  let i = 2;
  for (let round = 0; round < 40; round++) {
    a.append(Array.from({ length: 5 }, () => ent(i++, 1, 10_000)));
    a.setHardState({ term: 1, vote: 1, commit: i - 1 });
    await store.sync();
    a.evict(i - 1);
    // The host snapshots and compacts as it applies.
    a.createSnapshot(i - 1, { voters: [1], learners: [] }, Buffer.from(`state ${i - 1}`));
    a.compact(Math.max(a.firstIndex(), i - 5));
    // Between a relocation and the sync that writes it, the old record still serves reads.
    assert.deepEqual(Buffer.from(b.entries(2, 3, 1 << 20)[0]!.data), Buffer.alloc(1000, 2));
  }
  await store.sync();
  await store.sync(); // a collect may have staged rewrites: they go out and free the rest
  const total = segFiles(dir).length;
  assert.ok(total <= 5, `segments are freed (${total} on disk)`);
  assert.ok(statSync(join(dir, 'segments')).isDirectory());
  await store.close();
  const again = await open(dir);
  t.after(() => again.close());
  const ra = await again.openGroup(1, [], i - 1);
  const rb = await again.openGroup(2);
  assert.deepEqual(terms(rb), ['2:1'], 'the quiet group keeps its entry (moved forward)');
  assert.deepEqual(Buffer.from(rb.entries(2, 3, 1 << 20)[0]!.data), Buffer.alloc(1000, 2));
  assert.deepEqual(rb.initialState().hardState, { term: 7, vote: 1, commit: 2 }, 'and its vote');
  assert.equal(ra.snapshot().meta.index, i - 1);
  assert.equal(ra.lastIndex(), i - 1);
  // The kept tail after the snapshot is gone from memory but readable... there is none here
  // (the snapshot is at the last index); the group goes on from there.
  assert.deepEqual(ra.initialState().hardState, { term: 1, vote: 1, commit: i - 1 });
});

test('segments: evicted payloads read back from the segment (pread, crc checked); a corrupt one is an error, never bad data', async (t) => {
  const dir = tempDir(t);
  const store = await open(dir);
  const s = await store.openGroup(9, [1]);
  s.append(Array.from({ length: 10 }, (_, k) => ent(k + 2, 2, 1000)));
  await store.sync();
  s.evict(11);
  for (const e of s.entries(2, 12, Number.MAX_SAFE_INTEGER)) assert.deepEqual(Buffer.from(e.data), Buffer.alloc(1000, e.index));
  const { path } = store.activeSegment();
  // Corrupt entry 5's payload on disk (it is evicted: the next read goes to disk).
  const buf = readFileSync(path);
  const at = buf.indexOf(Buffer.alloc(1000, 5));
  assert.ok(at > 0);
  buf[at + 10] ^= 1;
  writeFileSync(path, buf);
  assert.throws(() => s.entries(5, 6, 1 << 20), SegmentCorruptError);
  assert.deepEqual(Buffer.from(s.entries(6, 7, 1 << 20)[0]!.data), Buffer.alloc(1000, 6), 'its neighbours are intact');
  await store.close();
  // Reopened, the store stops at the corrupt record (its crc fails): entries 5.. are not replayed.
  const again = await open(dir);
  t.after(() => again.close());
  assert.equal((await again.openGroup(9)).lastIndex(), 4);
});

test('segments: a LevelDB-format log migrates at open, once: everything is there, the old keys are gone', async (t) => {
  const dir = tempDir(t);
  const db = join(dir, 'db');
  const old = await LevelRaftStore.open(db);
  const groups = [];
  for (const g of [0, 1, 2]) {
    const s = await old.openGroup(g, [1, 2, 3]);
    s.append([ent(2, 2, 300, g), ent(3, 2, 10, g), ent(4, 3, 5000, g)]);
    s.setHardState({ term: 3, vote: 2, commit: 3 });
    groups.push(s);
  }
  // Group 3's log spans several segments: the copy syncs as it goes, and frees nothing.
  const big = await old.openGroup(3, [1]);
  big.append(Array.from({ length: 100 }, (_, k) => ent(k + 2, 2, 10_000, k)));
  const s1 = groups[1]!;
  s1.createSnapshot(2, { voters: [1, 2, 3], learners: [] }, Buffer.from('image'));
  await old.sync();
  await old.close();

  const again = await open(dir);
  const { ClassicLevel } = await import('classic-level');
  for (const g of [0, 1, 2]) {
    const s = await again.openGroup(g, [], 0);
    assert.deepEqual(s.initialState().hardState, { term: 3, vote: 2, commit: 3 }, `group ${g} hard state`);
    const want = g === 1 ? ['3:2', '4:3'] : ['2:2', '3:2', '4:3'];
    assert.deepEqual(terms(s), want, `group ${g} entries`);
    const e4 = s.entries(4, 5, 1 << 20)[0] as Entry;
    assert.deepEqual(Buffer.from(e4.data), Buffer.alloc(5000, g));
  }
  const rbig = await again.openGroup(3, [], 0);
  assert.equal(rbig.lastIndex(), 101);
  for (const e of rbig.entries(2, 102, Number.MAX_SAFE_INTEGER)) assert.deepEqual(Buffer.from(e.data), Buffer.alloc(10_000, e.index - 2));
  // A second open does not migrate again (the marker): its writes since are kept.
  const s2 = await again.openGroup(5, [1]);
  s2.append([ent(2, 4)]);
  await again.sync();
  await again.close();
  const third = await open(dir);
  assert.deepEqual(terms(await third.openGroup(5)), ['2:4']);
  assert.deepEqual(terms(await third.openGroup(0)), ['2:2', '3:2', '4:3']);
  await third.close();
  const raw = new ClassicLevel<Buffer, Buffer>(db, { keyEncoding: 'buffer', valueEncoding: 'buffer' });
  await raw.open();
  const keys: Buffer[] = [];
  for await (const k of raw.keys()) keys.push(k);
  await raw.close();
  assert.equal(keys.filter((k) => k[0] === 0x52 && (k[9] === 0x01 || k[9] === 0x03)).length, 0, 'the old hard state and entry keys are gone');
  assert.equal(keys.filter((k) => k[9] === 0x02).length, 5, 'snapshots stay in LevelDB (groups 0, 1, 2, 3 and 5)');
});

test('segments: a crash before the migration marker leaves the LevelDB log authoritative, and migrates again safely', async (t) => {
  const dir = tempDir(t);
  const db = join(dir, 'db');
  const old = await LevelRaftStore.open(db);
  const s = await old.openGroup(1, [1, 2, 3]);
  s.append([ent(2, 2, 400), ent(3, 2)]);
  s.setHardState({ term: 2, vote: 3, commit: 2 });
  await old.sync();
  await old.close();
  // Half a migration: garbage segments in the directory, no marker in the database.
  const segDir = join(dir, 'segments');
  rmSync(segDir, { recursive: true, force: true });
  const junk = await open(join(dir, 'junk'));
  const j = await junk.openGroup(1, [1]);
  j.append([ent(2, 9), ent(3, 9), ent(4, 9)]);
  await junk.sync();
  await junk.close();
  const { cpSync } = await import('node:fs');
  cpSync(join(dir, 'junk', 'segments'), segDir, { recursive: true });
  const again = await open(dir);
  t.after(() => again.close());
  const r = await again.openGroup(1);
  assert.deepEqual(terms(r), ['2:2', '3:2'], 'the old keys win over a migration that did not finish');
  assert.deepEqual(r.initialState().hardState, { term: 2, vote: 3, commit: 2 });
});

test('segments: sizes are bounded: a record larger than a segment is refused; a removed group stops pinning segments', async (t) => {
  const dir = tempDir(t);
  const store = await open(dir);
  t.after(() => store.close());
  const s = await store.openGroup(1, [1]);
  assert.throws(() => s.append([ent(2, 2, SEG)]), /exceeds the segment limit/);
  // Several MiB entries fit the default 64 MiB segments (write-behind commits 2 MiB).
  assert.ok(store.maxPayload < SEG);
  const gone = await store.openGroup(2, [1]);
  gone.append(Array.from({ length: 20 }, (_, k) => ent(k + 2, 2, 10_000)));
  await store.sync();
  store.dropGroup(2);
  // The other group writes on; the removed group's segments go.
  let i = 2;
  for (let round = 0; round < 40; round++) {
    s.append(Array.from({ length: 5 }, () => ent(i++, 2, 10_000)));
    await store.sync();
    s.createSnapshot(i - 1, { voters: [1], learners: [] }, Buffer.alloc(0));
    s.compact(i - 1);
  }
  await store.sync();
  assert.ok(segFiles(dir).length <= 5, `${segFiles(dir).length} segments on disk`);
});
