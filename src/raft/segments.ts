// The Raft log of every group a node hosts, in the node's own segment files (docs/node-store.md,
// "The Raft log segments"). Snapshots stay in LevelDB (the shared node store), under the keys
// LevelRaftStore uses; entries and hard states are records appended to preallocated segments.
//
// Why: a synced LevelDB batch costs ~1.3 ms here and every Raft payload is then rewritten by
// memtable flushes and compactions; a write + fdatasync into an already zero-filled file costs
// ~0.3 ms and writes each byte once. Group commit stays: every group's records of one host
// iteration go out in one writev per segment and ONE fdatasync (two when the batch rolls into
// the next segment).
//
// Ordering across the two stores: a snapshot (LevelDB, synced) is written BEFORE the segment
// records of the same sync(), so a durable hard state or entry never refers past a snapshot
// that is lost; and segments are deleted only after the snapshots that make them obsolete
// are durable (they were synced by an earlier sync()).

import { crc32c } from '@node-rs/crc32';
import { closeSync, fdatasync, fstatSync, openSync, read, readSync, write, writev, writevSync } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, rm, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { ClassicLevel } from 'classic-level';
import { decodeEntry, decodeHardState, decodeSnapshot, encodeSnapshot, CorruptRaftRecordError, groupKey, KeyKind, entryIndexFromKey } from './codec';
import { diskBytes, noteLogWrite, rawBatch, type BatchOp } from '../util/leveldb';
import { bootstrapSnapshot, MemoryStorage } from './storage';
import { EVICT_MIN_BYTES, NO_DATA, evictRange, sliceEntries, type EvictedEntry } from './evict';
import { EntryType, type ConfState, type Entry, type HardState, type Snapshot } from './types';

type Db = ClassicLevel<Buffer, Buffer>;

/** Format of the segment files and of their records (the marker key holds it too). */
export const SEGMENT_FORMAT = 1;
const MAGIC = Buffer.from('PFSRLOG\n');
/** Segment header: magic 8, format u32, size u32 (the file's length), seq u64, crc32c u32 (of the 24 before). */
const HEADER_BYTES = 28;
/** Record header: len u32 (bytes after these 8), crc32c u32, kind u8, group u64, index u64, term u64. */
const REC_HEADER = 33;
const DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024;
/** A new store's first segment; each next one is 4x larger up to the maximum (1, 4, 16, 64 MiB):
 * a node that starts, and a test cluster of many nodes, zero-fill little until they write. */
const FIRST_SEGMENT_BYTES = 1024 * 1024;

export const RecordKind = {
  /** A log entry (normal); index and term are the entry's, the payload its data. */
  Entry: 1,
  /** A log entry (conf change). */
  ConfChange: 2,
  /** Hard state: index = commit, term = term, payload = vote u64. The latest one wins. */
  HardState: 3,
  /** The group's log was replaced by a received snapshot at (index, term): earlier entries are void. */
  Reset: 4,
  /** The group was removed from this node: its earlier entries are void. */
  Drop: 5,
  /** The segment ends here; the log continues in segment `index`. */
  Seal: 6,
} as const;
type RecordKind = (typeof RecordKind)[keyof typeof RecordKind];

/** Records that need no fsync (a commit-only hard state) wait for the next durable sync until
 * this many have gathered. */
const MAX_DEFERRED = 4_096;
const MAX_PENDING = 1_000_000;
/** Writes of at most this many bytes are made synchronously (see syncNow). */
const SYNC_WRITE_BYTES = 256 * 1024;
/** A segment pinned only by groups whose live log is small (the master group, a quiet region)
 * is freed by copying their live entries forward, once more than this many are closed. */
const RELOCATE_AFTER = 2;

export interface SegmentRaftStoreOptions {
  /** Key prefix of the Raft keys (snapshots, the migration marker) in the database. Default "R". */
  readonly prefix?: Uint8Array;
  /** The largest size of a segment file (default 64 MiB). A record must fit in one segment. */
  readonly segmentBytes?: number;
}

/** Where a record lives: filled in when the record is written (seq 0 = not written yet). */
export interface Loc {
  seq: number;
  off: number;
  /** Whole record length (header included). */
  len: number;
}

interface SegEvictedEntry extends EvictedEntry {
  readonly loc: Loc;
  /** Where a relocation is writing it again: used once written (until then `loc` holds). */
  readonly moved?: Loc;
}

/** Where an evicted entry can be read now. */
const readLoc = (e: SegEvictedEntry): Loc => (e.moved !== undefined && e.moved.seq !== 0 ? e.moved : e.loc);

interface Pending {
  readonly header: Buffer;
  readonly payload: Uint8Array;
  readonly loc: Loc;
  /** Group, kind and index, for the segment bookkeeping. */
  readonly group: number;
  readonly kind: RecordKind;
  readonly index: number;
}

/** A segment the log has left that is kept for the values pointers name in it
 * (docs/node-store.md, "Steps 2-3"). */
interface ValueSegment {
  readonly seq: number;
  readonly path: string;
  fd: number;
  /** Reads in flight (the file is closed only when none are). */
  readers: number;
  /** Set once the file is to go: closed and deleted when the last reader is done. */
  doomed: boolean;
}

interface Segment {
  readonly seq: number;
  /** The file's length (from its header). */
  readonly size: number;
  readonly path: string;
  fd: number;
  /** Per group, the highest entry index this segment holds (to decide when it is dead). */
  readonly maxIndex: Map<number, number>;
  /** Groups whose latest hard state record is in this segment. */
  readonly hardStates: Set<number>;
}

/** What the scan at open found for one group. */
interface Recovered {
  chain: { index: number; term: number; type: Entry['type']; data: Uint8Array | undefined; loc: Loc }[];
  hs: HardState | undefined;
}

export class SegmentCorruptError extends CorruptRaftRecordError {}

function u64(buf: Buffer, n: number, off: number): void {
  buf.writeUInt32BE(Math.floor(n / 0x1_0000_0000), off);
  buf.writeUInt32BE(n >>> 0, off + 4);
}
function r64(buf: Buffer, off: number): number {
  return buf.readUInt32BE(off) * 0x1_0000_0000 + buf.readUInt32BE(off + 4);
}
function seqBytes(seq: number): Buffer {
  const b = Buffer.allocUnsafe(8);
  u64(b, seq, 0);
  return b;
}
/** A record's crc covers its segment's seq too: a record left over from another segment's
 * life (a recycled or stale file) never validates in this one. */
