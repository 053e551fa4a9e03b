// Binary encoding of Raft state for the durable store (durable.ts). Keys sort so that one
// group's entries are one contiguous range in index order; values end with a crc32c so that a
// torn or corrupted record is detected on load instead of being replayed.
//
// | key (after the store's prefix)           | value                                          |
// | ---------------------------------------- | ---------------------------------------------- |
// | group u64 ++ 0x01                        | hard state: term u64, vote u64, commit u64     |
// | group u64 ++ 0x02                        | snapshot: index, term, voters, learners, data  |
// | group u64 ++ 0x03 ++ index u64           | entry: term u64, type u8, data                 |
//
// Integers are unsigned big-endian, so byte order is numeric order. Every value is followed by
// crc32c (u32) of the bytes before it.

import { crc32c } from '@node-rs/crc32';
import { EntryType, type Entry, type HardState, type Snapshot } from './types';

export const KeyKind = { HardState: 0x01, Snapshot: 0x02, Entry: 0x03 } as const;
export type KeyKind = (typeof KeyKind)[keyof typeof KeyKind];

export class CorruptRaftRecordError extends Error {
  readonly code = 'RAFT_CORRUPT_RECORD';
  constructor(what: string) {
    super(`raft: corrupt ${what} record`);
  }
}

function writeU64(buf: Buffer, n: number, off: number): void {
  buf.writeUInt32BE(Math.floor(n / 0x1_0000_0000), off);
  buf.writeUInt32BE(n >>> 0, off + 4);
}

function readU64(buf: Buffer, off: number): number {
  return buf.readUInt32BE(off) * 0x1_0000_0000 + buf.readUInt32BE(off + 4);
}

export function groupKey(prefix: Buffer, group: number, kind: KeyKind, index?: number): Buffer {
  const key = Buffer.allocUnsafe(prefix.length + 9 + (index === undefined ? 0 : 8));
  prefix.copy(key, 0);
  writeU64(key, group, prefix.length);
  key[prefix.length + 8] = kind;
  if (index !== undefined) writeU64(key, index, prefix.length + 9);
  return key;
}

export function entryIndexFromKey(prefix: Buffer, key: Buffer): number {
  return readU64(key, prefix.length + 9);
}

function seal(body: Buffer): Buffer {
  const out = Buffer.allocUnsafe(body.length + 4);
  body.copy(out, 0);
  out.writeUInt32BE(crc32c(body), body.length);
  return out;
}

function unseal(value: Uint8Array, what: string): Buffer {
  const v = Buffer.from(value.buffer, value.byteOffset, value.length);
  if (v.length < 4) throw new CorruptRaftRecordError(what);
  const body = v.subarray(0, v.length - 4);
  if (crc32c(body) !== v.readUInt32BE(v.length - 4)) throw new CorruptRaftRecordError(what);
  return body;
}

export function encodeEntry(e: Entry): Buffer {
  const body = Buffer.allocUnsafe(9 + e.data.length);
  writeU64(body, e.term, 0);
  body[8] = e.type === EntryType.ConfChange ? 1 : 0;
  body.set(e.data, 9);
  return seal(body);
}

export function decodeEntry(index: number, value: Uint8Array): Entry {
  const b = unseal(value, `entry ${index}`);
  if (b.length < 9) throw new CorruptRaftRecordError(`entry ${index}`);
  return { index, term: readU64(b, 0), type: b[8] === 1 ? EntryType.ConfChange : EntryType.Normal, data: b.subarray(9) };
}

export function encodeHardState(hs: HardState): Buffer {
  const body = Buffer.allocUnsafe(24);
  writeU64(body, hs.term, 0);
  writeU64(body, hs.vote, 8);
  writeU64(body, hs.commit, 16);
  return seal(body);
}

export function decodeHardState(value: Uint8Array): HardState {
  const b = unseal(value, 'hard state');
  if (b.length !== 24) throw new CorruptRaftRecordError('hard state');
  return { term: readU64(b, 0), vote: readU64(b, 8), commit: readU64(b, 16) };
}

export function encodeSnapshot(s: Snapshot): Buffer {
  const { voters, learners } = s.meta.confState;
  const body = Buffer.allocUnsafe(16 + 8 + 8 * (voters.length + learners.length) + s.data.length);
  writeU64(body, s.meta.index, 0);
  writeU64(body, s.meta.term, 8);
  body.writeUInt32BE(voters.length, 16);
  body.writeUInt32BE(learners.length, 20);
  let off = 24;
  for (const id of [...voters, ...learners]) {
    writeU64(body, id, off);
    off += 8;
  }
  body.set(s.data, off);
  return seal(body);
}

export function decodeSnapshot(value: Uint8Array): Snapshot {
  const b = unseal(value, 'snapshot');
  if (b.length < 24) throw new CorruptRaftRecordError('snapshot');
  const nv = b.readUInt32BE(16);
  const nl = b.readUInt32BE(20);
  if (b.length < 24 + 8 * (nv + nl)) throw new CorruptRaftRecordError('snapshot');
  const ids: number[] = [];
  for (let i = 0; i < nv + nl; i++) ids.push(readU64(b, 24 + 8 * i));
  return {
    meta: { index: readU64(b, 0), term: readU64(b, 8), confState: { voters: ids.slice(0, nv), learners: ids.slice(nv) } },
    data: b.subarray(24 + 8 * (nv + nl)),
  };
}
