// `polyfs plugin`: the Docker plugin's entrypoint. Its settings come from the environment the
// plugin manifest (config.json) declares, so `docker plugin set polyfs SECRET=...` works; the
// flags say where the socket, the mount and the data are (Docker's defaults; tests move them).
import { networkInterfaces } from 'node:os'
import path from 'node:path'
import { startPlugin } from '../plugin'
import { logger, setLogLevel } from '../util'
import { onStopSignals } from './signals'

export interface PluginArgs {
  socket: string
  mountpoint: string
  data: string
  listen?: string
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

export async function runPlugin(a: PluginArgs): Promise<void> {
  const level = env('LOG_LEVEL') || 'info'
  if (!['trace', 'debug', 'info', 'warn', 'error'].includes(level)) throw new Error(`LOG_LEVEL=${level}: expected trace, debug, info, warn or error`)
  setLogLevel(level)
  const log = logger('plugin')
  const secret = env('SECRET') || env('POLYFS_SECRET')
  if (!secret) throw new Error('SECRET is not set: docker plugin set polyfs SECRET=<the cluster secret> (the same on every host)')
  const port = Number(env('PORT') || '7420')
  if (!Number.isInteger(port) || port < 1 || port > 65534) throw new Error(`PORT=${env('PORT')}: expected a port number`)
  const adv = env('ADVERTISE') || firstIPv4()
  const advertise = /:\d+$/.test(adv) && !adv.startsWith('[') ? adv : `${adv}:${port}`
  const advHost = hostOf(advertise)
  // Bound on the advertised address: several nodes can share a machine (one address each).
  const listen = a.listen ?? advertise
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
  log.info({ advertise, listen, waypoints, waypointHere: waypointListen ?? null, socket: a.socket, mountpoint: a.mountpoint, data: a.data }, 'starting the PolyFS plugin')
  const p = await startPlugin({
    socket: path.resolve(a.socket),
    mountpoint: path.resolve(a.mountpoint),
    dataDir: path.resolve(a.data),
    listen,
    advertise,
    waypoints,
    waypointListen,
    secret,
    dataReplicas,
    log,
  })
  onStopSignals(log, () => p.close())
  setInterval(() => undefined, 1 << 30)
}
