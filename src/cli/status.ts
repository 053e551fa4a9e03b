// `polyfs status`: the cluster at a glance, from the master leader's index and each node's own
// view of its groups. `--json` prints the same data for scripts.
import { RpcClients, type GetClusterMapResponse, type NodeStatusResponse } from '../rpc'

export interface StatusArgs {
  waypoints: string[]
  secret: string
  json: boolean
}

interface Picture {
  map: GetClusterMapResponse
  nodes: Record<number, NodeStatusResponse | { error: string }>
}

async function gather(a: StatusArgs): Promise<Picture> {
  const clients = new RpcClients({ secret: a.secret })
  try {
    let leader: string | null = null
    const problems: string[] = []
    for (const w of a.waypoints) {
      try {
        const m = await clients.waypoint(w).getMaster({}, { timeoutMs: 2000 })
        if (m.known && m.leader?.address) {
          leader = m.leader.address
          break
        }
        problems.push(`${w}: no master registered`)
      } catch (err) {
        problems.push(`${w}: ${(err as Error).message}`)
      }
    }
    if (!leader) throw new Error(`no master found through the waypoints (${problems.join('; ')})`)
    let map = await clients.master(leader).getClusterMap({}, { timeoutMs: 3000 })
    if (map.error?.code && map.error.leader?.address) map = await clients.master(map.error.leader.address).getClusterMap({}, { timeoutMs: 3000 })
    if (map.error?.code) throw new Error(`master at ${leader}: ${map.error.code}: ${map.error.message}`)
    const nodes: Picture['nodes'] = {}
    await Promise.all(
      (map.nodes ?? []).map(async (n) => {
        try {
          nodes[n.nodeId] = await clients.admin(n.address).status({}, { timeoutMs: 2000 })
        } catch (err) {
          nodes[n.nodeId] = { error: (err as Error).message }
        }
      }),
    )
    return { map, nodes }
  } finally {
    clients.close()
  }
}

const gib = (b: number) => (b / 2 ** 30).toFixed(1)
const ago = (ms: number) => (ms ? `${((Date.now() - ms) / 1000).toFixed(1)}s ago` : 'never')

function table(rows: string[][]): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? []
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ').trimEnd()).join('\n')
}

export function render(p: Picture, color: boolean): string {
  const red = (s: string) => (color ? `\x1b[31m${s}\x1b[0m` : s)
  const green = (s: string) => (color ? `\x1b[32m${s}\x1b[0m` : s)
  const bold = (s: string) => (color ? `\x1b[1m${s}\x1b[0m` : s)
  const m = p.map
  const out: string[] = []
  const masterVoters = m.master?.voters ?? []
  out.push(bold(`cluster ${m.clusterId}`) + `  master leader: node ${m.master?.leader?.nodeId ?? '?'} (${m.master?.leader?.address ?? '?'}), term ${m.master?.term ?? 0}, members ${masterVoters.join(',') || '-'}` + ((m.master?.learners ?? []).length ? `, learners ${(m.master?.learners ?? []).join(',')}` : ''))
  out.push('')
  const nodeRows = [['NODE', 'ADDRESS', 'STATE', 'ROLES', 'FREE/CAPACITY GiB', 'RSS MiB', 'HEARTBEAT']]
  for (const n of m.nodes ?? []) {
    const roles = [masterVoters.includes(n.nodeId) ? (m.master?.leader?.nodeId === n.nodeId ? 'master-leader' : 'master') : '', 'data'].filter(Boolean).join(',')
    const st = n.state === 'NODE_UP' ? green('up') : red(n.state.replace('NODE_', '').toLowerCase())
    nodeRows.push([String(n.nodeId), n.address, st, roles, `${gib(n.freeBytes)}/${gib(n.capacityBytes)}`, (n.rssBytes / 2 ** 20).toFixed(0), ago(n.lastHeartbeatMs)])
  }
  out.push(table(nodeRows))
  out.push('')
  const regionRows = [['REGION', 'RANGE', 'EPOCH', 'LEADER', 'VOTERS', 'LEARNERS', 'HEALTH']]
  const want = Math.min(m.settings?.dataReplicas ?? 3, (m.nodes ?? []).filter((n) => n.state !== 'NODE_REMOVED').length)
  for (const r of m.regions ?? []) {
    const up = (r.voters ?? []).filter((v) => (m.nodes ?? []).find((n) => n.nodeId === v)?.state === 'NODE_UP').length
    const quorum = Math.floor((r.voters ?? []).length / 2) + 1
    const health = up < quorum ? red('unavailable') : (r.voters ?? []).length < want || up < (r.voters ?? []).length ? red('under-replicated') : green('ok')
    const range = `${(r.startKey ?? Buffer.alloc(0)).toString('hex') || '-inf'}..${(r.endKey ?? Buffer.alloc(0)).toString('hex') || '+inf'}`
    regionRows.push([String(r.id), range, `${r.epoch?.confVer ?? 0}/${r.epoch?.version ?? 0}`, String(r.leader || '?'), (r.voters ?? []).join(','), (r.learners ?? []).join(',') || '-', health])
  }
  out.push(table(regionRows))
  const unreachable = Object.entries(p.nodes).filter(([, s]) => 'error' in s)
  if (unreachable.length) {
    out.push('')
    for (const [id, s] of unreachable) out.push(red(`node ${id} did not answer: ${(s as { error: string }).error}`))
  }
  return out.join('\n') + '\n'
}

export async function runStatus(a: StatusArgs): Promise<void> {
  const p = await gather(a)
  if (a.json) {
    process.stdout.write(JSON.stringify(p, (_k, v) => (v && v.type === 'Buffer' && Array.isArray(v.data) ? Buffer.from(v.data).toString('hex') : v), 2) + '\n')
    return
  }
  process.stdout.write(render(p, process.stdout.isTTY === true))
}
