// The data the Raft core consumes and produces. Everything here is plain data: no methods, no
// I/O, so a host can encode it for the wire or the disk however it likes (src/raft/codec.ts is
// the encoding the durable store uses).

export type NodeId = number;
/** 0 is never a node id: it means "nobody" in vote and leader fields. */
export const NONE: NodeId = 0;

export const EntryType = { Normal: 'normal', ConfChange: 'confChange' } as const;
export type EntryType = (typeof EntryType)[keyof typeof EntryType];

/** One log entry. `data` is opaque to Raft except for ConfChange entries (see confchange.ts). */
export interface Entry {
  readonly term: number;
  readonly index: number;
  readonly type: EntryType;
  readonly data: Uint8Array;
}

/** What must survive a crash besides the log: the current term, the vote cast in it, and the
 * commit index (persisting commit is not required for safety but saves re-deriving it). */
export interface HardState {
  readonly term: number;
  readonly vote: NodeId;
  readonly commit: number;
}

/** Membership as of some log index. One-server-at-a-time changes, so no joint configuration. */
export interface ConfState {
  readonly voters: readonly NodeId[];
  readonly learners: readonly NodeId[];
}

export interface SnapshotMeta {
  readonly index: number;
  readonly term: number;
  readonly confState: ConfState;
}

/** A state-machine image at `meta.index`; `data` comes from the host's state machine. */
export interface Snapshot {
  readonly meta: SnapshotMeta;
  readonly data: Uint8Array;
}

export const Role = {
  Follower: 'follower',
  PreCandidate: 'preCandidate',
  Candidate: 'candidate',
  Leader: 'leader',
} as const;
export type Role = (typeof Role)[keyof typeof Role];

// ---- Messages ---------------------------------------------------------------------------------
// Every message carries the sender's term. The union is closed: step() switches on `type` and
// ends in assertNever, so adding a message type is a compile error until every handler knows it.

interface MessageBase {
  readonly from: NodeId;
  readonly to: NodeId;
  readonly term: number;
}

/** Vote or pre-vote request. A pre-vote carries term+1 without the sender having moved to it. */
export interface VoteRequest extends MessageBase {
  readonly type: 'vote' | 'preVote';
  readonly lastLogIndex: number;
  readonly lastLogTerm: number;
  /** Set by leadership transfer: the receiver ignores its leader lease for this request. */
  readonly force: boolean;
}

export interface VoteResponse extends MessageBase {
  readonly type: 'voteResp' | 'preVoteResp';
  readonly reject: boolean;
}

export interface AppendRequest extends MessageBase {
  readonly type: 'append';
  readonly prevIndex: number;
  readonly prevTerm: number;
  readonly entries: readonly Entry[];
  readonly commit: number;
}

export interface AppendResponse extends MessageBase {
  readonly type: 'appendResp';
  /** On success the follower's last index matching the leader; on reject the rejected prevIndex. */
  readonly index: number;
  readonly reject: boolean;
  /** On reject: the largest index at which the follower's term is <= the leader's prevTerm,
   * and that term, so the leader can skip back a whole term per round trip. */
  readonly rejectHint: number;
  readonly logTerm: number;
  /** The follower's commit index after handling the request (lets an idle leader go quiet). */
  readonly commit: number;
}

export interface Heartbeat extends MessageBase {
  readonly type: 'heartbeat';
  readonly commit: number;
  /** Read-index round this heartbeat confirms leadership for (0 = none). */
  readonly readSeq: number;
  /** Leader's tick counter when sent; echoed back to date the leader lease. */
  readonly sentTick: number;
  /** The leader is going quiet: followers stop their election timers until woken. */
  readonly quiesce: boolean;
}

export interface HeartbeatResponse extends MessageBase {
  readonly type: 'heartbeatResp';
  readonly readSeq: number;
  readonly sentTick: number;
  readonly commit: number;
  /** The follower's last log index, so the leader can tell whether it is caught up. */
  readonly lastIndex: number;
}

/** One chunk of a snapshot. Chunks are sent one at a time and acknowledged (stop-and-wait), so
 * a follower buffers at most one snapshot; the last chunk has done=true and carries the meta. */
export interface SnapshotChunk extends MessageBase {
  readonly type: 'snapshot';
  readonly meta: SnapshotMeta;
  readonly offset: number;
  readonly totalBytes: number;
  readonly data: Uint8Array;
  readonly done: boolean;
}

export interface SnapshotChunkResponse extends MessageBase {
  readonly type: 'snapshotResp';
  readonly snapshotIndex: number;
  /** The next offset the follower expects (it has every byte before it). */
  readonly nextOffset: number;
}

/** Leader to transfer target: campaign now, ignoring pre-vote and leases. */
export interface TimeoutNow extends MessageBase {
  readonly type: 'timeoutNow';
}

/** Follower-forwarded leadership transfer request. */
export interface TransferLeader extends MessageBase {
  readonly type: 'transferLeader';
  readonly transferee: NodeId;
}

/** A follower's ReadIndex request forwarded to the leader, and the answer. */
export interface ReadIndexRequest extends MessageBase {
  readonly type: 'readIndex';
  readonly ctx: string;
}

export interface ReadIndexResponse extends MessageBase {
  readonly type: 'readIndexResp';
  readonly ctx: string;
  readonly index: number;
}

export type Message =
  | VoteRequest
  | VoteResponse
  | AppendRequest
  | AppendResponse
  | Heartbeat
  | HeartbeatResponse
  | SnapshotChunk
  | SnapshotChunkResponse
  | TimeoutNow
  | TransferLeader
  | ReadIndexRequest
  | ReadIndexResponse;

export type MessageType = Message['type'];

/** A linearizable read may be served once the local state machine has applied `index`. */
export interface ReadState {
  readonly index: number;
  readonly ctx: string;
}

/** Volatile state worth telling the host about (who leads, what this node is). */
export interface SoftState {
  readonly leader: NodeId;
  readonly role: Role;
}

/**
 * One batch of work for the host. The host MUST, in this order:
 *  1. persist `snapshot` (if any), `entries` and `hardState` (if any) durably (fsync);
 *  2. only then send `messages` (a vote or an append acknowledgement promises durable state);
 *  3. install `snapshot` into the state machine, then apply `committedEntries` in order;
 *  4. call advance(ready).
 * Entries in `committedEntries` may also appear in `entries`; step 1 before 3 makes that safe.
 */
export interface Ready {
  readonly softState: SoftState | undefined;
  readonly hardState: HardState | undefined;
  readonly entries: readonly Entry[];
  readonly snapshot: Snapshot | undefined;
  readonly messages: readonly Message[];
  readonly committedEntries: readonly Entry[];
  readonly readStates: readonly ReadState[];
}

export function assertNever(x: never): never {
  throw new Error(`raft: unexpected value ${JSON.stringify(x)}`);
}

export function isHardStateEqual(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit;
}

export function entryBytes(e: Entry): number {
  // Header cost is nominal; only the payload matters for the byte bounds.
  return e.data.length + 24;
}
