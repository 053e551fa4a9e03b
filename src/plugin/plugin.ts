// `polyfs plugin` is two processes. The worker (startPluginNode) is this host's node and its
// waypoint when it is one: all the stored state. The supervisor (startPlugin) keeps what
// Docker and the containers hold on to: the VolumeDriver socket and the FUSE mount, served as
// a client of the cluster (like `polyfs mount --waypoints`). A node that crashes is started
// again by the supervisor while the mount stays alive: containers see a pause, never a dead
// mount. The socket answers at once (Docker waits for it when enabling the plugin); calls that
// need the cluster wait for it, bounded, and then say why they cannot proceed.
import { execFile } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { promises as fsp } from 'node:fs'
import type { Server } from 'node:http'
import path from 'node:path'
import { promisify } from 'node:util'
import { ClusterNode } from '../cluster'
import { FileSystem } from '../fs'
import { mount, type Mounted } from '../fuse'
import { startHttp, type HttpServer } from '../http'
import { ClusterKV } from '../kv'
import { gatherPicture, series } from '../observe'
import { RpcClients } from '../rpc'
import { logger, type Logger } from '../util'
import { startWaypoint, type RunningWaypoint } from '../waypoint'
import { volumeDriverApp } from './api'
import { VolumeStore } from './volumes'

const run = promisify(execFile)

export interface PluginNodeOptions {
  readonly dataDir: string
  readonly listen: string
  readonly advertise: string
  readonly waypoints: readonly string[]
  /** Also serve a waypoint at this address (this host is one of the waypoints). */
  readonly waypointListen?: string
  readonly secret: string
  readonly dataReplicas?: number
  /** host:port of the node's status page, /metrics, /healthz and /readyz. */
  readonly http?: string
  readonly log: Logger
}

/** The worker: the node, and the waypoint when this host is one. */
export async function startPluginNode(o: PluginNodeOptions): Promise<{ close(): Promise<void> }> {
  let waypoint: RunningWaypoint | null = null
  if (o.waypointListen) {
    waypoint = await startWaypoint({ listen: o.waypointListen, secret: o.secret, logger: logger('waypoint') })
    o.log.info({ address: waypoint.address }, 'waypoint listening')
  }
  let node: ClusterNode
  try {
    node = await ClusterNode.start({
      dataDir: o.dataDir,
      listen: o.listen,
      advertise: o.advertise,
      waypoints: o.waypoints,
      secret: o.secret,
      settings: { dataReplicas: o.dataReplicas },
      logger: logger('node'),
      http: o.http,
    })
  } catch (err) {
    await waypoint?.close()
    throw err
  }
  return {
    async close() {
      await node.close()
      await waypoint?.close()
    },
  }
}

export interface PluginOptions {
  /** The VolumeDriver socket (Docker: /run/docker/plugins/polyfs.sock). */
  readonly socket: string
  /** Where the filesystem is mounted (Docker: the propagated mount, /mnt/polyfs). */
  readonly mountpoint: string
  /** The node's data directory (Docker: the bind mount of /var/lib/polyfs). */
  readonly dataDir: string
  /** This host's node (run by the worker). */
  readonly advertise: string
  readonly waypoints: readonly string[]
  readonly secret: string
  /** How long a call waits for the node to be ready, and for the cluster (default 15 s). */
  readonly waitMs?: number
  /** How often the FUSE mount is checked (default 5 s). */
  readonly watchMs?: number
  /** host:port of this process's own HTTP (the mount's FUSE metrics, its health). */
  readonly http?: string
  readonly log: Logger
}

export interface RunningPlugin {
  /** Resolves once the node is up and the filesystem mounted (tests). */
  readonly started: Promise<void>
  close(): Promise<void>
}

type State = { phase: 'starting'; why: string } | { phase: 'ready'; store: VolumeStore } | { phase: 'failed'; why: string }

