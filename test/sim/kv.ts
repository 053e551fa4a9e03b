// The replicated state machine of the simulation: a small key-value map. It also keeps a hash
// chain over every entry it applies, so two replicas that applied different sequences (or a
// snapshot of a different state) are told apart cheaply at any index.

import { crc32c } from '@node-rs/crc32';
import type { Entry } from '../../src/raft';

export interface PutCommand {
  readonly key: string;
  readonly value: string;
}

export function encodePut(cmd: PutCommand): Uint8Array {
  return Buffer.from(`${cmd.key}=${cmd.value}`);
}

export function decodePut(data: Uint8Array): PutCommand | undefined {
  if (data.length === 0) return undefined; // a leader's no-op
  const text = Buffer.from(data.buffer, data.byteOffset, data.length).toString();
  const eq = text.indexOf('=');
  return { key: text.slice(0, eq), value: text.slice(eq + 1) };
}

/** Identity of an entry for the checkers: its term and a hash of its content. */
export function entryId(e: Entry): string {
  return `${e.term}:${e.type}:${crc32c(Buffer.from(e.data.buffer, e.data.byteOffset, e.data.length))}`;
}

export class KvStateMachine {
  readonly map = new Map<string, string>();
  appliedIndex = 0;
  chain = 0;

  apply(e: Entry): void {
    if (e.index !== this.appliedIndex + 1) {
      throw new Error(`sim: state machine applies ${e.index} after ${this.appliedIndex}`);
    }
    if (e.type === 'normal') {
      const cmd = decodePut(e.data);
      if (cmd !== undefined) this.map.set(cmd.key, cmd.value);
    }
    this.chain = crc32c(Buffer.from(`${e.index}/${entryId(e)}`), this.chain);
    this.appliedIndex = e.index;
  }

  snapshot(): Uint8Array {
    return Buffer.from(JSON.stringify({ i: this.appliedIndex, c: this.chain, m: [...this.map] }));
  }

  static restore(data: Uint8Array, index: number): KvStateMachine {
    const sm = new KvStateMachine();
    sm.appliedIndex = index;
    if (data.length === 0) return sm; // the bootstrap snapshot: empty state
    const o = JSON.parse(Buffer.from(data.buffer, data.byteOffset, data.length).toString()) as {
      i: number;
      c: number;
      m: Array<[string, string]>;
    };
    if (o.i !== index) throw new Error(`sim: snapshot data at ${o.i} labelled ${index}`);
    sm.chain = o.c;
    for (const [k, v] of o.m) sm.map.set(k, v);
    return sm;
  }
}