function recordCrc(seq: number, header: Buffer, payload: Uint8Array): number {
  return crc32c(payload, crc32c(header.subarray(8), crc32c(seqBytes(seq))));
}
const segName = (seq: number): string => `seg-${seq.toString().padStart(12, '0')}.log`;

function header(kind: RecordKind, group: number, index: number, term: number, payloadLen: number): Buffer {
  const h = Buffer.allocUnsafe(REC_HEADER);
  h.writeUInt32BE(REC_HEADER - 8 + payloadLen, 0);
  h[8] = kind;
  u64(h, group, 9);
  u64(h, index, 17);
  u64(h, term, 25);
  return h;
}

function segmentHeader(seq: number, size: number): Buffer {
  const h = Buffer.alloc(HEADER_BYTES);
  MAGIC.copy(h, 0);
  h.writeUInt32BE(SEGMENT_FORMAT, 8);
  h.writeUInt32BE(size, 12);
  u64(h, seq, 16);
  h.writeUInt32BE(crc32c(h.subarray(0, 24)), 24);
  return h;
}

/** A mutex of one: syncs (and close) never interleave their writes. */
class Serial {
  private tail: Promise<unknown> = Promise.resolve();
  run<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.tail.then(fn, fn);
    this.tail = p.catch(() => undefined);
    return p;
  }
}

export class SegmentRaftStore {
  /** Durable syncs so far (each is one fdatasync per touched segment, normally one). */
  syncCount = 0;
  /** Records written so far. */
  opsWritten = 0;
  private pending: Pending[] = [];
  private pendingDurable = false;
  private dbOps: BatchOp[] = [];
  private readonly prefix: Buffer;
  private readonly segBytes: number;
  /** Live segments in seq order; the last one is the active one. */
  private segs: Segment[] = [];
  private writeOff = HEADER_BYTES;
  /** The next segment, zero-filled ahead in the background. */
  private next: Promise<Segment> | undefined;
  private nextSeq = 1;
  /** Size of the last segment prepared (the next one is 4x, up to segBytes). */
  private lastSize = 0;
  private readonly serial = new Serial();
  private readonly groups = new Map<number, SegmentGroupStorage>();
  private recovered = new Map<number, Recovered>();
  private closed = false;
  /** While migrating, nothing is freed: the copied records belong to no opened group yet. */
  private migrating = false;
  /** Last hard state written per group (to write it again when its segment is freed). */
  private readonly lastHs = new Map<number, HardState>();
  /** The segment list (oldest seq, count) last considered for relocation. */
  private relocateChecked = '';
  /** Segments written since their last fdatasync. */
  private readonly unsynced = new Set<Segment>();
  /** Segments the log has left, kept for the values pointers name in them, by seq. */
  private readonly valueSegs = new Map<number, ValueSegment>();
  /** Set by keepValues(): segments the log leaves become value segments. */
  private onRetired: ((seq: number) => void) | null = null;
  /** The end of the durable log: every record before (seq, off) has been fdatasynced. */
  private durableSeq = 0;
  private durableOff = 0;

  private constructor(private readonly db: Db, private readonly ownsDb: boolean, readonly dir: string, opts: SegmentRaftStoreOptions) {
    this.prefix = Buffer.from(opts.prefix ?? Buffer.from('R'));
    this.segBytes = opts.segmentBytes ?? DEFAULT_SEGMENT_BYTES;
  }

  /** The largest record payload a segment can take. */
  get maxPayload(): number {
    return this.segBytes - HEADER_BYTES - 2 * REC_HEADER;
  }

  /** Opens a store of its own: LevelDB at `path`/db, segments at `path`/segments. */
  static async open(path: string, opts: SegmentRaftStoreOptions = {}): Promise<SegmentRaftStore> {
    await mkdir(path, { recursive: true });
    const db: Db = new ClassicLevel<Buffer, Buffer>(join(path, 'db'), { keyEncoding: 'buffer', valueEncoding: 'buffer' });
    await db.open();
    const s = new SegmentRaftStore(db, true, join(path, 'segments'), opts);
    try {
      await s.start();
    } catch (err) {
      await db.close();
      throw err;
    }
    return s;
  }

  /** Uses an open database shared with other data (snapshots and the marker live under
   * opts.prefix), and the segment directory `dir`. Migrates a LevelDB-format log it finds. */
  static async over(db: Db, dir: string, opts: SegmentRaftStoreOptions = {}): Promise<SegmentRaftStore> {
    const s = new SegmentRaftStore(db, false, dir, opts);
    await s.start();
    return s;
  }

  /** The key saying the Raft log lives in segments (its value: the format, u32). Group id
   * 2^64-1 never exists, so it collides with no group key. */
  private markerKey(): Buffer {
    return Buffer.concat([this.prefix, Buffer.alloc(9, 0xff)]);
  }

  /** The key marking segment `seq` as a value segment (docs/node-store.md, "Steps 2-3"). */
  private valueMarkerKey(seq: number): Buffer {
    const k = Buffer.alloc(this.prefix.length + 9);
    this.prefix.copy(k, 0);
    k[this.prefix.length] = 0xfe;
    u64(k, seq, this.prefix.length + 1);
    return k;
  }

  /** From now on a segment the log leaves is kept as a value segment (marked, synced) instead
   * of deleted, and `onRetired` hears of it; whoever owns the pointers decides when it goes
   * (deleteValueSegment). */
  keepValues(onRetired: (seq: number) => void): void {
    this.onRetired = onRetired;
  }

  private async start(): Promise<void> {
    const marker = await this.db.get(this.markerKey());
    if (marker !== undefined) {
      const format = marker.readUInt32BE(0);
      if (format !== SEGMENT_FORMAT) throw new Error(`raft: segment log format ${format} is not known to this version (it knows ${SEGMENT_FORMAT})`);
      await this.recover();
      return;
    }
    // No marker: the LevelDB keys are authoritative. Whatever is in the directory is a
    // migration that did not finish (or nothing): start over from the database.
    await rm(this.dir, { recursive: true, force: true });
    await mkdir(this.dir, { recursive: true });
    await this.recover();
    await this.migrate();
  }

