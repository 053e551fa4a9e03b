// `polyfs plugin`: the Docker plugin's entrypoint. Its settings come from the environment the
// plugin manifest (config.json) declares, so `docker plugin set polyfs SECRET=...` works; the
// flags say where the socket, the mount and the data are (Docker's defaults; tests move them).
import { spawn, type ChildProcess } from 'node:child_process'
import { networkInterfaces } from 'node:os'
import path from 'node:path'
import { startPlugin, startPluginNode } from '../plugin'
import { loadIdentity } from '../cluster/identity'
import { HEAP_FLAGS, MALLOC_TUNABLES, logger, setLogLevel } from '../util'
import { setLogNode } from '../util/log'
import { onStopSignals } from './signals'

export interface PluginArgs {
  socket: string
  mountpoint: string
  data: string
  listen?: string
  /** This process is the worker a supervisor started (it serves; it does not supervise). */
  worker?: boolean
}

export const PLUGIN_ENV: Record<string, string> = {
  WAYPOINTS: 'comma-separated waypoint addresses (host:port), the same on every host; a host whose address is in the list also runs that waypoint. Empty: this host alone, its own waypoint at ADVERTISE host, PORT+1',
  SECRET: 'the cluster secret (required; the same on every host)',
  ADVERTISE: 'host or host:port other nodes reach this node at (default: the first non-loopback IPv4 address, port PORT)',
  PORT: 'node RPC port (default 7420)',
  DATA_REPLICAS: 'replicas per data region, for a new cluster (default 3)',
  LOG_LEVEL: 'trace, debug, info, warn or error (default info)',
  HTTP: 'host:port or port of this node\'s status page, /metrics, /healthz and /readyz; this host\'s mount serves its own at the next port; "off" for none (default: the ADVERTISE host, port 7480)',
  GLIBC_TUNABLES: `read by glibc, not by polyfs: malloc settings that keep large buffers on the heap (default ${MALLOC_TUNABLES}; docs/performance.md)`,
}

/** Where the plugin serves HTTP by default (the node; the mount at the next port). */
export const PLUGIN_HTTP_PORT = 7480

function env(name: string): string {
  return (process.env[name] ?? '').trim()
}

function firstIPv4(): string {
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address
  }
  return '127.0.0.1'
}

function localAddresses(): Set<string> {
  const out = new Set<string>()
  for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) if (!a.internal) out.add(a.address)
  return out
}

const hostOf = (addr: string): string => addr.slice(0, addr.lastIndexOf(':'))

/**
 * `polyfs plugin` is the supervisor: it serves the VolumeDriver socket and the FUSE mount as a
 * client of the cluster, and runs this host's node in a child (`polyfs plugin --worker`). Docker
 * does not restart a managed plugin whose process died, so the supervisor starts a node that
 * died again (after 1 s, doubling to 30 s while it keeps dying within a minute), and the mount
 * stays alive meanwhile: containers see a pause, served by the other nodes when there are
 * others. SIGTERM/SIGINT stop the node too. A worker whose supervisor is gone shuts down.
 */
export async function runPlugin(a: PluginArgs): Promise<void> {
  if (a.worker) return runWorker(a)
  const { level, ...c } = pluginConfig(a)
  setLogLevel(level)
  const log = logger('plugin')
  log.info({ advertise: c.advertise, listen: c.listen, waypoints: c.waypoints, waypointHere: c.waypointListen ?? null, socket: c.socket, mountpoint: c.mountpoint, data: c.dataDir }, 'starting the PolyFS plugin')
  const argv = [...HEAP_FLAGS, process.argv[1], 'plugin', '--worker', '--socket', a.socket, '--mountpoint', a.mountpoint, '--data', a.data, ...(a.listen ? ['--listen', a.listen] : [])]
  let child: ChildProcess | null = null
  let stopping = false
  let delayMs = 1000
  const start = () => {
    const startedAt = Date.now()
    const w = spawn(process.execPath, argv, { stdio: 'inherit', env: { ...process.env, POLYFS_SUPERVISOR_PID: String(process.pid) } })
    child = w
    w.on('exit', (code, sig) => {
      if (stopping) return
      delayMs = Date.now() - startedAt > 60_000 ? 1000 : Math.min(delayMs * 2, 30_000)
      log.error({ code, sig, restartInMs: delayMs }, 'the node (plugin worker) died: starting it again')
      setTimeout(() => stopping || start(), delayMs)
    })
  }
  start()
  const p = await startPlugin({ socket: c.socket, mountpoint: c.mountpoint, dataDir: c.dataDir, advertise: c.advertise, waypoints: c.waypoints, secret: c.secret, http: c.http?.mount, log })
  onStopSignals(log, async () => {
    stopping = true
    await p.close()
    const w = child
    if (w && w.exitCode === null && w.signalCode === null) {
      const done = new Promise((r) => w.once('exit', r))
      w.kill('SIGTERM')
      await done
    }
  })
}

