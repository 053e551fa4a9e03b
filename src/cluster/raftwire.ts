// Raft messages to and from their protobuf form (proto/polyfs/v1/raft.proto). Field for field;
// a message from the wire is checked for the fields its type needs, so a malformed one is
// dropped here instead of reaching the core.
import type { Entry, Message, SnapshotMeta } from '../raft'
import type { RaftEntry, RaftMessage, RaftMessageType, SnapshotMeta as WireMeta } from '../rpc'

const TO_WIRE = {
  vote: 'RAFT_VOTE',
  voteResp: 'RAFT_VOTE_RESP',
  preVote: 'RAFT_PRE_VOTE',
  preVoteResp: 'RAFT_PRE_VOTE_RESP',
  append: 'RAFT_APPEND',
  appendResp: 'RAFT_APPEND_RESP',
  heartbeat: 'RAFT_HEARTBEAT',
  heartbeatResp: 'RAFT_HEARTBEAT_RESP',
  snapshot: 'RAFT_SNAPSHOT',
  snapshotResp: 'RAFT_SNAPSHOT_RESP',
  timeoutNow: 'RAFT_TIMEOUT_NOW',
  transferLeader: 'RAFT_TRANSFER_LEADER',
  readIndex: 'RAFT_READ_INDEX',
  readIndexResp: 'RAFT_READ_INDEX_RESP',
} as const satisfies Record<Message['type'], RaftMessageType>

function entryToWire(e: Entry): RaftEntry {
  return { term: e.term, index: e.index, type: e.type === 'confChange' ? 'ENTRY_CONF_CHANGE' : 'ENTRY_NORMAL', data: Buffer.from(e.data.buffer, e.data.byteOffset, e.data.byteLength) }
}

function metaToWire(m: SnapshotMeta): WireMeta {
  return { index: m.index, term: m.term, confState: { voters: [...m.confState.voters], learners: [...m.confState.learners] } }
}

/** The wire form of a core message. Absent fields are left out (they read as zero). */
export function messageToWire(m: Message): RaftMessage {
  const w: RaftMessage = { type: TO_WIRE[m.type], from: m.from, to: m.to, term: m.term } as RaftMessage
  switch (m.type) {
    case 'vote':
    case 'preVote':
      return { ...w, lastLogIndex: m.lastLogIndex, lastLogTerm: m.lastLogTerm, force: m.force }
    case 'voteResp':
    case 'preVoteResp':
      return { ...w, reject: m.reject }
    case 'append':
      return { ...w, prevIndex: m.prevIndex, prevTerm: m.prevTerm, entries: m.entries.map(entryToWire), commit: m.commit }
    case 'appendResp':
      return { ...w, index: m.index, reject: m.reject, rejectHint: m.rejectHint, logTerm: m.logTerm, commit: m.commit }
    case 'heartbeat':
      return { ...w, commit: m.commit, readSeq: m.readSeq, sentTick: m.sentTick, quiesce: m.quiesce }
    case 'heartbeatResp':
      return { ...w, readSeq: m.readSeq, sentTick: m.sentTick, commit: m.commit, lastIndex: m.lastIndex }
    case 'snapshot':
      return { ...w, meta: metaToWire(m.meta), offset: m.offset, totalBytes: m.totalBytes, data: Buffer.from(m.data.buffer, m.data.byteOffset, m.data.byteLength), done: m.done }
    case 'snapshotResp':
      return { ...w, snapshotIndex: m.snapshotIndex, nextOffset: m.nextOffset }
    case 'timeoutNow':
      return w
    case 'transferLeader':
      return { ...w, transferee: m.transferee }
    case 'readIndex':
      return { ...w, ctx: m.ctx }
    case 'readIndexResp':
      return { ...w, ctx: m.ctx, index: m.index }
  }
}

const n = (x: number | undefined): number => x ?? 0
const b = (x: boolean | undefined): boolean => x ?? false

/** The core message for a wire message, or undefined when it is malformed (unknown type,
 * snapshot without meta, bad entry type). */
export function messageFromWire(w: RaftMessage): Message | undefined {
  const base = { from: n(w.from), to: n(w.to), term: n(w.term) }
  if (base.from === 0 || base.to === 0) return undefined
  switch (w.type) {
    case 'RAFT_VOTE':
    case 'RAFT_PRE_VOTE':
      return { ...base, type: w.type === 'RAFT_VOTE' ? 'vote' : 'preVote', lastLogIndex: n(w.lastLogIndex), lastLogTerm: n(w.lastLogTerm), force: b(w.force) }
    case 'RAFT_VOTE_RESP':
    case 'RAFT_PRE_VOTE_RESP':
      return { ...base, type: w.type === 'RAFT_VOTE_RESP' ? 'voteResp' : 'preVoteResp', reject: b(w.reject) }
    case 'RAFT_APPEND': {
      const entries: Entry[] = []
      for (const e of w.entries ?? []) {
        if (e.type !== 'ENTRY_NORMAL' && e.type !== 'ENTRY_CONF_CHANGE') return undefined
        entries.push({ term: n(e.term), index: n(e.index), type: e.type === 'ENTRY_CONF_CHANGE' ? 'confChange' : 'normal', data: e.data ?? Buffer.alloc(0) })
      }
      return { ...base, type: 'append', prevIndex: n(w.prevIndex), prevTerm: n(w.prevTerm), entries, commit: n(w.commit) }
    }
    case 'RAFT_APPEND_RESP':
      return { ...base, type: 'appendResp', index: n(w.index), reject: b(w.reject), rejectHint: n(w.rejectHint), logTerm: n(w.logTerm), commit: n(w.commit) }
    case 'RAFT_HEARTBEAT':
      return { ...base, type: 'heartbeat', commit: n(w.commit), readSeq: n(w.readSeq), sentTick: n(w.sentTick), quiesce: b(w.quiesce) }
    case 'RAFT_HEARTBEAT_RESP':
      return { ...base, type: 'heartbeatResp', readSeq: n(w.readSeq), sentTick: n(w.sentTick), commit: n(w.commit), lastIndex: n(w.lastIndex) }
    case 'RAFT_SNAPSHOT': {
      const m = w.meta
      if (!m || !m.confState) return undefined
      const meta = { index: n(m.index), term: n(m.term), confState: { voters: [...(m.confState.voters ?? [])], learners: [...(m.confState.learners ?? [])] } }
      return { ...base, type: 'snapshot', meta, offset: n(w.offset), totalBytes: n(w.totalBytes), data: w.data ?? Buffer.alloc(0), done: b(w.done) }
    }
    case 'RAFT_SNAPSHOT_RESP':
      return { ...base, type: 'snapshotResp', snapshotIndex: n(w.snapshotIndex), nextOffset: n(w.nextOffset) }
    case 'RAFT_TIMEOUT_NOW':
      return { ...base, type: 'timeoutNow' }
    case 'RAFT_TRANSFER_LEADER':
      return { ...base, type: 'transferLeader', transferee: n(w.transferee) }
    case 'RAFT_READ_INDEX':
      return { ...base, type: 'readIndex', ctx: w.ctx ?? '' }
    case 'RAFT_READ_INDEX_RESP':
      return { ...base, type: 'readIndexResp', ctx: w.ctx ?? '', index: n(w.index) }
    default:
      return undefined
  }
}