  /** Copies a LevelDB-format log (hard states and entries under the prefix) into segments,
   * syncs them, then deletes the old keys and sets the marker in ONE synced batch. A crash
   * before that batch leaves the old keys authoritative (the next open starts over); after
   * it, the segments are. Snapshots stay where they are. */
  private async migrate(): Promise<void> {
    const dels: BatchOp[] = [];
    let bytes = 0;
    this.migrating = true;
    for await (const [key, value] of this.db.iterator({ gte: this.prefix, lt: this.markerKey() })) {
      if (key.length < this.prefix.length + 9) continue;
      const group = r64(key, this.prefix.length);
      const kind = key[this.prefix.length + 8];
      if (kind === KeyKind.HardState) {
        this.stageHardState(group, decodeHardState(value));
      } else if (kind === KeyKind.Entry) {
        const e = decodeEntry(entryIndexFromKey(this.prefix, key), value);
        this.stageEntry(group, e);
        bytes += e.data.length;
      } else continue;
      dels.push({ type: 'del', key: Buffer.from(key) });
      // Bounded memory: write what has gathered.
      if (bytes > this.segBytes / 4) {
        await this.sync(true);
        bytes = 0;
      }
    }
    await this.sync(true);
    const marker = Buffer.alloc(4);
    marker.writeUInt32BE(SEGMENT_FORMAT, 0);
    await rawBatch(this.db, [...dels, { type: 'put', key: this.markerKey(), value: marker }], true);
    this.migrating = false;
    // The old log's tables hold as much as the segments now do: compact the range once, so
    // the node does not keep both on disk until LevelDB gets round to it.
    if (dels.length > 0) await this.db.compactRange(this.prefix, this.markerKey());
    // What was copied is read back by openGroup from the segments, as after any restart.
    this.recovered = new Map();
    this.lastHs.clear();
    const next = await this.next;
    if (next !== undefined) closeSync(next.fd);
    for (const s of this.segs) closeSync(s.fd);
    this.segs = [];
    this.next = undefined;
    await this.recover();
  }

  // ---- recovery