export async function startPlugin(o: PluginOptions): Promise<RunningPlugin> {
  const log = o.log
  const waitMs = o.waitMs ?? 15_000
  let state: State = { phase: 'starting', why: `this host's node is joining the cluster through waypoints ${o.waypoints.join(', ')}` }
  let closed = false
  const clients = new RpcClients({ secret: o.secret, logger: logger('rpc') })
  let nodeId = 0
  let apiKv: ClusterKV | null = null
  let apiFs: FileSystem | null = null
  let mounted: Mounted | null = null
  let watch: NodeJS.Timeout | null = null
  let remounting: Promise<void> | null = null
  const waiters = new Set<() => void>()
  const setState = (s: State) => {
    state = s
    for (const w of waiters) w()
    waiters.clear()
  }

  const ready = async (): Promise<VolumeStore> => {
    const until = Date.now() + waitMs
    while (state.phase === 'starting' && Date.now() < until) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.max(0, until - Date.now()))
        waiters.add(() => {
          clearTimeout(t)
          resolve()
        })
      })
    }
    if (state.phase === 'ready') {
      await ensureMounted()
      return state.store
    }
    if (state.phase === 'failed') throw new Error(`the PolyFS node on this host failed to start: ${state.why}`)
    throw new Error(`the PolyFS node on this host is not ready yet (${state.why}); see the plugin's log`)
  }

  // The socket first: Docker enables the plugin by calling Plugin.Activate on it.
  mkdirSync(path.dirname(o.socket), { recursive: true })
  rmSync(o.socket, { force: true })
  const app = volumeDriverApp({ ready }, logger('volumedriver'))
  const server: Server = await new Promise((resolve, reject) => {
    const s = app.listen(o.socket, () => resolve(s))
    s.once('error', reject)
  })
  // dockerd keeps connections open between calls. Node closes an idle one after 5 s, and a call
  // sent on it at that moment fails (EPIPE), and Docker does not retry a POST. So idle
  // connections stay open until the client closes them.
  server.keepAliveTimeout = 0
  log.info({ socket: o.socket }, 'VolumeDriver API listening')

  series.start()
  let http: HttpServer | null = null
  if (o.http) {
    http = await startHttp({
      listen: o.http,
      logger: logger('http'),
      picture: () => gatherPicture(clients, { masterHint: o.advertise, waypoints: o.waypoints }),
      health: () => ({ process: closed ? 'closing' : true }),
      ready: () => ({ plugin: state.phase === 'ready' ? true : state.why, mount: mounted ? true : 'the filesystem is not mounted' }),
    }).catch((err: Error) => {
      // The plugin works without its page: say so and go on.
      log.error({ err: err.message, http: o.http }, 'cannot serve HTTP (status page, /metrics); going on without it')
      return null
    })
  }

  /** Whether our FUSE mount is still in the mount table. Never probed with a stat: this process
   * serves that mount, and a stat blocks a libuv thread for as long as the cluster does not
   * answer (enough of them starve the store). A session that died with an earlier process is
   * found at start (ENOTCONN) by clearDeadMount. */
  const alive = async (): Promise<boolean> => {
    if (!mounted) return false
    return (await topMountType(mounted.mountpoint))?.startsWith('fuse') ?? false
  }

  const mountFs = async (): Promise<void> => {
    await clearDeadMount(o.mountpoint, log)
    mkdirSync(o.mountpoint, { recursive: true })
    const kv = new ClusterKV({ clients, waypoints: o.waypoints, nodes: [o.advertise], logger: logger('kv') })
    await kv.connect()
    const fs = await FileSystem.open(kv, { shared: true })
    try {
      mounted = await mount(fs, o.mountpoint, { attrTimeoutSec: 0, entryTimeoutSec: 0, overMount: true, log: logger('fuse') })
    } catch (err) {
      await fs.close()
      throw err
    }
    log.info({ mountpoint: o.mountpoint }, 'filesystem mounted')
  }

  /** Remounts when the FUSE session died (someone unmounted it, or the connection aborted). */
  const ensureMounted = async (): Promise<void> => {
    if (closed || !nodeId) return
    if (await alive()) return
    remounting ??= (async () => {
      log.warn({ mountpoint: o.mountpoint }, 'the FUSE mount is dead or gone: mounting again')
      const old = mounted
      mounted = null
      if (old) await Promise.race([old.close().catch(() => undefined), new Promise((r) => setTimeout(r, 5000))])
      if (!closed) await mountFs()
    })().finally(() => {
      remounting = null
    })
    await remounting
  }

  const started = (async () => {
    // This host's node runs in the worker; its id (mounts are recorded per node) once it joined.
    nodeId = await localNodeId(clients, o.advertise, () => closed)
    if (closed) return
    state = { phase: 'starting', why: 'mounting the filesystem' }
    apiKv = new ClusterKV({ clients, waypoints: o.waypoints, nodes: [o.advertise], logger: logger('kv'), retryForMs: waitMs })
    await apiKv.connect()
    apiFs = await FileSystem.open(apiKv, { shared: true })
    const store = new VolumeStore({
      kv: apiKv,
      fs: apiFs,
      nodeId: () => nodeId,
      mountpoint: o.mountpoint,
      liveNodes: () => liveNodes(clients, o.waypoints),
      clusterStatus: () => clusterStatus(clients, o.waypoints),
      deadlineMs: waitMs,
      log: logger('volumes'),
    })
    await forgetMountsAfterReboot(o.dataDir, store, nodeId, log)
    await mountFs()
    watch = setInterval(() => void ensureMounted().catch((err) => log.error({ err: (err as Error).message }, 'remount failed; the next check retries')), o.watchMs ?? 5000)
    watch.unref()
    void store.emptyTrash().catch(() => undefined)
    setState({ phase: 'ready', store })
    log.info({ nodeId, address: o.advertise }, 'plugin ready')
  })()
  started.catch((err: Error) => {
    if (closed) return
    log.error({ err: err.stack ?? err.message }, 'plugin start failed')
    setState({ phase: 'failed', why: err.message })
  })

  return {
    started,
    async close() {
      if (closed) return
      closed = true
      if (watch) clearInterval(watch)
      const serverClosed = new Promise<void>((resolve) => server.close(() => resolve()))
      server.closeAllConnections()
      await serverClosed
      rmSync(o.socket, { force: true })
      await http?.close()
      await started.catch(() => undefined)
      await remounting?.catch(() => undefined)
      if (mounted) await mounted.close().catch((err) => log.error({ err }, 'unmount failed'))
      if (apiFs) await apiFs.close().catch(() => undefined)
      clients.close()
    },
  }
}