/** The plugin's settings from its environment; a clear error for each bad one. */
function pluginConfig(a: PluginArgs) {
  const level = env('LOG_LEVEL') || 'info'
  if (!['trace', 'debug', 'info', 'warn', 'error'].includes(level)) throw new Error(`LOG_LEVEL=${level}: expected trace, debug, info, warn or error`)
  const secret = env('SECRET') || env('POLYFS_SECRET')
  if (!secret) throw new Error('SECRET is not set: docker plugin set polyfs SECRET=<the cluster secret> (the same on every host)')
  const port = Number(env('PORT') || '7420')
  if (!Number.isInteger(port) || port < 1 || port > 65534) throw new Error(`PORT=${env('PORT')}: expected a port number`)
  const adv = env('ADVERTISE') || firstIPv4()
  const advertise = /:\d+$/.test(adv) && !adv.startsWith('[') ? adv : `${adv}:${port}`
  const advHost = hostOf(advertise)
  let waypoints = env('WAYPOINTS').split(',').map((s) => s.trim()).filter(Boolean)
  for (const w of waypoints) if (!/^.+:\d{1,5}$/.test(w)) throw new Error(`WAYPOINTS: "${w}" is not host:port`)
  let waypointListen: string | undefined
  if (waypoints.length === 0) {
    waypoints = [`${advHost}:${port + 1}`]
    waypointListen = waypoints[0]
  } else {
    const local = localAddresses()
    waypointListen = waypoints.find((w) => hostOf(w) === advHost || local.has(hostOf(w)))
  }
  const httpRaw = env('HTTP') || String(PLUGIN_HTTP_PORT)
  let http: { node: string; mount: string } | undefined
  if (httpRaw !== 'off') {
    const m = /^(?:(.+):)?(\d{1,5})$/.exec(httpRaw)
    const hp = m ? Number(m[2]) : NaN
    if (!m || !Number.isInteger(hp) || hp < 1 || hp > 65534) throw new Error(`HTTP=${httpRaw}: expected host:port, a port, or off`)
    const h = m[1] ?? advHost
    http = { node: `${h}:${hp}`, mount: `${h}:${hp + 1}` }
  }
  const replicasRaw = env('DATA_REPLICAS')
  const dataReplicas = replicasRaw ? Number(replicasRaw) : undefined
  if (dataReplicas !== undefined && (!Number.isInteger(dataReplicas) || dataReplicas < 1 || dataReplicas > 7)) throw new Error(`DATA_REPLICAS=${replicasRaw}: expected 1 to 7`)
  return {
    level,
    socket: path.resolve(a.socket),
    mountpoint: path.resolve(a.mountpoint),
    dataDir: path.resolve(a.data),
    // Bound on the advertised address: several nodes can share a machine (one address each).
    listen: a.listen ?? advertise,
    advertise,
    waypoints,
    waypointListen,
    secret,
    dataReplicas,
    http,
  }
}

/** The worker: this host's node (and waypoint), until SIGTERM or until its supervisor is gone. */
async function runWorker(a: PluginArgs): Promise<void> {
  // The supervisor says who it is: it may die before this process has even started, and then
  // our parent is already someone else.
  const parent = Number(process.env.POLYFS_SUPERVISOR_PID) || process.ppid
  const { level, ...c } = pluginConfig(a)
  setLogLevel(level)
  const log = logger('plugin-node')
  let node: { close(): Promise<void> } | null = null
  const stop = onStopSignals(log, async () => {
    if (node) await node.close()
    else process.exit(0) // still joining: nothing to flush
  })
  const orphan = setInterval(() => {
    if (process.ppid === parent) return
    clearInterval(orphan)
    stop('supervisor gone')
  }, 1000)
  node = await startPluginNode({ dataDir: c.dataDir, listen: c.listen, advertise: c.advertise, waypoints: c.waypoints, waypointListen: c.waypointListen, secret: c.secret, dataReplicas: c.dataReplicas, http: c.http?.node, log })
  // startPluginNode does not return the node; its id is in the identity it has just saved.
  setLogNode(loadIdentity(c.dataDir, c.advertise).nodeId)
}