  /** Scans every segment in order: the records up to the first invalid one (a torn tail) are
   * the log; what follows is void, zeroed, and written over. */
  private async recover(): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    const names = (await readdir(this.dir)).sort();
    for (const n of names) if (n.endsWith('.prep')) await unlink(join(this.dir, n)); // preparation cut short
    const onDisk = new Set(names.filter((n) => /^seg-\d+\.log$/.test(n)).map((n) => Number(n.slice(4, -4))));
    // Value segments: opened for reads, never scanned, not part of the log's chain. A marker
    // whose file is gone (deleted after its records' sync, before the marker's) goes too.
    const lo = this.valueMarkerKey(0);
    const hi = Buffer.concat([this.prefix, Buffer.from([0xff])]);
    const gone: BatchOp[] = [];
    for await (const k of this.db.keys({ gte: lo, lt: hi })) {
      if (k.length !== lo.length) continue;
      const seq = r64(k, this.prefix.length + 1);
      if (onDisk.has(seq)) {
        const path = join(this.dir, segName(seq));
        this.valueSegs.set(seq, { seq, path, fd: openSync(path, 'r'), readers: 0, doomed: false });
        onDisk.delete(seq);
      } else gone.push({ type: 'del', key: Buffer.from(k) });
    }
    if (gone.length > 0) await rawBatch(this.db, gone, true);
    const seqs = [...onDisk].sort((a, b) => a - b);
    let ended = false;
    let spare: Segment | undefined;
    for (const seq of seqs) {
      const path = join(this.dir, segName(seq));
      const buf = await readFile(path);
      const h = buf.subarray(0, HEADER_BYTES);
      const headerOk = buf.length >= HEADER_BYTES && h.subarray(0, 8).equals(MAGIC) && h.readUInt32BE(24) === crc32c(h.subarray(0, 24)) && r64(h, 16) === seq;
      if (ended) {
        // After the end of the log: the prepared spare (or spares). Records here would mean
        // the log is damaged before its end, not torn at it: a roll makes the sealed segment
        // durable before it writes into the next, so an unsealed segment is never followed by
        // records. Refuse, rather than forget what was acknowledged.
        if (headerOk && hasRecord(seq, buf)) throw new SegmentCorruptError(`the log: ${this.segs[this.segs.length - 1]?.path} ends without a seal at an invalid record, but the later ${path} holds records`);
        if (spare === undefined && headerOk && buf.length === h.readUInt32BE(12) && h.readUInt32BE(8) === SEGMENT_FORMAT) {
          spare = { seq, size: buf.length, path, fd: openSync(path, 'r+'), maxIndex: new Map(), hardStates: new Set() };
          this.lastSize = buf.length;
          await zeroRange(spare.fd, HEADER_BYTES, nonZeroEnd(buf, HEADER_BYTES));
        } else await unlink(path);
        continue;
      }
      if (!headerOk) throw new SegmentCorruptError(`segment header of ${path}`);
      if (h.readUInt32BE(8) !== SEGMENT_FORMAT) throw new Error(`raft: segment ${path} has format ${h.readUInt32BE(8)}, this version knows ${SEGMENT_FORMAT}`);
      if (buf.length !== h.readUInt32BE(12)) throw new SegmentCorruptError(`segment ${path} (${buf.length} bytes, its header says ${h.readUInt32BE(12)})`);
      const seg: Segment = { seq, size: buf.length, path, fd: openSync(path, 'r+'), maxIndex: new Map(), hardStates: new Set() };
      this.lastSize = buf.length;
      this.segs.push(seg);
      const { end, sealed } = this.scan(seg, buf);
      if (!sealed) {
        ended = true;
        this.writeOff = end;
        // Zero what follows the end (a torn write, records of an unacknowledged batch) so that
        // records appended from here never run into stale ones that still validate.
        await zeroRange(seg.fd, end, nonZeroEnd(buf, end));
      }
    }
    this.nextSeq = Math.max(seqs[seqs.length - 1] ?? 0, ...this.valueSegs.keys()) + 1;
    if (this.segs.length === 0) {
      this.segs.push(await this.prepare(this.nextSeq++, Math.min(this.segBytes, FIRST_SEGMENT_BYTES)));
      this.writeOff = HEADER_BYTES;
    } else if (!ended) {
      // The last segment is sealed but its successor is gone: cannot happen (a seal is only
      // written when rolling into a prepared, synced segment).
      throw new SegmentCorruptError(`segment chain after ${this.segs[this.segs.length - 1]?.path}`);
    }
    for (const [g, r] of this.recovered) if (r.hs !== undefined) this.lastHs.set(g, r.hs);
    // Everything found is on disk: the log is durable up to its end.
    this.durableSeq = this.active().seq;
    this.durableOff = this.writeOff;
    if (spare !== undefined) this.next = Promise.resolve(spare);
    else this.prepareNext();
  }

  /** Reads one segment's records into `recovered`. */
  private scan(seg: Segment, buf: Buffer): { end: number; sealed: boolean } {
    let off = HEADER_BYTES;
    while (off + REC_HEADER <= buf.length) {
      const len = buf.readUInt32BE(off);
      if (len < REC_HEADER - 8 || off + 8 + len > buf.length) return { end: off, sealed: false };
      const h = buf.subarray(off, off + REC_HEADER);
      const payload = buf.subarray(off + REC_HEADER, off + 8 + len);
      if (recordCrc(seg.seq, h, payload) !== buf.readUInt32BE(off + 4)) return { end: off, sealed: false };
      const kind = h[8] as RecordKind;
      const group = r64(h, 9);
      const index = r64(h, 17);
      const term = r64(h, 25);
      const loc: Loc = { seq: seg.seq, off, len: 8 + len };
      if (kind === RecordKind.Seal) return { end: off + 8 + len, sealed: true };
      if (kind < RecordKind.Entry || kind > RecordKind.Drop) return { end: off, sealed: false };
      off += 8 + len;
      let g = this.recovered.get(group);
      if (g === undefined) this.recovered.set(group, (g = { chain: [], hs: undefined }));
      switch (kind) {
        case RecordKind.Entry:
        case RecordKind.ConfChange: {
          const first = g.chain[0]?.index ?? 0;
          const last = g.chain[g.chain.length - 1]?.index ?? -1;
          // The conflict rule: a later entry at an index the group has truncates from there.
          // Below the chain, or past a gap (a snapshot reset the log in between), it restarts.
          if (g.chain.length > 0 && index >= first && index <= last + 1) g.chain.length = index - first;
          else g.chain = [];
          g.chain.push({ index, term, type: kind === RecordKind.ConfChange ? EntryType.ConfChange : EntryType.Normal, data: payload.length < EVICT_MIN_BYTES ? Buffer.from(payload) : undefined, loc });
          seg.maxIndex.set(group, Math.max(seg.maxIndex.get(group) ?? 0, index));
          break;
        }
        case RecordKind.HardState:
          g.hs = { term, vote: payload.length >= 8 ? r64(Buffer.from(payload), 0) : 0, commit: index };
          for (const s of this.segs) s.hardStates.delete(group);
          seg.hardStates.add(group);
          break;
        case RecordKind.Reset:
        case RecordKind.Drop:
          g.chain = [];
          for (const s of this.segs) s.maxIndex.delete(group);
          break;
      }
    }
    return { end: off, sealed: false };
  }

  // ---- segments

  /** Creates segment `seq` zero-filled to its full size: written as `.prep`, synced, renamed,
   * directory synced, so that a `.log` file always has its whole length allocated and a
   * valid header. */
  private async prepare(seq: number, size: number): Promise<Segment> {
    this.lastSize = size;
    const path = join(this.dir, segName(seq));
    const tmp = `${path}.prep`;
    const fh = await open(tmp, 'w+');
    try {
      await fh.write(segmentHeader(seq, size), 0, HEADER_BYTES, 0);
      const zeros = Buffer.alloc(Math.min(4 << 20, size));
      for (let off = HEADER_BYTES; off < size; off += zeros.length) {
        if (this.closed) throw new Error('raft: store closed');
        await fh.write(zeros, 0, Math.min(zeros.length, size - off), off);
      }
      await fh.datasync();
    } finally {
      await fh.close();
    }
    if (this.closed) throw new Error('raft: store closed');
    await rename(tmp, path);
    await syncDir(this.dir);
    return { seq, size, path, fd: openSync(path, 'r+'), maxIndex: new Map(), hardStates: new Set() };
  }

  private prepareNext(): void {
    const p = this.prepare(this.nextSeq++, Math.min(this.segBytes, Math.max(FIRST_SEGMENT_BYTES, this.lastSize * 4)));
    p.catch(() => undefined); // awaited (and its error seen) when the active segment fills
    this.next = p;
  }

  private active(): Segment {
    return this.segs[this.segs.length - 1] as Segment;
  }

  // ---- staging (synchronous: the group storages call these while handling a Ready)

  private push(p: Pending, durable: boolean): void {
    if (this.pending.length >= MAX_PENDING) throw new Error('raft: too many writes queued without sync()');
    if (p.payload.length > this.maxPayload) throw new Error(`raft: record of ${p.payload.length} bytes exceeds the segment limit of ${this.maxPayload}`);
    this.pending.push(p);
    if (durable) this.pendingDurable = true;
  }

  stageEntry(group: number, e: Entry, loc: Loc = { seq: 0, off: 0, len: 0 }): Loc {
    const kind = e.type === EntryType.ConfChange ? RecordKind.ConfChange : RecordKind.Entry;
    this.push({ header: header(kind, group, e.index, e.term, e.data.length), payload: e.data, loc, group, kind, index: e.index }, true);
    return loc;
  }

  stageHardState(group: number, hs: HardState, durable = true): void {
    const vote = Buffer.allocUnsafe(8);
    u64(vote, hs.vote, 0);
    this.lastHs.set(group, hs);
    this.push({ header: header(RecordKind.HardState, group, hs.commit, hs.term, 8), payload: vote, loc: { seq: 0, off: 0, len: 0 }, group, kind: RecordKind.HardState, index: hs.commit }, durable);
  }

  stageReset(group: number, snap: Snapshot): void {
    this.push({ header: header(RecordKind.Reset, group, snap.meta.index, snap.meta.term, 0), payload: NO_DATA, loc: { seq: 0, off: 0, len: 0 }, group, kind: RecordKind.Reset, index: snap.meta.index }, true);
  }

  stageSnapshot(group: number, snap: Snapshot): void {
    this.dbOps.push({ type: 'put', key: groupKey(this.prefix, group, KeyKind.Snapshot), value: encodeSnapshot(snap) });
    this.pendingDurable = true;
  }

  pendingOps(): number {
    return this.pending.length + this.dbOps.length;
  }

  // ---- loading

  /** Loads one group (from what the scan at open found). A group never seen before starts
   * empty, or from the bootstrap snapshot when `bootstrapVoters` is given. */
  async openGroup(group: number, bootstrapVoters: readonly number[] = [], appliedHint = 0): Promise<SegmentGroupStorage> {
    const rec = this.recovered.get(group);
    this.recovered.delete(group);
    const snapRaw = await this.db.get(groupKey(this.prefix, group, KeyKind.Snapshot));
    const s = new SegmentGroupStorage(this, group);
    this.groups.set(group, s);
    if ((rec === undefined || (rec.chain.length === 0 && rec.hs === undefined)) && snapRaw === undefined) {
      if (bootstrapVoters.length > 0) {
        s.applySnapshot(bootstrapSnapshot(bootstrapVoters));
        s.setHardState({ term: 1, vote: 0, commit: 1 });
      }
      return s;
    }
    const snap = snapRaw === undefined ? undefined : decodeSnapshot(snapRaw);
    let chain = rec?.chain ?? [];
    if (snap !== undefined) {
      // The snapshot is in LevelDB, the log in segments, and a crash can fall between the
      // two: a received snapshot whose Reset record was lost leaves the old log. It is kept
      // only if it agrees with the snapshot at the snapshot's index (Log Matching: then it is
      // the same history up to there); otherwise every old entry goes.
      const at = chain.find((e) => e.index === snap.meta.index);
      if (at !== undefined && at.term !== snap.meta.term) chain = [];
      chain = chain.filter((e) => e.index > snap.meta.index);
    }
    // Payloads the host has not applied yet come back into memory; the rest stay on disk.
    const entries: Entry[] = [];
    for (const c of chain) {
      if (c.data !== undefined) entries.push({ index: c.index, term: c.term, type: c.type, data: c.data });
      else if (c.index <= appliedHint) {
        const slim: SegEvictedEntry = { index: c.index, term: c.term, type: c.type, data: NO_DATA, evictedBytes: c.loc.len - REC_HEADER, loc: c.loc };
        entries.push(slim);
      } else entries.push(await this.readAsync(group, c.index, c.loc));
    }
    s.load(rec?.hs, snap, entries, chain.map((c) => c.loc));
    return s;
  }

  /** The group was removed from this node (its tombstone is durable: the caller ensures it).
   * Its entries are void from here on and stop pinning segments. Its hard state is written
   * again after the Drop record, and its snapshot stays: a replica created again later in the
   * same group must not forget its vote (Raft safety); the core clamps the commit index to
   * the (now empty) log. */
  dropGroup(group: number): void {
    const hs = this.lastHs.get(group) ?? this.recovered.get(group)?.hs;
    this.groups.delete(group);
    this.recovered.delete(group);
    for (const s of this.segs) s.maxIndex.delete(group);
    this.push({ header: header(RecordKind.Drop, group, 0, 0, 0), payload: NO_DATA, loc: { seq: 0, off: 0, len: 0 }, group, kind: RecordKind.Drop, index: 0 }, true);
    if (hs !== undefined) this.stageHardState(group, hs);
  }

  /** Whether the segments hold records of a group nobody opened. */
  hasUnopened(group: number): boolean {
    return this.recovered.has(group);
  }

  // ---- reading back

  private check(loc: Loc, buf: Buffer, group: number, index: number): Entry {
    const h = buf.subarray(0, REC_HEADER);
    const payload = buf.subarray(REC_HEADER);
    if (buf.readUInt32BE(0) !== loc.len - 8 || recordCrc(loc.seq, h, payload) !== buf.readUInt32BE(4) || r64(h, 9) !== group || r64(h, 17) !== index) {
      throw new SegmentCorruptError(`group ${group} entry ${index} (segment ${loc.seq} offset ${loc.off})`);
    }
    const kind = h[8];
    if (kind !== RecordKind.Entry && kind !== RecordKind.ConfChange) throw new SegmentCorruptError(`group ${group} entry ${index}`);
    return { index, term: r64(h, 25), type: kind === RecordKind.ConfChange ? EntryType.ConfChange : EntryType.Normal, data: payload };
  }

  /** Reads one persisted entry back, synchronously (the core's storage reads are synchronous):
   * one pread at its recorded place, checked against its crc. */
  readEntry(group: number, index: number, loc: Loc): Entry {
    const seg = this.segs.find((s) => s.seq === loc.seq);
    if (seg === undefined) throw new Error(`raft: group ${group} entry ${index} is in segment ${loc.seq}, which is gone`);
    const buf = Buffer.allocUnsafe(loc.len);
    let got = 0;
    while (got < loc.len) {
      const n = readSync(seg.fd, buf, got, loc.len - got, loc.off + got);
      if (n === 0) break;
      got += n;
    }
    if (got !== loc.len) throw new SegmentCorruptError(`group ${group} entry ${index} (short read)`);
    return this.check(loc, buf, group, index);
  }

  private async readAsync(group: number, index: number, loc: Loc): Promise<Entry> {
    const seg = this.segs.find((s) => s.seq === loc.seq);
    if (seg === undefined) throw new Error(`raft: group ${group} entry ${index} is in segment ${loc.seq}, which is gone`);
    const buf = Buffer.allocUnsafe(loc.len);
    const n = await readAt(seg.fd, buf, loc.off);
    if (n !== loc.len) throw new SegmentCorruptError(`group ${group} entry ${index} (short read)`);
    return this.check(loc, buf, group, index);
  }

  // ---- writing

  /** Writes everything staged, by every group: snapshots first (one synced LevelDB batch, only
   * when there are any), then the records (one writev per segment touched, then fdatasync).
   * durable=false is only for writes whose loss is harmless (commit-only hard states): they
   * wait for the next durable sync, or are written without fdatasync once MAX_DEFERRED have
   * gathered. Resolves once every staged write is on disk. */
  async sync(durable = true): Promise<void> {
    return this.serial.run(() => this.syncNow(durable));
  }

  private async syncNow(durable: boolean): Promise<void> {
    if (this.closed) return;
    if (this.pending.length === 0 && this.dbOps.length === 0) return;
    durable ||= this.pendingDurable;
    if (!durable && this.pending.length < MAX_DEFERRED) return;
    const recs = this.pending;
    const dbOps = this.dbOps;
    this.pending = [];
    this.dbOps = [];
    this.pendingDurable = false;
    if (dbOps.length > 0) await rawBatch(this.db, dbOps, true);
    // Lay the records out: into the active segment while they fit (keeping room for a seal),
    // then seal it and continue in the prepared next one.
    const writes: { seg: Segment; off: number; bufs: Uint8Array[]; bytes: number }[] = [];
    let cur = { seg: this.active(), off: this.writeOff, bufs: [] as Uint8Array[], bytes: 0 };
    const sealRoom = REC_HEADER;
    for (const r of recs) {
      const len = r.header.length + r.payload.length;
      if (this.writeOff + len + sealRoom > cur.seg.size) {
        let nextSeg = await (this.next as Promise<Segment>);
        const need = HEADER_BYTES + len + sealRoom;
        if (nextSeg.size < need) {
          // A record bigger than the (still small) prepared segment: it goes unused (it holds
          // nothing) and a big enough one is made now.
          closeSync(nextSeg.fd);
          await unlink(nextSeg.path);
          nextSeg = await this.prepare(this.nextSeq++, Math.max(need, Math.min(this.segBytes, this.lastSize * 4)));
        }
        const seal = header(RecordKind.Seal, 0, nextSeg.seq, 0, 0);
        seal.writeUInt32BE(recordCrc(cur.seg.seq, seal, NO_DATA), 4);
        cur.bufs.push(seal);
        cur.bytes += seal.length;
        writes.push(cur);
        this.segs.push(nextSeg);
        this.writeOff = HEADER_BYTES;
        cur = { seg: nextSeg, off: HEADER_BYTES, bufs: [], bytes: 0 };
        this.prepareNext();
      }
      r.header.writeUInt32BE(recordCrc(cur.seg.seq, r.header, r.payload), 4);
      r.loc.seq = cur.seg.seq;
      r.loc.off = this.writeOff;
      r.loc.len = len;
      cur.bufs.push(r.header, r.payload);
      cur.bytes += len;
      this.writeOff += len;
      if (r.kind === RecordKind.Entry || r.kind === RecordKind.ConfChange) cur.seg.maxIndex.set(r.group, Math.max(cur.seg.maxIndex.get(r.group) ?? 0, r.index));
      else if (r.kind === RecordKind.HardState) {
        for (const s of this.segs) s.hardStates.delete(r.group);
        cur.seg.hardStates.add(r.group);
      } else if (r.kind === RecordKind.Drop) for (const s of this.segs) s.hardStates.delete(r.group);
    }
    if (cur.bufs.length > 0) writes.push(cur);
    const writeOut = async (w: (typeof writes)[number]) => {
      let done = 0;
      let bufs = w.bufs;
      // A small write goes straight into the page cache from this thread: handing it to the
      // thread pool costs two cross-thread wake-ups, measured at 0.3-0.5 ms per sync on a
      // busy 2-core host against ~20 us for the write itself. Large ones stay asynchronous
      // so the event loop never stalls on them.
      const direct = w.bytes <= SYNC_WRITE_BYTES;
      // writev may write less than asked; continue from where it stopped.
      while (done < w.bytes) {
        done += direct ? writevSync(w.seg.fd, bufs as NodeJS.ArrayBufferView[], w.off + done) : await writevAt(w.seg.fd, bufs, w.off + done);
        if (done < w.bytes) bufs = restAfter(w.bufs, done);
      }
    }
    // A segment that ends in a seal is made durable before anything is written into the next
    // one (a roll, once per segment): so a segment holding any valid record always follows a
    // durably sealed one, and recovery can tell damage (an unsealed segment followed by
    // records) from a torn tail (docs/node-store.md, "Recovery").
    for (const w of writes.slice(0, -1)) {
      this.unsynced.add(w.seg);
      await writeOut(w);
      await Promise.all([...this.unsynced].map((seg) => datasync(seg.fd)));
      this.unsynced.clear();
    }
    const last = writes[writes.length - 1];
    if (last) {
      this.unsynced.add(last.seg);
      await writeOut(last);
    }
    if (durable) {
      // Every segment written since the last fdatasync, not only this batch's: an earlier
      // unsynced write (deferred records, a seal) must not be lost under a durable later one.
      const dirty = [...this.unsynced];
      this.unsynced.clear();
      const t0 = performance.now();
      await Promise.all(dirty.map((seg) => datasync(seg.fd)));
      this.durableSeq = this.active().seq;
      this.durableOff = this.writeOff;
      noteLogWrite(writes.reduce((n, w) => n + w.bytes, 0), (performance.now() - t0) / 1000);
    } else noteLogWrite(writes.reduce((n, w) => n + w.bytes, 0), undefined);
    if (durable) this.syncCount++;
    this.opsWritten += recs.length;
    await this.collect();
  }

  /** Frees segments from the oldest: a closed segment goes once every group with entries in
   * it has compacted past them (or was removed), after the hard states it holds as a group's
   * latest were written again elsewhere. A segment pinned only by groups with a small live
   * log (the master group, a quiet region) is freed by copying their live entries forward. */
  private async collect(): Promise<void> {
    if (this.migrating) return;
    while (this.segs.length > 1) {
      const old = this.segs[0] as Segment;
      const pinning: number[] = [];
      for (const [g, maxIndex] of old.maxIndex) {
        const s = this.groups.get(g);
        if (s === undefined) {
          if (this.recovered.has(g)) pinning.push(g); // not opened (yet): keep it
          continue;
        }
        if (maxIndex >= s.firstIndex()) pinning.push(g);
      }
      if (pinning.length > 0) {
        if (this.segs.length - 1 <= RELOCATE_AFTER) return;
        // Sizing the pinning groups' logs walks them: once per change of the segment list,
        // not after every sync.
        const key = `${old.seq}:${this.segs.length}`;
        if (key === this.relocateChecked) return;
        this.relocateChecked = key;
        let movable = true;
        for (const g of pinning) {
          const s = this.groups.get(g);
          if (s === undefined || s.liveBytes() > this.segBytes / 8) movable = false;
        }
        if (!movable) return;
        // The rewrite supersedes every earlier record of these groups (it is written after all
        // of them and covers their whole live log), so no current segment needs them now.
        for (const g of pinning) {
          (this.groups.get(g) as SegmentGroupStorage).rewriteLive();
          for (const s of this.segs) s.maxIndex.delete(g);
        }
        return; // written by the next sync; freed by the collect after it
      }
      if (old.hardStates.size > 0) {
        for (const g of old.hardStates) {
          const hs = this.lastHs.get(g);
          if (hs !== undefined) this.stageHardState(g, hs);
        }
        old.hardStates.clear();
        return;
      }
      if (this.onRetired !== null) {
        // Kept for the values that pointers name in it: marked first (synced), so that
        // recovery never takes it for part of the log again.
        await rawBatch(this.db, [{ type: 'put', key: this.valueMarkerKey(old.seq), value: NO_DATA as Buffer }], true);
        // The same descriptor: a read of a value in flight on it stays valid.
        this.segs.shift();
        this.valueSegs.set(old.seq, { seq: old.seq, path: old.path, fd: old.fd, readers: 0, doomed: false });
        this.onRetired(old.seq);
        continue;
      }
      this.segs.shift();
      closeSync(old.fd);
      await unlink(old.path);
    }
  }

  // ---- values (docs/node-store.md, "Steps 2-3")

  /** Whether a record at `loc` is durable in this log (a pointer may name it). */
  isDurable(loc: Loc): boolean {
    if (loc.seq === 0) return false;
    return loc.seq < this.durableSeq || (loc.seq === this.durableSeq && loc.off + loc.len <= this.durableOff);
  }

  /** The open file of segment `seq`, log or value segment, or undefined if it is gone. */
  private fileOf(seq: number): { fd: number; value?: ValueSegment } | undefined {
    const v = this.valueSegs.get(seq);
    if (v !== undefined) return v.doomed ? undefined : { fd: v.fd, value: v };
    const s = this.segs.find((x) => x.seq === seq);
    return s === undefined ? undefined : { fd: s.fd };
  }

  /** Reads `len` bytes at `off` of segment `seq` synchronously (a point read of a pointer
   * value). Throws if the segment is gone or the read is short; the caller checks the crc. */
  readValue(seq: number, off: number, len: number): Buffer {
    const f = this.fileOf(seq);
    if (f === undefined) throw new SegmentCorruptError(`value in segment ${seq} at ${off}: the segment is gone`);
    const buf = Buffer.allocUnsafe(len);
    let got = 0;
    while (got < len) {
      const n = readSync(f.fd, buf, got, len - got, off + got);
      if (n === 0) break;
      got += n;
    }
    if (got !== len) throw new SegmentCorruptError(`value in segment ${seq} at ${off} (short read)`);
    return buf;
  }

  /** readValue through the thread pool (reads of several values run in parallel). */
  async readValueAsync(seq: number, off: number, len: number): Promise<Buffer> {
    const f = this.fileOf(seq);
    if (f === undefined) throw new SegmentCorruptError(`value in segment ${seq} at ${off}: the segment is gone`);
    if (f.value) f.value.readers++;
    try {
      const buf = Buffer.allocUnsafe(len);
      const n = len === 0 ? 0 : await readAt(f.fd, buf, off);
      if (n !== len) throw new SegmentCorruptError(`value in segment ${seq} at ${off} (short read)`);
      return buf;
    } finally {
      if (f.value) {
        f.value.readers--;
        if (f.value.doomed && f.value.readers === 0) this.dropValueFile(f.value);
      }
    }
  }

  /** The size of value segment `seq` in bytes (0 if it is gone). */
  valueSegmentBytes(seq: number): number {
    const v = this.valueSegs.get(seq);
    return v === undefined ? 0 : fstatSync(v.fd).size;
  }

  /** The value segments, oldest first. */
  valueSegments(): number[] {
    return [...this.valueSegs.keys()].sort((a, b) => a - b);
  }

  /** Deletes value segment `seq`: first `ops` (the deletion of its reverse-index records) and
   * the removal of its marker, in ONE synced LevelDB batch (which makes every earlier write
   * durable too), then the file. The caller has made sure that no pointer names it. */
  async deleteValueSegment(seq: number, ops: BatchOp[]): Promise<void> {
    const v = this.valueSegs.get(seq);
    if (v === undefined) return;
    await rawBatch(this.db, [...ops, { type: 'del', key: this.valueMarkerKey(seq) }], true);
    this.valueSegs.delete(seq);
    v.doomed = true;
    if (v.readers === 0) this.dropValueFile(v);
  }

  private dropValueFile(v: ValueSegment): void {
    closeSync(v.fd);
    unlink(v.path).catch(() => undefined); // nothing names it any more: a failure only leaks space
  }

  /** Bytes on disk: the database's (shared data included, as LevelRaftStore counts it) plus
   * the segment files. */
  diskBytes(): Promise<number> {
    return diskBytes(this.db, [this.dir]);
  }

  /** Segments on disk (for tests and metrics). */
  segmentCount(): number {
    return this.segs.length;
  }

  /** Closes the segment files (and the database if this store opened it). Unsynced writes
   * are dropped, as a crash would. */
  async close(): Promise<void> {
    await this.serial.run(async () => {
      this.closed = true;
      this.pending = [];
      this.dbOps = [];
      const next = await this.next?.catch(() => undefined);
      if (next !== undefined) closeSync(next.fd);
      for (const s of this.segs) closeSync(s.fd);
      this.segs = [];
      for (const v of this.valueSegs.values()) if (v.readers === 0) closeSync(v.fd);
      this.valueSegs.clear();
    });
    if (this.ownsDb) await this.db.close();
  }

  /** For tests: the path of the active segment and the end of its records. */
  activeSegment(): { path: string; end: number } {
    return { path: this.active().path, end: this.writeOff };
  }

  /** For tests: a prefix of `payload.length` records... (kept for debugging). */
  static readonly recordHeaderBytes = REC_HEADER;
  static readonly segmentHeaderBytes = HEADER_BYTES;
}