/** The type of the topmost mount at `dir` (the last line for it in the mount table), if any. */
async function topMountType(dir: string): Promise<string | null> {
  const abs = path.resolve(dir)
  let type: string | null = null
  for (const line of (await fsp.readFile('/proc/self/mounts', 'utf8')).split('\n')) {
    const f = line.split(' ')
    if (f[1] === abs) type = f[2]
  }
  return type
}

/** A FUSE mount left by an earlier process (dead: ENOTCONN) is detached so a new one can go
 * there. Only FUSE: under Docker the mountpoint is itself a bind mount of the propagated mount,
 * which must stay, or the host and the containers would never see our mount. */
async function clearDeadMount(mountpoint: string, log: Logger): Promise<void> {
  let dead = false
  try {
    await fsp.stat(mountpoint)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOENT') return
    dead = code === 'ENOTCONN' || code === 'ECONNABORTED'
  }
  const type = await topMountType(mountpoint)
  if (!dead && !type?.startsWith('fuse')) return
  log.warn({ mountpoint, type, dead }, 'a FUSE mount of an earlier process is still here: detaching it')
  await run('fusermount', ['-uz', mountpoint]).catch(async () => run('umount', ['-l', mountpoint]).catch(() => undefined))
}

/** The id of the node at `address` once it answers (it may still be joining its cluster). */
async function localNodeId(clients: RpcClients, address: string, stop: () => boolean): Promise<number> {
  for (;;) {
    try {
      const st = await clients.admin(address).status({}, { timeoutMs: 2000 })
      if (st.nodeId > 0) return st.nodeId
    } catch {
      // not up yet
    }
    if (stop()) return 0
    await new Promise((r) => setTimeout(r, 500))
  }
}

/** Nodes the master reports up, or null when the master cannot be asked. */
async function liveNodes(clients: RpcClients, waypoints: readonly string[]): Promise<Set<number> | null> {
  const map = await clusterMap(clients, waypoints)
  if (!map) return null
  return new Set((map.nodes ?? []).filter((x) => x.state === 'NODE_UP').map((x) => x.nodeId))
}

/** The master's index, through the waypoints; null when no master answers. */
async function clusterMap(clients: RpcClients, waypoints: readonly string[]) {
  for (const w of waypoints) {
    try {
      const m = await clients.waypoint(w).getMaster({}, { timeoutMs: 2000 })
      if (!m.known || !m.leader?.address) continue
      let map = await clients.master(m.leader.address).getClusterMap({}, { timeoutMs: 3000 })
      if (map.error?.code && map.error.leader?.address) map = await clients.master(map.error.leader.address).getClusterMap({}, { timeoutMs: 3000 })
      if (!map.error?.code) return map
    } catch {
      // the next waypoint
    }
  }
  return null
}

/** Replicas and health for Get, from the master's index. */
async function clusterStatus(clients: RpcClients, waypoints: readonly string[]): Promise<Record<string, unknown>> {
  const map = await clusterMap(clients, waypoints)
  if (!map) return { health: 'unknown: the master did not answer' }
  const nodes = map.nodes ?? []
  const up = new Set(nodes.filter((x) => x.state === 'NODE_UP').map((x) => x.nodeId))
  const want = Math.min(map.settings?.dataReplicas ?? 3, nodes.filter((x) => x.state !== 'NODE_REMOVED').length)
  let worst = Infinity
  for (const r of map.regions ?? []) worst = Math.min(worst, (r.voters ?? []).filter((v) => up.has(v)).length)
  if (worst === Infinity) worst = 0
  const quorum = Math.floor(want / 2) + 1
  const health = worst >= want ? 'healthy' : worst >= quorum ? `degraded: ${worst} of ${want} replicas up` : `unavailable: ${worst} of ${want} replicas up (a majority is needed)`
  return { replicas: `${worst}/${want}`, health, nodesUp: `${up.size}/${nodes.filter((x) => x.state !== 'NODE_REMOVED').length}` }
}

/** After a reboot no container can still have a volume mounted from before: drop those mounts. */
async function forgetMountsAfterReboot(dataDir: string, store: VolumeStore, nodeId: number, log: Logger): Promise<void> {
  let boot = ''
  try {
    boot = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim()
  } catch {
    return
  }
  const file = path.join(dataDir, 'plugin-boot-id')
  const last = existsSync(file) ? readFileSync(file, 'utf8').trim() : ''
  if (last !== boot) {
    if (last) {
      const n = await store.forgetMountsOf(nodeId)
      log.info({ dropped: n }, 'host rebooted since the last start: dropped mounts recorded before it')
    }
    writeFileSync(file, boot + '\n')
  }
}
