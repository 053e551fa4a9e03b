// Durable Raft storage on classic-level (LevelDB), shared by every Raft group of a node.
//
// Group commit: a group's storage applies writes to its in-memory view at once (the core reads
// synchronously) and queues the matching LevelDB operations in the shared store. The host
// handles the Readys of all its groups, then calls sync() once: ONE synced batch carries every
// group's entries and hard state, so a node with thousands of groups pays one fsync per loop
// iteration, not one per group or per entry. Only after sync() resolves may the host send the
// Readys' messages. A crash before sync() loses the whole batch and nothing else (LevelDB
// batches are atomic).
//
// Memory: each group keeps its log since the last compaction in memory, but the host may drop
// the payloads of entries it has applied (evict): they are read back from the store, with a
// synchronous LevelDB get, when a lagging follower needs them. Hosts still snapshot and compact
// (RaftStorage.createSnapshot + compact) to bound the log on disk and the per-entry bookkeeping.

import { ClassicLevel } from 'classic-level';
import {
  decodeEntry,
  decodeHardState,
  decodeSnapshot,
  encodeEntry,
  encodeHardState,
  encodeSnapshot,
  entryIndexFromKey,
  groupKey,
  KeyKind,
} from './codec';
import { diskBytes, rawBatch } from '../util/leveldb';
import { bootstrapSnapshot, MemoryStorage } from './storage';
import { NO_DATA, evictRange, sliceEntries } from './evict';
import { type ConfState, type Entry, type HardState, type Snapshot } from './types';


type Op = { type: 'put'; key: Buffer; value: Buffer } | { type: 'del'; key: Buffer };
type Db = ClassicLevel<Buffer, Buffer>;

/** Bound on queued operations between syncs; beyond it stage() throws, since the host loop is
 * broken (it must sync every iteration). */
const MAX_PENDING_OPS = 1_000_000;
/** Writes that need no fsync (a hard state whose commit index alone moved, log compaction)
 * wait for the next synced batch until this many have gathered. */
const MAX_DEFERRED_OPS = 4_096;

export interface LevelRaftStoreOptions {
  /** Key prefix of all Raft state in the database (to share it with other data). Default "R". */
  readonly prefix?: Uint8Array;
}

export class LevelRaftStore {
  private pending: Op[] = [];
  private pendingBytes = 0;
  /** Synced batches written so far (each is one fsync). */
  syncCount = 0;
  /** Operations written by those batches. */
  opsWritten = 0;
  private readonly prefix: Buffer;

  private constructor(private readonly db: Db, private readonly ownsDb: boolean, opts: LevelRaftStoreOptions) {
    this.prefix = Buffer.from(opts.prefix ?? Buffer.from('R'));
  }

  /** Opens (creating if needed) a database of its own at `path`. */
  static async open(path: string, opts: LevelRaftStoreOptions = {}): Promise<LevelRaftStore> {
    const db: Db = new ClassicLevel<Buffer, Buffer>(path, { keyEncoding: 'buffer', valueEncoding: 'buffer' });
    await db.open();
    return new LevelRaftStore(db, true, opts);
  }

  /** Uses an open database shared with other data; Raft keys live under opts.prefix. */
  static over(db: Db, opts: LevelRaftStoreOptions = {}): LevelRaftStore {
    return new LevelRaftStore(db, false, opts);
  }

  /** Loads one group. A group never seen before starts empty, or from the bootstrap snapshot
   * when `bootstrapVoters` is given (the first members of a new group). */
  async openGroup(group: number, bootstrapVoters: readonly number[] = [], appliedHint = 0): Promise<DurableGroupStorage> {
    const hsRaw = await this.db.get(groupKey(this.prefix, group, KeyKind.HardState));
    const snapRaw = await this.db.get(groupKey(this.prefix, group, KeyKind.Snapshot));
    const entries: Entry[] = [];
    for await (const [key, value] of this.db.iterator({
      gte: groupKey(this.prefix, group, KeyKind.Entry, 0),
      lte: groupKey(this.prefix, group, KeyKind.Entry, Number.MAX_SAFE_INTEGER),
    })) {
      entries.push(decodeEntry(entryIndexFromKey(this.prefix, key), value));
    }
    const s = new DurableGroupStorage(this, group);
    if (hsRaw === undefined && snapRaw === undefined && entries.length === 0) {
      if (bootstrapVoters.length > 0) {
        s.applySnapshot(bootstrapSnapshot(bootstrapVoters));
        s.setHardState({ term: 1, vote: 0, commit: 1 });
      }
      return s;
    }
    s.load(
      hsRaw === undefined ? undefined : decodeHardState(hsRaw),
      snapRaw === undefined ? undefined : decodeSnapshot(snapRaw),
      entries,
    );
    // Payloads the host has applied need not stay in memory (see evict).
    if (appliedHint > 0) s.evict(appliedHint);
    return s;
  }

  /** Queues an operation for the next sync(). */
  stage(op: Op): void {
    if (this.pending.length >= MAX_PENDING_OPS) throw new Error('raft: too many writes queued without sync()');
    this.pending.push(op);
    if (op.type === 'put') this.pendingBytes += op.key.length + op.value.length;
  }

  pendingOps(): number {
    return this.pending.length;
  }

  /** Writes everything queued, by every group, in one synced batch. durable=false is only for
   * writes whose loss in a crash is harmless (a hard state that changed nothing but its commit
   * index, log compaction): they stay queued and ride with the next synced batch, or are
   * written without fsync once MAX_DEFERRED_OPS have gathered. Either way they reach disk in
   * order with everything else (one LevelDB log). */
  async sync(durable = true): Promise<void> {
    if (this.pending.length === 0) return;
    // Nothing a promise depends on: leave it for the next synced batch (its loss in a crash is
    // harmless, see above), unless enough has gathered to be worth writing on its own.
    if (!durable && this.pending.length < MAX_DEFERRED_OPS) return;
    const ops = this.pending;
    this.pending = [];
    this.pendingBytes = 0;
    await rawBatch(this.db, ops, durable);
    if (durable) this.syncCount++;
    this.opsWritten += ops.length;
  }