function restAfter(bufs: Uint8Array[], skip: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (const b of bufs) {
    if (skip >= b.length) {
      skip -= b.length;
      continue;
    }
    out.push(skip > 0 ? b.subarray(skip) : b);
    skip = 0;
  }
  return out;
}

// fd-based async I/O (the segment files stay open; no open/close per write).
function writevAt(fd: number, bufs: Uint8Array[], pos: number): Promise<number> {
  return new Promise((res, rej) => writev(fd, bufs as NodeJS.ArrayBufferView[], pos, (err, n) => (err ? rej(err) : res(n))));
}
function writeAt(fd: number, buf: Buffer, len: number, pos: number): Promise<number> {
  return new Promise((res, rej) => write(fd, buf, 0, len, pos, (err, n) => (err ? rej(err) : res(n))));
}
function datasync(fd: number): Promise<void> {
  return new Promise((res, rej) => fdatasync(fd, (err) => (err ? rej(err) : res())));
}
function readAt(fd: number, buf: Buffer, pos: number): Promise<number> {
  return new Promise((res, rej) => read(fd, buf, 0, buf.length, pos, (err, n) => (err ? rej(err) : res(n))));
}

/** Writes zeros over [from, to) of an open segment and syncs it. */
async function zeroRange(fd: number, from: number, to: number): Promise<void> {
  if (to <= from) return;
  const zeros = Buffer.alloc(Math.min(4 << 20, to - from));
  for (let off = from; off < to; off += zeros.length) await writeAt(fd, zeros, Math.min(zeros.length, to - off), off);
  await datasync(fd);
}

