// `polyfs plugin`: the Docker plugin's entrypoint. Its settings come from the environment the
// plugin manifest (config.json) declares, so `docker plugin set polyfs SECRET=...` works; the
// flags say where the socket, the mount and the data are (Docker's defaults; tests move them).
import { spawn, type ChildProcess } from 'node:child_process'
import { networkInterfaces } from 'node:os'
import path from 'node:path'
import { startPlugin, type PluginOptions } from '../plugin'
import { logger, setLogLevel } from '../util'
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
}

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
 * Docker does not restart a managed plugin whose process died: the host would be left without
 * its volumes until someone disabled and enabled the plugin. So `polyfs plugin` supervises: it
 * runs the real work in a child (`polyfs plugin --worker`) and starts it again when it dies
 * (after 1 s, doubling to 30 s while it keeps dying within a minute). The new worker finds the
 * dead FUSE session of the old one, detaches it and mounts again. SIGTERM/SIGINT go to the
 * worker, and the supervisor exits with it. A worker whose supervisor is gone shuts down.
 */
export async function runPlugin(a: PluginArgs): Promise<void> {
  if (a.worker) return runWorker(a)
  // Settings are checked here too: a bad one is an error now, not a worker dying in a loop.
  setLogLevel(pluginConfig(a).level)
  const log = logger('plugin')
  const argv = [process.argv[1], 'plugin', '--worker', '--socket', a.socket, '--mountpoint', a.mountpoint, '--data', a.data, ...(a.listen ? ['--listen', a.listen] : [])]
  let child: ChildProcess | null = null
  let stopping = false
  let delayMs = 1000
  const start = () => {
    const startedAt = Date.now()
    const c = spawn(process.execPath, argv, { stdio: 'inherit' })
    child = c
    c.on('exit', (code, sig) => {
      if (stopping) process.exit(code ?? 1)
      delayMs = Date.now() - startedAt > 60_000 ? 1000 : Math.min(delayMs * 2, 30_000)
      log.error({ code, sig, restartInMs: delayMs }, 'the plugin worker died: starting it again')
      setTimeout(start, delayMs)
    })
  }
  const forward = (sig: NodeJS.Signals) => {
    stopping = true
    if (child && child.exitCode === null && child.signalCode === null) child.kill(sig)
    else process.exit(0)
  }
  process.on('SIGTERM', () => forward('SIGTERM'))
  process.on('SIGINT', () => forward('SIGINT'))
  start()
}

/** The plugin's settings from its environment; a clear error for each bad one. */
function pluginConfig(a: PluginArgs): Omit<PluginOptions, 'log'> & { level: string } {
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
  }
}

async function runWorker(a: PluginArgs): Promise<void> {
  const { level, ...c } = pluginConfig(a)
  setLogLevel(level)
  const log = logger('plugin')
  log.info({ advertise: c.advertise, listen: c.listen, waypoints: c.waypoints, waypointHere: c.waypointListen ?? null, socket: c.socket, mountpoint: c.mountpoint, data: c.dataDir }, 'starting the PolyFS plugin')
  const p = await startPlugin({ ...c, log })
  const stop = onStopSignals(log, () => p.close())
  const parent = process.ppid
  const orphan = setInterval(() => {
    if (process.ppid === parent) return
    clearInterval(orphan)
    stop('supervisor gone')
  }, 1000)
}