  /** Bytes of the database on disk (data shared through over() included): its tables as
   * LevelDB counts them from its file metadata (no stat per table, however many there are),
   * plus the other files of its directory (the write-ahead log, the manifest). Asynchronous:
   * nothing here blocks the event loop. */
  diskBytes(): Promise<number> {
    return diskBytes(this.db);
  }

  /** A removed group: nothing to do here (its keys stay, as they always did). */
  dropGroup(_group: number): void {}

  /** Closes the database if this store opened it. Unsynced writes are dropped (as a crash would). */
  async close(): Promise<void> {
    this.pending = [];
    if (this.ownsDb) await this.db.close();
  }

  key(group: number, kind: KeyKind, index?: number): Buffer {
    return groupKey(this.prefix, group, kind, index);
  }

  /** Reads one persisted entry back (synchronously: the core's storage reads are synchronous). */
  readEntry(group: number, index: number): Entry {
    const raw = this.db.getSync(groupKey(this.prefix, group, KeyKind.Entry, index));
    if (raw === undefined) throw new Error(`raft: group ${group} entry ${index} is not in the store`);
    return decodeEntry(index, raw);
  }
}

/** One group's storage: MemoryStorage for reads, every write also queued in the shared store. */
export class DurableGroupStorage extends MemoryStorage {
  /** Payloads up to this index have been considered for eviction. */
  private evictedUpTo = 0;

  constructor(private readonly store: LevelRaftStore, readonly group: number) {
    super();
  }

  /** Drops from memory the payloads of entries up to `index`, which must all be persisted (the
   * host calls it with its applied index, since it applies only persisted entries). */
  evict(index: number): void {
    const last = Math.min(index, this.lastIndex());
    evictRange(this.ents, this.firstIndex() - 1, this.evictedUpTo + 1, last, (e) => ({ term: e.term, index: e.index, type: e.type, data: NO_DATA, evictedBytes: e.data.length }));
    this.evictedUpTo = Math.max(this.evictedUpTo, last);
  }

  override entries(lo: number, hi: number, maxBytes: number): Entry[] {
    return sliceEntries(this.ents, this.firstIndex() - 1, this.lastIndex(), lo, hi, maxBytes, (i) => this.store.readEntry(this.group, i));
  }

  /** Restores the state read from disk (no writes are queued, except dropping stale entries). */
  load(hs: HardState | undefined, snap: Snapshot | undefined, entries: readonly Entry[]): void {
    if (snap !== undefined) super.applySnapshot(snap);
    const first = this.firstIndex();
    // Entries the snapshot already covers are not needed in memory; drop them from disk too.
    for (const e of entries) if (e.index < first) this.store.stage({ type: 'del', key: this.store.key(this.group, KeyKind.Entry, e.index) });
    const live = entries.filter((e) => e.index >= first);
    if (live.length > 0) {
      if ((live[0] as Entry).index !== first) throw new Error(`raft: group ${this.group} log starts at ${(live[0] as Entry).index}, want ${first}`);
      super.append(live);
    }
    if (hs !== undefined) super.setHardState(hs);
  }

  override append(entries: readonly Entry[]): void {
    if (entries.length === 0) return;
    this.evictedUpTo = Math.min(this.evictedUpTo, (entries[0] as Entry).index - 1);
    const oldLast = this.lastIndex();
    super.append(entries);
    const first = this.firstIndex();
    for (const e of entries) {
      if (e.index < first) continue;
      this.store.stage({ type: 'put', key: this.store.key(this.group, KeyKind.Entry, e.index), value: encodeEntry(e) });
    }
    // A shorter replacement truncates: entries past the new end must not survive a restart.
    for (let i = this.lastIndex() + 1; i <= oldLast; i++) {
      this.store.stage({ type: 'del', key: this.store.key(this.group, KeyKind.Entry, i) });
    }
  }

  override setHardState(hs: HardState): void {
    super.setHardState(hs);
    this.store.stage({ type: 'put', key: this.store.key(this.group, KeyKind.HardState), value: encodeHardState(hs) });
  }

  override applySnapshot(snap: Snapshot): void {
    if (snap.meta.index < this.snapshot().meta.index) return;
    const oldFirst = this.firstIndex();
    const oldLast = this.lastIndex();
    this.evictedUpTo = 0;
    super.applySnapshot(snap);
    this.store.stage({ type: 'put', key: this.store.key(this.group, KeyKind.Snapshot), value: encodeSnapshot(snap) });
    for (let i = oldFirst; i <= oldLast; i++) this.store.stage({ type: 'del', key: this.store.key(this.group, KeyKind.Entry, i) });
  }

  override createSnapshot(index: number, confState: ConfState, data: Uint8Array): Snapshot {
    const before = this.snapshot();
    const snap = super.createSnapshot(index, confState, data);
    if (snap !== before) {
      this.store.stage({ type: 'put', key: this.store.key(this.group, KeyKind.Snapshot), value: encodeSnapshot(snap) });
    }
    return snap;
  }

  override compact(index: number): void {
    const oldFirst = this.firstIndex();
    super.compact(index);
    for (let i = oldFirst; i < this.firstIndex(); i++) this.store.stage({ type: 'del', key: this.store.key(this.group, KeyKind.Entry, i) });
  }
}
