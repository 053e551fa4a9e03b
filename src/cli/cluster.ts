// `polyfs node`, `polyfs mount --waypoints` and `polyfs dev --nodes N`: the cluster from the
// command line. A node optionally mounts the filesystem it serves; a client mount stores
// nothing; dev runs a whole local cluster as child processes.
import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { ClusterNode } from '../cluster'
import { FileSystem } from '../fs'
import { checkMountpoint, mount, type Mounted } from '../fuse'
import { startHttp } from '../http'
import { ClusterKV } from '../kv'
import { gatherPicture, series } from '../observe'
import { RpcClients } from '../rpc'
import { HEAP_FLAGS, logger, setLogLevel, withMallocTuning, type Logger } from '../util'
import { setLogNode } from '../util/log'
import { onStopSignals } from './signals'

export interface NodeArgs {
  data: string
  listen: string
  advertise?: string
  waypoints: string[]
  mount?: string
  secret: string
  logLevel: string
  attrTimeoutSec: number
  dataReplicas?: number
  memberReplaceAfterSec?: number
  downAfterSec?: number
  /** host:port for the status page, /metrics, /healthz and /readyz. */
  http?: string
}

async function mountCluster(clients: RpcClients, waypoints: string[], nodes: string[], mountpoint: string, attrTimeoutSec: number, log: Logger): Promise<Mounted> {
  const problem = await checkMountpoint(mountpoint)
  if (problem) throw new Error(problem)
  const kv = new ClusterKV({ clients, waypoints, nodes, logger: logger('kv') })
  await kv.connect()
  const fs = await FileSystem.open(kv, { shared: true })
  try {
    return await mount(fs, mountpoint, { attrTimeoutSec, entryTimeoutSec: attrTimeoutSec })
  } catch (err) {
    await fs.close()
    throw err
  }
}

export async function runNode(a: NodeArgs): Promise<void> {
  setLogLevel(a.logLevel)
  const log = logger('cli')
  if (a.mount) {
    const problem = await checkMountpoint(path.resolve(a.mount))
    if (problem) throw new Error(problem)
  }
  const settings = {
    dataReplicas: a.dataReplicas,
    memberReplaceAfterMs: a.memberReplaceAfterSec !== undefined ? a.memberReplaceAfterSec * 1000 : undefined,
    downAfterMs: a.downAfterSec !== undefined ? a.downAfterSec * 1000 : undefined,
  }
  // Tuning and test knob: how many entries a group's log keeps before a snapshot.
  const compact = Number(process.env.POLYFS_COMPACT_AFTER_ENTRIES ?? '')
  const compactAfterEntries = Number.isInteger(compact) && compact > 0 ? compact : undefined
  const node = await ClusterNode.start({ dataDir: path.resolve(a.data), listen: a.listen, advertise: a.advertise, waypoints: a.waypoints, secret: a.secret, settings, compactAfterEntries, http: a.http })
  setLogNode(node.nodeId)
  let mounted: Mounted | null = null
  if (a.mount) node.readyChecks = () => ({ mount: mounted ? true : 'the filesystem is not mounted yet' })
  onStopSignals(log, async () => {
    if (mounted) await mounted.close().catch((err) => log.error({ err }, 'unmount failed'))
    await node.close()
  })
  if (a.mount) {
    mounted = await mountCluster(node.clients, a.waypoints, [node.address], path.resolve(a.mount), a.attrTimeoutSec, log)
    log.info({ mountpoint: mounted.mountpoint }, 'filesystem mounted')
  }
  // Keep the process alive (fuse-native's and the timers' handles may be unref'd).
  setInterval(() => undefined, 1 << 30)
}

export async function runClientMount(a: { waypoints: string[]; mountpoint: string; secret: string; logLevel: string; attrTimeoutSec: number; http?: string }): Promise<void> {
  setLogLevel(a.logLevel)
  const log = logger('cli')
  const clients = new RpcClients({ secret: a.secret, logger: log })
  series.start()
  let mounted: Mounted | null = null
  let closing = false
  const http = a.http
    ? await startHttp({
        listen: a.http,
        logger: logger('http'),
        picture: () => gatherPicture(clients, { waypoints: a.waypoints }),
        health: () => ({ process: closing ? 'closing' : true }),
        ready: () => ({ mount: mounted ? true : 'the filesystem is not mounted yet', ...(closing ? { closing: 'unmounting' } : {}) }),
      })
    : null
  try {
    mounted = await mountCluster(clients, a.waypoints, [], path.resolve(a.mountpoint), a.attrTimeoutSec, log)
  } catch (err) {
    await http?.close()
    clients.close()
    throw err
  }
  const m = mounted
  log.info({ mountpoint: m.mountpoint }, 'filesystem mounted')
  onStopSignals(log, async () => {
    closing = true
    await m.close()
    await http?.close()
    clients.close()
  })
  setInterval(() => undefined, 1 << 30)
}

