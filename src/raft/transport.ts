// Helpers for a host that drives many groups: messages carry no group id, so the host frames
// them with it; and it sends the messages of all its groups to one peer as one frame per loop
// iteration, instead of one send per group and message.

import type { Message, NodeId, Ready } from './types';

export interface GroupMessage {
  readonly group: number;
  readonly message: Message;
}

/** Collects the messages of many groups' Readys by destination node, in order. The result is
 * bounded by the Readys themselves (each is bounded by the flow-control windows). */
export function batchByPeer(readys: Iterable<{ readonly group: number; readonly ready: Ready }>): Map<NodeId, GroupMessage[]> {
  const out = new Map<NodeId, GroupMessage[]>();
  for (const { group, ready } of readys) {
    for (const message of ready.messages) {
      let list = out.get(message.to);
      if (list === undefined) {
        list = [];
        out.set(message.to, list);
      }
      list.push({ group, message });
    }
  }
  return out;
}
