// Membership changes, one server at a time. A change is an ordinary log entry of type
// ConfChange; every node applies it to its configuration when the host has applied the entry
// (advance), never earlier. Two rules make this safe (Ongaro's thesis section 4.1 and the
// raft-dev bug report of 2015): at most one change is pending at a time, and a new leader
// proposes none until an entry of its own term has been applied.

import { assertNever, type ConfState, type NodeId } from './types';

export const ConfChangeType = {
  AddVoter: 'addVoter',
  AddLearner: 'addLearner',
  RemoveNode: 'removeNode',
} as const;
export type ConfChangeType = (typeof ConfChangeType)[keyof typeof ConfChangeType];

export interface ConfChange {
  readonly type: ConfChangeType;
  readonly nodeId: NodeId;
}

const TYPE_CODES: readonly ConfChangeType[] = [
  ConfChangeType.AddVoter,
  ConfChangeType.AddLearner,
  ConfChangeType.RemoveNode,
];

/** Nine bytes: a type code, then the node id as a big-endian u64. */
export function encodeConfChange(cc: ConfChange): Uint8Array {
  const out = new Uint8Array(9);
  out[0] = TYPE_CODES.indexOf(cc.type);
  new DataView(out.buffer).setBigUint64(1, BigInt(cc.nodeId));
  return out;
}

export function decodeConfChange(data: Uint8Array): ConfChange {
  if (data.length !== 9) throw new Error(`raft: conf change of ${data.length} bytes, want 9`);
  const type = TYPE_CODES[data[0] as number];
  if (type === undefined) throw new Error(`raft: unknown conf change type ${data[0]}`);
  const nodeId = Number(new DataView(data.buffer, data.byteOffset, 9).getBigUint64(1));
  return { type, nodeId };
}

/** The configuration after applying `cc` to `cs`. Idempotent: re-applying changes nothing. */
export function applyToConfState(cs: ConfState, cc: ConfChange): ConfState {
  const voters = cs.voters.filter((id) => id !== cc.nodeId);
  const learners = cs.learners.filter((id) => id !== cc.nodeId);
  switch (cc.type) {
    case ConfChangeType.AddVoter:
      voters.push(cc.nodeId);
      break;
    case ConfChangeType.AddLearner:
      // Demoting a voter to learner is not supported: proposals of it are refused.
      if (cs.voters.includes(cc.nodeId)) return cs;
      learners.push(cc.nodeId);
      break;
    case ConfChangeType.RemoveNode:
      break;
    default:
      assertNever(cc.type);
  }
  voters.sort((a, b) => a - b);
  learners.sort((a, b) => a - b);
  return { voters, learners };
}
