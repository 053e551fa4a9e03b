// The in-memory log of a durable group storage whose applied payloads may be dropped from
// memory (evicted) and read back from disk when a lagging follower needs them. Shared by the
// LevelDB store (durable.ts) and the segment store (segments.ts), which differ only in how an
// evicted entry finds its payload again.
import { CompactedError } from './storage';
import { entryBytes, type Entry } from './types';

/** Payloads smaller than this stay in memory (evicting them saves nothing). */
export const EVICT_MIN_BYTES = 256;
export const NO_DATA = new Uint8Array(0);

/** An entry whose payload was dropped from memory; `evictedBytes` is the payload's size. */
export interface EvictedEntry extends Entry {
  readonly evictedBytes: number;
}

/**
 * Drops the payloads of ents[from - offset .. last - offset] (log indexes from..last) that are
 * big enough and not yet dropped: `slim` gives the stand-in, or undefined to keep an entry
 * (not written yet).
 */
export function evictRange(ents: Entry[], offset: number, from: number, last: number, slim: (e: Entry) => EvictedEntry | undefined): void {
  for (let i = Math.max(from, offset + 1); i <= last; i++) {
    const e = ents[i - offset] as Entry;
    if (e.data.length < EVICT_MIN_BYTES || 'evictedBytes' in e) continue;
    const s = slim(e);
    if (s !== undefined) ents[i - offset] = s;
  }
}

/** Entries lo..hi-1 of the log (first index offset + 1, last index `last`): at least one, then
 * as many as fit in maxBytes; an evicted one is read back by `readBack`. */
export function sliceEntries<E extends EvictedEntry>(ents: readonly Entry[], offset: number, last: number, lo: number, hi: number, maxBytes: number, readBack: (index: number, e: E) => Entry): Entry[] {
  if (lo <= offset) throw new CompactedError(lo);
  if (hi > last + 1) throw new Error(`raft: entries hi ${hi} beyond last ${last}`);
  const out: Entry[] = [];
  let bytes = 0;
  for (let i = lo; i < hi; i++) {
    const e = ents[i - offset] as Entry | E;
    const evicted = 'evictedBytes' in e;
    bytes += evicted ? e.evictedBytes + 24 : entryBytes(e);
    if (out.length > 0 && bytes > maxBytes) break;
    out.push(evicted ? readBack(i, e) : e);
  }
  return out;
}
