// Joining a cluster, as the seed describes: ask a random waypoint (the others when it fails)
// who leads the master group and join through it; on an empty answer wait a few heartbeats
// (a master may be about to register), then bootstrap a new cluster, but only after a MAJORITY
// of the configured waypoints granted this node the bootstrap claim. Claims are exclusive, so
// N nodes started at the same instant create exactly one cluster (docs/cluster.md).
import { randomBytes, randomUUID } from 'node:crypto'
import { ErrorCode, type GetMasterResponse } from '../rpc'
import type { ClusterNode } from './node'

export interface JoinResult {
  readonly clusterId: string
  readonly nodeId: number
  /** Set when this node creates the cluster. */
  readonly bootstrap?: { readonly clusterId: string }
}

/** Empty answers from the waypoints before this node may try to bootstrap. */
const EMPTY_ROUNDS_BEFORE_CLAIM = 3
const CLAIM_TTL_MS = 15_000

function shuffle<T>(xs: readonly T[]): T[] {
  const a = [...xs]
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1))
    ;[a[i], a[j]] = [a[j] as T, a[i] as T]
  }
  return a
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** Asks the waypoints in random order; the first answer wins. Null: none answered. */
async function askWaypoints(node: ClusterNode): Promise<GetMasterResponse | null> {
  for (const w of shuffle(node.opts.waypoints)) {
    try {
      return await node.clients.waypoint(w).getMaster({}, { timeoutMs: 2000 })
    } catch (err) {
      node.log.debug({ err, waypoint: w }, 'waypoint did not answer')
    }
  }
  return null
}

/** Joins through the master leader at `address`, following NOT_LEADER hints a few times. */
async function joinVia(node: ClusterNode, address: string): Promise<JoinResult | null> {
  let at = address
  for (let hop = 0; hop < 5; hop++) {
    const cap = node.capacity()
    const res = await node.clients.master(at).join({ clusterId: '', nodeId: 0, address: node.address, joinToken: node.identity.joinToken, ...cap }, { timeoutMs: 10_000 })
    if (!res.error || !res.error.code) {
      if (res.master) node.learnMaster(res.master)
      return { clusterId: res.clusterId, nodeId: res.nodeId }
    }
    if (res.error.code === ErrorCode.NOT_LEADER && res.error.leader?.address) {
      at = res.error.leader.address
      continue
    }
    node.log.warn({ code: res.error.code, message: res.error.message }, 'join refused')
    return null
  }
  return null
}

export async function joinCluster(node: ClusterNode): Promise<JoinResult> {
  const waypoints = node.opts.waypoints
  if (waypoints.length === 0) throw new Error('no waypoints given: a new node needs --waypoints to find or create its cluster')
  let emptyRounds = 0
  for (;;) {
    if (node.isClosed) throw new Error('node closed while joining')
    const m = await askWaypoints(node)
    if (m?.known && m.leader?.address) {
      emptyRounds = 0
      try {
        const r = await joinVia(node, m.leader.address)
        if (r) return r
      } catch (err) {
        node.log.info({ err: (err as Error).message, master: m.leader.address }, 'join failed; will retry')
      }
    } else if (m) {
      emptyRounds++
    } else {
      node.log.warn({ waypoints }, 'no waypoint answers; retrying')
    }
    if (emptyRounds >= EMPTY_ROUNDS_BEFORE_CLAIM) {
      const won = await claimMajority(node)
      if (won) {
        const clusterId = randomUUID()
        node.log.info({ clusterId }, 'no cluster found: bootstrapping a new one')
        return { clusterId, nodeId: 1, bootstrap: { clusterId } }
      }
      emptyRounds = 0
      await sleep(200 + Math.random() * 1000)
      continue
    }
    await sleep(node.heartbeatMs)
  }
}

/** Claims every waypoint at once; true if a majority of all configured waypoints granted it.
 * Otherwise the claims that were granted are released, so someone else can win. */
async function claimMajority(node: ClusterNode): Promise<boolean> {
  const claimant = randomBytes(8).toString('hex')
  const waypoints = node.opts.waypoints
  const answers = await Promise.all(
    waypoints.map(async (w) => {
      try {
        const r = await node.clients.waypoint(w).claim({ claimant, address: node.address, ttlMs: CLAIM_TTL_MS, release: false }, { timeoutMs: 2000 })
        return r.granted ? w : null
      } catch {
        return null
      }
    }),
  )
  const granted = answers.filter((w): w is string => w !== null)
  if (granted.length * 2 > waypoints.length) return true
  await Promise.all(granted.map((w) => node.clients.waypoint(w).claim({ claimant, address: node.address, ttlMs: 0, release: true }, { timeoutMs: 2000 }).catch(() => undefined)))
  return false
}