/** The end of the non-zero bytes of buf at or after `from` (from itself if there are none). */
/** Whether a segment's first record is a valid one. */
function hasRecord(seq: number, buf: Buffer): boolean {
  const off = HEADER_BYTES;
  if (off + REC_HEADER > buf.length) return false;
  const len = buf.readUInt32BE(off);
  if (len < REC_HEADER - 8 || off + 8 + len > buf.length) return false;
  return recordCrc(seq, buf.subarray(off, off + REC_HEADER), buf.subarray(off + REC_HEADER, off + 8 + len)) === buf.readUInt32BE(off + 4);
}

function nonZeroEnd(buf: Buffer, from: number): number {
  // Whole chunks of zeros are skipped with a native compare (a byte loop over a mostly empty
  // 64 MiB segment took ~0.5 s of a restart); the last chunk with data is searched bytewise.
  let end = buf.length;
  while (end - from >= ZERO_CHUNK.length && buf.compare(ZERO_CHUNK, 0, ZERO_CHUNK.length, end - ZERO_CHUNK.length, end) === 0) end -= ZERO_CHUNK.length;
  let last = end - 1;
  while (last >= from && buf[last] === 0) last--;
  return Math.max(from, last + 1);
}

const ZERO_CHUNK = Buffer.alloc(64 * 1024);