// ---------------------------------------------------------------- polyfs dev

export interface DevArgs {
  nodes: number
  mount: string
  data: string
  logLevel: string
  basePort: number
  host: string
}

/** In `polyfs dev`, node i serves HTTP at basePort + DEV_HTTP_OFFSET + i. */
export const DEV_HTTP_OFFSET = 80

/** One waypoint and N nodes as child processes on 127.0.0.1, the filesystem mounted here. */
export async function runDev(a: DevArgs): Promise<void> {
  setLogLevel(a.logLevel)
  const log = logger('dev')
  const root = path.resolve(a.data)
  const logs = path.join(root, 'logs')
  mkdirSync(logs, { recursive: true })
  const mountpoint = path.resolve(a.mount)
  mkdirSync(mountpoint, { recursive: true })
  const problem = await checkMountpoint(mountpoint)
  if (problem) throw new Error(problem)
  const secretFile = path.join(root, 'secret')
  if (!existsSync(secretFile)) writeFileSync(secretFile, randomBytes(24).toString('hex') + '\n', { mode: 0o600 })
  const secret = readFileSync(secretFile, 'utf8').trim()
  const bin = path.resolve(__dirname, '../../../bin/polyfs')
  const waypoint = `${a.host}:${a.basePort}`
  const children: { name: string; proc: ChildProcess }[] = []
  const env = withMallocTuning({ ...process.env, POLYFS_SECRET: secret })
  const start = (name: string, args: string[]) => {
    const out = openSync(path.join(logs, `${name}.log`), 'a')
    const proc = spawn(process.execPath, [...HEAP_FLAGS, bin, ...args], { stdio: ['ignore', out, out], env })
    children.push({ name, proc })
    proc.on('exit', (code, sig) => {
      if (!stopping) log.warn({ name, code, sig }, `${name} exited; see ${path.join(logs, name + '.log')}`)
    })
  }
  let stopping = false
  start('waypoint', ['waypoint', '--listen', waypoint, '--log-level', a.logLevel])
  for (let i = 1; i <= a.nodes; i++) {
    start(`node-${i}`, ['node', '--data', path.join(root, `node-${i}`), '--listen', `${a.host}:${a.basePort + i}`, '--waypoints', waypoint, '--http', `${a.host}:${a.basePort + DEV_HTTP_OFFSET + i}`, '--log-level', a.logLevel])
  }
  const clients = new RpcClients({ secret, logger: log })
  let mounted: Mounted | null = null
  const stop = async () => {
    stopping = true
    if (mounted) await mounted.close().catch((err) => log.error({ err }, 'unmount failed'))
    clients.close()
    for (const c of children) if (c.proc.exitCode === null) c.proc.kill('SIGTERM')
    await Promise.all(children.map((c) => (c.proc.exitCode === null ? new Promise((r) => c.proc.once('exit', r)) : null)))
  }
  onStopSignals(log, stop)
  try {
    mounted = await mountCluster(clients, [waypoint], [], mountpoint, 0, log)
  } catch (err) {
    await stop()
    throw err
  }
  process.stdout.write(
    `PolyFS: ${a.nodes} node(s) and a waypoint on ${a.host} (waypoint ${waypoint}), mounted at ${mountpoint}.\n` +
      `Status page: ${Array.from({ length: a.nodes }, (_, i) => `http://${a.host}:${a.basePort + DEV_HTTP_OFFSET + i + 1}/`).join(' ')} (any node shows the whole cluster; /metrics for Prometheus)\n` +
      `Data and logs in ${root}. Status: POLYFS_SECRET=$(cat ${secretFile}) polyfs status --waypoints ${waypoint} --watch\nCtrl-C to stop.\n`,
  )
  setInterval(() => undefined, 1 << 30)
}
