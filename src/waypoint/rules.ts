// The waypoint's rules, pure: every method takes the current time, nothing here does I/O, so
// the tests drive it with a hand-moved clock. Memory only: a restarted waypoint knows nothing,
// which is why it grants no claim during its first holdMs (the master leader re-registers
// every second; holdMs gives it time to, before anyone may bootstrap a second cluster).
import { ErrorCode, RpcError, addressProblem, rpcError, TOKEN_RULE } from '../rpc'
import type { ClaimRequest, ClaimResponse, GetMasterResponse, NodeAddr, SetMasterRequest, SetMasterResponse } from '../rpc'

/** A claim's lifetime is clamped to [MIN, MAX]; 0 asks for the default. */
export const CLAIM_TTL_MIN_MS = 100
export const CLAIM_TTL_MAX_MS = 60_000
export const CLAIM_TTL_DEFAULT_MS = 10_000

export interface WaypointRulesOptions {
  /** No claim is granted until this long after startedAtMs. */
  holdMs: number
  /** A registration older than this is forgotten (GetMaster says known=false). */
  masterExpiryMs: number
  startedAtMs: number
}

interface Registration {
  clusterId: string
  leader: NodeAddr
  term: number
  members: NodeAddr[]
  atMs: number
}

interface Claim {
  claimant: string
  address: string
  untilMs: number
}

/** What changed, for the server's log. */
export type WaypointEvent =
  | { type: 'registered'; clusterId: string; leader: NodeAddr; term: number; previous?: { clusterId: string; leaderId: number; term: number } }
  | { type: 'claimGranted'; claimant: string; address: string; ttlMs: number; renewal: boolean }
  | { type: 'claimReleased'; claimant: string }

export class WaypointRules {
  private reg: Registration | null = null
  private claimHeld: Claim | null = null

  constructor(
    private readonly o: WaypointRulesOptions,
    private readonly onEvent: (e: WaypointEvent) => void = () => undefined,
  ) {}

  getMaster(nowMs: number): GetMasterResponse {
    const r = this.current(nowMs)
    if (!r) return { known: false, clusterId: '', term: 0, members: [] }
    return { known: true, clusterId: r.clusterId, leader: r.leader, term: r.term, members: r.members }
  }

  /**
   * Registers the master leader. Refused with CLUSTER_MISMATCH while another cluster's
   * registration is current (two clusters must not share waypoints), and with NOT_LEADER
   * (naming the stored leader) for a term older than the stored one of the same cluster.
   */
  setMaster(req: SetMasterRequest, nowMs: number): SetMasterResponse {
    if (!req.clusterId) return { error: rpcError(ErrorCode.INVALID, 'SetMaster without a cluster id') }
    if (!req.leader || !req.leader.nodeId || !req.leader.address) return { error: rpcError(ErrorCode.INVALID, 'SetMaster without a leader (node id and address)') }
    const bad = addressProblem(req.leader.address)
    if (bad) return { error: rpcError(ErrorCode.INVALID, `SetMaster refused: ${bad}`) }
    const cur = this.current(nowMs)
    if (cur && cur.clusterId !== req.clusterId) {
      return { error: rpcError(ErrorCode.CLUSTER_MISMATCH, `this waypoint serves cluster ${cur.clusterId}, not ${req.clusterId}`, { leader: cur.leader }) }
    }
    // Terms only grow within a cluster, so an older one is a deposed leader, expired or not.
    const prev = this.reg
    if (prev && prev.clusterId === req.clusterId && req.term < prev.term) {
      return { error: rpcError(ErrorCode.NOT_LEADER, `term ${req.term} is older than the registered term ${prev.term}`, { leader: prev.leader }) }
    }
    this.reg = { clusterId: req.clusterId, leader: req.leader, term: req.term, members: req.members, atMs: nowMs }
    this.claimHeld = null // a registered cluster makes any bootstrap claim moot
    if (!prev || prev.clusterId !== req.clusterId || prev.term !== req.term || prev.leader.nodeId !== req.leader.nodeId) {
      this.onEvent({
        type: 'registered',
        clusterId: req.clusterId,
        leader: req.leader,
        term: req.term,
        previous: prev ? { clusterId: prev.clusterId, leaderId: prev.leader.nodeId, term: prev.term } : undefined,
      })
    }
    return {}
  }

  /** The bootstrap claim (docs/protocol.md, "Waypoints"). */
  claim(req: ClaimRequest, nowMs: number): ClaimResponse {
    if (!TOKEN_RULE.test(req.claimant)) throw new RpcError('INVALID_ARGUMENT', 'a claimant is 8 to 128 printable ASCII characters')
    const bad = req.release ? null : addressProblem(req.address)
    if (bad) throw new RpcError('INVALID_ARGUMENT', `Claim refused: ${bad}`)
    const masterKnown = this.current(nowMs) !== null
    let held = this.claimHeld && this.claimHeld.untilMs > nowMs ? this.claimHeld : null
    if (req.release) {
      if (held && held.claimant === req.claimant) {
        held = this.claimHeld = null
        this.onEvent({ type: 'claimReleased', claimant: req.claimant })
      }
      return { granted: false, holder: held?.claimant ?? '', masterKnown }
    }
    if (masterKnown) return { granted: false, holder: '', masterKnown: true }
    if (nowMs - this.o.startedAtMs < this.o.holdMs) return { granted: false, holder: '', masterKnown: false }
    if (held && held.claimant !== req.claimant) return { granted: false, holder: held.claimant, masterKnown: false }
    const ttlMs = req.ttlMs === 0 ? CLAIM_TTL_DEFAULT_MS : Math.min(Math.max(req.ttlMs, CLAIM_TTL_MIN_MS), CLAIM_TTL_MAX_MS)
    this.claimHeld = { claimant: req.claimant, address: req.address, untilMs: nowMs + ttlMs }
    this.onEvent({ type: 'claimGranted', claimant: req.claimant, address: req.address, ttlMs, renewal: held !== null })
    return { granted: true, holder: req.claimant, masterKnown: false }
  }

  /** The registration if it is not older than masterExpiryMs. */
  private current(nowMs: number): Registration | null {
    const r = this.reg
    return r && nowMs - r.atMs <= this.o.masterExpiryMs ? r : null
  }
}