/** Makes a rename or unlink in `dir` durable. In the thread pool: a directory's fsync took
 * ~10 ms here, and the event loop (the Raft loop's appends and acknowledgements) must not wait
 * on a segment being prepared ahead. */
async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** One group's storage over the segment store: MemoryStorage for reads, every write also
 * staged as a record. Same behaviour as DurableGroupStorage (durable.ts). */
export class SegmentGroupStorage extends MemoryStorage {
  private evictedUpTo = 0;
  /** Where each entry object was written (entries are immutable objects shared with the core). */
  private readonly locs = new WeakMap<Entry, Loc>();

  constructor(private readonly store: SegmentRaftStore, readonly group: number) {
    super();
  }

  evict(index: number): void {
    const last = Math.min(index, this.lastIndex());
    evictRange(this.ents, this.firstIndex() - 1, this.evictedUpTo + 1, last, (e) => {
      const loc = this.locs.get(e);
      if (loc === undefined || loc.seq === 0) return undefined; // not written yet: keep it
      const slim: SegEvictedEntry = { term: e.term, index: e.index, type: e.type, data: NO_DATA, evictedBytes: e.data.length, loc };
      return slim;
    });
    this.evictedUpTo = Math.max(this.evictedUpTo, last);
  }

  override entries(lo: number, hi: number, maxBytes: number): Entry[] {
    return sliceEntries<SegEvictedEntry>(this.ents, this.firstIndex() - 1, this.lastIndex(), lo, hi, maxBytes, (i, e) => {
      const loc = readLoc(e);
      const read = this.store.readEntry(this.group, i, loc);
      this.locs.set(read, loc);
      return read;
    });
  }

