// The options of a Raft node and their defaults. Every bound the core keeps is named here.

import type { Rng } from './rng';
import type { RaftStorageReader } from './storage';
import type { NodeId } from './types';

export const ReadOnlyOption = {
  /** ReadIndex with a quorum round per read batch: safe without any clock assumption. */
  Safe: 'safe',
  /** Serve reads from the leader lease: assumes clocks of all nodes advance at rates within
   * leaseSafetyTicks/electionTicks of each other (see docs/raft.md, "Lease reads"). */
  Lease: 'lease',
} as const;
export type ReadOnlyOption = (typeof ReadOnlyOption)[keyof typeof ReadOnlyOption];

export interface RaftConfig {
  readonly id: NodeId;
  readonly storage: RaftStorageReader;
  /** Seeded by the host; used only for randomized election timeouts. */
  readonly rng: Rng;
  /** A follower campaigns after a random timeout in [electionTicks, 2*electionTicks). */
  readonly electionTicks: number;
  readonly heartbeatTicks: number;
  /** The host's applied index at start (defaults to the snapshot's). */
  readonly applied?: number;
  /** Upper bound of entry bytes in one append message (batching). Default 1 MiB. */
  readonly maxSizePerMsgBytes?: number;
  /** Flow-control window per follower: appends in flight. Default 64. */
  readonly maxInflightMsgs?: number;
  /** Flow-control window per follower in bytes (0 = count only). Default 16 MiB. */
  readonly maxInflightBytes?: number;
  /** Bound of committed entry bytes handed out in one Ready. Default 16 MiB. */
  readonly maxCommittedSizePerReadyBytes?: number;
  /** Proposals are refused while this many entries are uncommitted. Default 10,000. */
  readonly maxUncommittedEntries?: number;
  /** Bound of queued reads on a leader. Default 4096. */
  readonly maxPendingReads?: number;
  /** Pre-vote (section 9.6). Default true. */
  readonly preVote?: boolean;
  /** Leader steps down without a quorum heard for electionTicks; followers in contact with a
   * leader ignore vote requests (section 6.2 / 9.6). Default true. */
  readonly checkQuorum?: boolean;
  readonly readOnly?: ReadOnlyOption;
  /** Margin subtracted from the lease for clock-rate differences. Default 2. */
  readonly leaseSafetyTicks?: number;
  /** A leader idle for this many ticks tells followers to go quiet and stops heartbeats.
   * 0 disables quiescence. Default 0. */
  readonly quiesceAfterTicks?: number;
  /** How followers learn that the commit index advanced. 'immediate': an append to every
   * follower as soon as it advances (etcd's behaviour). 'lazy': the notice rides on the next
   * append the leader sends anyway (the next proposal's), or goes out at the next tick if none
   * did; a serial writer then costs one message per follower per commit instead of two.
   * Commit on the leader (and so every acknowledgement) is unchanged. Default 'immediate'. */
  readonly commitNotice?: 'immediate' | 'lazy';
  /** Snapshots the host makes to compact the log carry no image (empty data, index > 1): the
   * state is in the host's own durable store. A follower that needs one is sent an image the
   * host makes on demand: `imageWanted()` says one is needed, `offerImage()` hands it over.
   * Default false (every snapshot carries its image). */
  readonly imagesOnDemand?: boolean;
  /** Snapshot chunk size. Default 1 MiB. */
  readonly snapshotChunkBytes?: number;
  /** Resend an unacknowledged snapshot chunk after this many ticks. Default electionTicks. */
  readonly snapshotResendTicks?: number;
  /** TEST ONLY: deliberately break a rule, so tests can show the checkers catch it. */
  readonly plantedBug?: 'commitPreviousTermByCount' | 'voteIgnoresLog' | 'readWithoutQuorum';
}

export type ProposeResult =
  | { readonly ok: true; readonly index: number; readonly term: number }
  | {
      readonly ok: false;
      readonly reason: 'notLeader' | 'transferring' | 'confChangePending' | 'tooManyUncommitted' | 'invalid' | 'learnerBehind';
      readonly leader: NodeId;
    };

export type ResolvedConfig = Required<Omit<RaftConfig, 'applied' | 'plantedBug'>> & Pick<RaftConfig, 'plantedBug'>;

export function resolveConfig(c: RaftConfig): ResolvedConfig {
  return {
    id: c.id,
    storage: c.storage,
    rng: c.rng,
    electionTicks: c.electionTicks,
    heartbeatTicks: c.heartbeatTicks,
    maxSizePerMsgBytes: c.maxSizePerMsgBytes ?? 1 << 20,
    maxInflightMsgs: c.maxInflightMsgs ?? 64,
    maxInflightBytes: c.maxInflightBytes ?? 16 << 20,
    maxCommittedSizePerReadyBytes: c.maxCommittedSizePerReadyBytes ?? 16 << 20,
    maxUncommittedEntries: c.maxUncommittedEntries ?? 10_000,
    maxPendingReads: c.maxPendingReads ?? 4096,
    preVote: c.preVote ?? true,
    checkQuorum: c.checkQuorum ?? true,
    readOnly: c.readOnly ?? ReadOnlyOption.Safe,
    leaseSafetyTicks: c.leaseSafetyTicks ?? 2,
    quiesceAfterTicks: c.quiesceAfterTicks ?? 0,
    commitNotice: c.commitNotice ?? 'immediate',
    imagesOnDemand: c.imagesOnDemand ?? false,
    snapshotChunkBytes: c.snapshotChunkBytes ?? 1 << 20,
    snapshotResendTicks: c.snapshotResendTicks ?? c.electionTicks,
    plantedBug: c.plantedBug,
  };
}
