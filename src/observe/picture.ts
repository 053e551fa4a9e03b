// The cluster at a glance, gathered the same way for the status page (/api/status), `polyfs
// status` and `polyfs status --json`: the cluster map from the master leader, and each node's
// own Status (its groups, CPU, event-loop lag, events, tasks, per-second series). A node whose
// Status does not answer is shown unreachable at once, before the master marks it down.
import type { GetClusterMapResponse, NodeEvent, NodeStatusResponse, RpcClients, TaskProgress } from '../rpc'

export type NodeHealth = 'up' | 'down' | 'removed' | 'unreachable' | 'unknown'
export type RegionHealth = 'ok' | 'under-replicated' | 'unavailable'

export interface PictureNode {
  id: number
  address: string
  /** host:port of its HTTP server ("" when none). */
  httpAddress: string
  /** The master's view (up, down, removed), or unreachable when its Status did not answer. */
  health: NodeHealth
  /** The master's state for it (NODE_UP ...). */
  masterState: string
  error: string
  roles: string[]
  capacityBytes: number
  freeBytes: number
  rssBytes: number
  cpuCores: number
  loopLagMs: number
  lastHeartbeatMs: number
  uptimeMs: number
  /** Regions it hosts a replica of, and leads. */
  replicas: number
  leads: number
  kvOps: number[]
  kvLatencyMs: number[]
  fuseOps: number[]
}

export interface PictureReplica {
  nodeId: number
  role: 'leader' | 'follower' | 'learner'
  /** The node hosting it is up and answering. */
  live: boolean
  appliedIndex: number
}

export interface PictureRegion {
  id: number
  startKey: string
  endKey: string
  epoch: string
  leader: number
  voters: number[]
  learners: number[]
  health: RegionHealth
  /** Why it is not ok ("" when it is). */
  why: string
  sizeBytes: number
  replicas: PictureReplica[]
}

export interface Picture {
  atMs: number
  clusterId: string
  mapVersion: number
  master: { leader: number; leaderAddress: string; term: number; voters: number[]; learners: number[] }
  settings: { dataReplicas: number; downAfterMs: number }
  nodes: PictureNode[]
  regions: PictureRegion[]
  /** Events of every node that answered, oldest first, the last MAX_PICTURE_EVENTS. */
  events: NodeEvent[]
  tasks: TaskProgress[]
  /** Sums over the nodes (latency: weighted by ops), one point per stepMs, oldest first. */
  totals: { stepMs: number; kvOps: number[]; kvLatencyMs: number[]; fuseOps: number[] }
  /** Everything an operator should look at, in words; empty when the cluster is healthy. */
  problems: string[]
  healthy: boolean
}

export const MAX_PICTURE_EVENTS = 100

export interface GatherOptions {
  /** Where the master leader probably is (a node knows); tried before the waypoints. */
  masterHint?: string
  waypoints: readonly string[]
  timeoutMs?: number
}

/** The master leader's cluster map, found through the hint or the waypoints. */
async function clusterMap(clients: RpcClients, o: GatherOptions, timeoutMs: number): Promise<GetClusterMapResponse> {
  const problems: string[] = []
  const tryAt = async (address: string): Promise<GetClusterMapResponse | null> => {
    try {
      let map = await clients.master(address).getClusterMap({}, { timeoutMs })
      if (map.error?.code && map.error.leader?.address && map.error.leader.address !== address) map = await clients.master(map.error.leader.address).getClusterMap({}, { timeoutMs })
      if (map.error?.code) {
        problems.push(`${address}: ${map.error.code}: ${map.error.message}`)
        return null
      }
      return map
    } catch (err) {
      problems.push(`${address}: ${(err as Error).message}`)
      return null
    }
  }
  if (o.masterHint) {
    const m = await tryAt(o.masterHint)
    if (m) return m
  }
  for (const w of o.waypoints) {
    try {
      const m = await clients.waypoint(w).getMaster({}, { timeoutMs })
      if (!m.known || !m.leader?.address) {
        problems.push(`${w}: no master registered`)
        continue
      }
      const map = await tryAt(m.leader.address)
      if (map) return map
    } catch (err) {
      problems.push(`${w}: ${(err as Error).message}`)
    }
  }
  throw new Error(`no master leader answers (${problems.join('; ') || 'no waypoints given'})`)
}