  /** Where entry `e` (an object this storage handed out or was given) is durably written, if
   * it is: a pointer value may then name its bytes. */
  locOf(e: Entry): Loc | undefined {
    const loc = this.locs.get(e);
    return loc !== undefined && this.store.isDurable(loc) ? loc : undefined;
  }

  /** Restores the state found at open (no writes are staged). */
  load(hs: HardState | undefined, snap: Snapshot | undefined, entries: readonly Entry[], locs: readonly Loc[]): void {
    if (snap !== undefined) super.applySnapshot(snap);
    entries.forEach((e, i) => this.locs.set(e, locs[i] as Loc));
    const first = this.firstIndex();
    const live = entries.filter((e) => e.index >= first);
    if (live.length > 0) {
      if ((live[0] as Entry).index !== first) throw new Error(`raft: group ${this.group} log starts at ${(live[0] as Entry).index}, want ${first}`);
      super.append(live);
    }
    if (hs !== undefined) super.setHardState(hs);
    this.evictedUpTo = 0;
  }

  /** Bytes of the live log (firstIndex..lastIndex). */
  liveBytes(): number {
    let n = 0;
    for (let i = 1; i < this.ents.length; i++) {
      const e = this.ents[i] as Entry | SegEvictedEntry;
      n += 'evictedBytes' in e ? e.evictedBytes : e.data.length;
    }
    return n;
  }

  /** Writes the whole live log again (in index order, so the conflict rule rebuilds the same
   * log at recovery), to free the old segments it pins. */
  rewriteLive(): void {
    for (let i = 1; i < this.ents.length; i++) {
      const e = this.ents[i] as Entry | SegEvictedEntry;
      const full = 'evictedBytes' in e ? this.store.readEntry(this.group, e.index, readLoc(e)) : e;
      const loc = this.store.stageEntry(this.group, full);
      if ('evictedBytes' in e) {
        // Until the new record is written, reads go to the old one (its segment stays until then).
        const moved: SegEvictedEntry = { ...e, loc: readLoc(e), moved: loc };
        this.ents[i] = moved;
      }
      else this.locs.set(e, loc);
    }
  }

  override append(entries: readonly Entry[]): void {
    if (entries.length === 0) return;
    this.evictedUpTo = Math.min(this.evictedUpTo, (entries[0] as Entry).index - 1);
    super.append(entries);
    const first = this.firstIndex();
    // A shorter replacement truncates on its own: at recovery, an entry at an index the group
    // already has cuts the log there (the conflict rule), so no deletions are written.
    for (const e of entries) {
      if (e.index < first) continue;
      this.locs.set(e, this.store.stageEntry(this.group, e));
    }
  }

  override setHardState(hs: HardState): void {
    const old = this.hardState;
    super.setHardState(hs);
    // A hard state that only moved its commit index needs no fsync of its own (its loss in a
    // crash is harmless: the commit index is learnt again from the leader).
    this.store.stageHardState(this.group, hs, hs.term !== old.term || hs.vote !== old.vote);
  }

  override applySnapshot(snap: Snapshot): void {
    if (snap.meta.index < this.snapshot().meta.index) return;
    this.evictedUpTo = 0;
    super.applySnapshot(snap);
    this.store.stageSnapshot(this.group, snap);
    this.store.stageReset(this.group, snap);
  }

  override createSnapshot(index: number, confState: ConfState, data: Uint8Array): Snapshot {
    const before = this.snapshot();
    const snap = super.createSnapshot(index, confState, data);
    if (snap !== before) this.store.stageSnapshot(this.group, snap);
    return snap;
  }

  // compact(): nothing to write. The segments holding the compacted entries are freed by the
  // store once no group needs them (SegmentRaftStore.collect).
}