/** grpc-js's message without its empty "Resolution note:" tail and the repeated code. */
function shortError(err: unknown): string {
  const m = err instanceof Error ? err.message : String(err)
  return m.replace(/\s*Resolution note:\s*$/, '').replace(/^\d+ UNAVAILABLE: /, 'UNAVAILABLE: ').split('\n')[0] as string
}

const hex = (b: Buffer | Uint8Array | undefined) => (b ? Buffer.from(b).toString('hex') : '')

export async function gatherPicture(clients: RpcClients, o: GatherOptions): Promise<Picture> {
  const timeoutMs = o.timeoutMs ?? 2000
  const map = await clusterMap(clients, o, timeoutMs)
  const statuses = new Map<number, NodeStatusResponse | { error: string }>()
  await Promise.all(
    (map.nodes ?? [])
      .filter((n) => n.state !== 'NODE_REMOVED')
      .map(async (n) => {
        try {
          const s = await clients.admin(n.address).status({}, { timeoutMs })
          statuses.set(n.nodeId, s.error?.code ? { error: `${s.error.code}: ${s.error.message}` } : s)
        } catch (err) {
          statuses.set(n.nodeId, { error: shortError(err) })
        }
      }),
  )
  return buildPicture(map, statuses)
}

/** The picture from a map and the nodes' answers (pure: tests feed it directly). */
export function buildPicture(map: GetClusterMapResponse, statuses: ReadonlyMap<number, NodeStatusResponse | { error: string }>, now = Date.now()): Picture {
  const m = map.master
  const voters = m?.voters ?? []
  const learners = m?.learners ?? []
  const problems: string[] = []
  const ok = (id: number): NodeStatusResponse | null => {
    const s = statuses.get(id)
    return s && !('error' in s && typeof s.error === 'string') ? (s as NodeStatusResponse) : null
  }
  const nodes: PictureNode[] = (map.nodes ?? []).map((n) => {
    const s = ok(n.nodeId)
    const answer = statuses.get(n.nodeId)
    const error = answer && 'error' in answer && typeof answer.error === 'string' ? answer.error : ''
    let health: NodeHealth = n.state === 'NODE_UP' ? 'up' : n.state === 'NODE_DOWN' ? 'down' : n.state === 'NODE_REMOVED' ? 'removed' : 'unknown'
    if (health === 'up' && !s) health = 'unreachable'
    const roles: string[] = []
    if (voters.includes(n.nodeId)) roles.push(m?.leader?.nodeId === n.nodeId ? 'master-leader' : 'master')
    if (learners.includes(n.nodeId)) roles.push('master-learner')
    const groups = (s?.groups ?? []).filter((g) => g.regionId !== 0)
    if (groups.length) roles.push('data')
    if (health === 'down' || health === 'unreachable') problems.push(`node ${n.nodeId} (${n.address}) is ${health}${error ? `: ${error}` : ''}`)
    return {
      id: n.nodeId,
      address: n.address,
      httpAddress: s?.httpAddress ?? '',
      health,
      masterState: n.state,
      error,
      roles,
      capacityBytes: s?.capacityBytes || n.capacityBytes,
      freeBytes: s?.capacityBytes ? s.freeBytes : n.freeBytes,
      rssBytes: s?.rssBytes || n.rssBytes,
      cpuCores: s?.cpuCores ?? 0,
      loopLagMs: s?.loopLagMs ?? 0,
      lastHeartbeatMs: n.lastHeartbeatMs,
      uptimeMs: s?.uptimeMs ?? 0,
      replicas: groups.length,
      leads: groups.filter((g) => g.role === 'leader').length,
      kvOps: s?.kvOps ?? [],
      kvLatencyMs: s?.kvLatencyMs ?? [],
      fuseOps: s?.fuseOps ?? [],
    }
  })
  const live = (id: number) => nodes.find((n) => n.id === id)?.health === 'up'
  const counted = nodes.filter((n) => n.health !== 'removed').length
  const want = Math.min(map.settings?.dataReplicas ?? 3, counted)
  // Each replica's applied index and size, from the node hosting it.
  const hosted = new Map<string, { applied: number; size: number }>()
  for (const [id] of statuses) for (const g of ok(id)?.groups ?? []) hosted.set(`${g.regionId}:${id}`, { applied: g.appliedIndex, size: g.sizeBytes })
  const regions: PictureRegion[] = (map.regions ?? []).map((r) => {
    const rv = r.voters ?? []
    const rl = r.learners ?? []
    const up = rv.filter(live).length
    const quorum = Math.floor(rv.length / 2) + 1
    let health: RegionHealth = 'ok'
    let why = ''
    if (up < quorum) {
      health = 'unavailable'
      why = `${up} of ${rv.length} voters live, ${quorum} needed`
    } else if (up < rv.length) {
      health = 'under-replicated'
      why = `${rv.length - up} of ${rv.length} voters not live (${rv.filter((v) => !live(v)).map((v) => `node ${v}`).join(', ')})`
    } else if (rv.length < want) {
      health = 'under-replicated'
      why = `${rv.length} voters, ${want} wanted${rl.length ? `, ${rl.length} catching up` : ''}`
    }
    if (health !== 'ok') problems.push(`region ${r.id} is ${health}: ${why}`)
    const replicas: PictureReplica[] = [...rv, ...rl].map((id) => ({
      nodeId: id,
      role: rl.includes(id) ? 'learner' : r.leader === id ? 'leader' : 'follower',
      live: live(id),
      appliedIndex: hosted.get(`${r.id}:${id}`)?.applied ?? 0,
    }))
    const sizes = [...rv, ...rl].map((id) => hosted.get(`${r.id}:${id}`)?.size ?? 0)
    return { id: r.id, startKey: hex(r.startKey), endKey: hex(r.endKey), epoch: `${r.epoch?.confVer ?? 0}/${r.epoch?.version ?? 0}`, leader: r.leader ?? 0, voters: [...rv], learners: [...rl], health, why, sizeBytes: Math.max(0, ...sizes), replicas }
  })
  const events: NodeEvent[] = []
  const tasks: TaskProgress[] = []
  let stepMs = 1000
  const answered: NodeStatusResponse[] = []
  for (const [id] of statuses) {
    const s = ok(id)
    if (!s) continue
    answered.push(s)
    events.push(...(s.events ?? []))
    tasks.push(...(s.tasks ?? []))
    if (s.seriesStepMs) stepMs = s.seriesStepMs
  }
  events.sort((a, b) => a.atMs - b.atMs)
  return {
    atMs: now,
    clusterId: map.clusterId,
    mapVersion: map.mapVersion,
    master: { leader: m?.leader?.nodeId ?? 0, leaderAddress: m?.leader?.address ?? '', term: m?.term ?? 0, voters: [...voters], learners: [...learners] },
    settings: { dataReplicas: map.settings?.dataReplicas ?? 3, downAfterMs: map.settings?.downAfterMs ?? 0 },
    nodes,
    regions,
    events: events.slice(-MAX_PICTURE_EVENTS),
    tasks: tasks.sort((a, b) => a.startedMs - b.startedMs),
    totals: { stepMs, kvOps: sumSeries(answered.map((s) => s.kvOps ?? [])), kvLatencyMs: weighted(answered), fuseOps: sumSeries(answered.map((s) => s.fuseOps ?? [])) },
    problems,
    healthy: problems.length === 0,
  }
}

/** Sums series aligned at their newest point. */
function sumSeries(all: number[][]): number[] {
  const len = Math.max(0, ...all.map((a) => a.length))
  const out = new Array<number>(len).fill(0)
  for (const a of all) for (let i = 0; i < a.length; i++) out[len - a.length + i] = (out[len - a.length + i] ?? 0) + (a[i] ?? 0)
  return out.map((v) => Math.round(v * 100) / 100)
}

/** Mean KV latency per point over the nodes, weighted by each node's ops. */
function weighted(all: NodeStatusResponse[]): number[] {
  const len = Math.max(0, ...all.map((s) => (s.kvLatencyMs ?? []).length))
  const num = new Array<number>(len).fill(0)
  const den = new Array<number>(len).fill(0)
  for (const s of all) {
    const lat = s.kvLatencyMs ?? []
    const ops = s.kvOps ?? []
    for (let i = 0; i < lat.length; i++) {
      const j = len - lat.length + i
      const w = ops[i] ?? 0
      num[j] = (num[j] ?? 0) + (lat[i] ?? 0) * w
      den[j] = (den[j] ?? 0) + w
    }
  }
  return num.map((v, i) => (den[i] ? Math.round((v / (den[i] as number)) * 100) / 100 : 0))
}
