// Test helpers: a real cluster of `polyfs waypoint` and `polyfs node` processes, one loopback
// address per simulated host (127.0.0.11, 127.0.0.12, ...), cleaned up by t.after even when the
// test fails (processes killed by PID, mounts detached, temp dirs removed).
import { ChildProcess, spawn, spawnSync } from 'node:child_process'
import { chmodSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { ClusterKV } from '../../src/kv'
import { RpcClients, type GetClusterMapResponse } from '../../src/rpc'
import { logger } from '../../src/util/log'
import { HEAP_FLAGS, withMallocTuning } from '../../src/util'
import { POLYFS, isMounted, waitFor, type Cleanup } from './mount'

export const SECRET = 'test-secret-0123456789'

/** A random port range per test process, so that runs overlapping on one machine rarely
 * collide; within a process each cluster takes the next 40 ports. */
let nextPort = 20_000 + Math.floor(Math.random() * 1_000) * 40

export interface Proc {
  readonly name: string
  readonly address: string
  readonly logFile: string
  proc: ChildProcess | null
  /** Starts (or restarts) the process; resolves once it is running (not necessarily ready). */
  start(): void
  /** SIGTERM and wait (clean stop). */
  stop(): Promise<void>
  /** kill -9 and wait. */
  kill9(): Promise<void>
  signal(sig: NodeJS.Signals): void
  alive(): boolean
  log(): string
}

export interface Cluster {
  readonly root: string
  readonly waypoints: Proc[]
  readonly nodes: Proc[]
  readonly clients: RpcClients
  /** Adds (does not start) node i+1 on 127.0.0.(11+i); `env` adds to its environment. */
  addNode(extra?: string[], env?: NodeJS.ProcessEnv): Proc
  /** The address node i+1 listens on (known before it starts). */
  nodeAddress(i: number): string
  /** The cluster map from the master leader (through the waypoints); null when none answers. */
  map(): Promise<GetClusterMapResponse | null>
  /** Waits until the map satisfies `cond`. */
  waitMap(cond: (m: GetClusterMapResponse) => boolean, timeoutMs: number, what: string): Promise<GetClusterMapResponse>
  /** Adds (does not start) a `polyfs plugin` process as the next node: its own socket, mount
   * and data under the test dir, outside Docker (a simulated Docker host). */
  addPlugin(env?: NodeJS.ProcessEnv): PluginProc
  /** A client mount (`polyfs mount --waypoints`) at a new directory. */
  mount(extra?: string[], env?: NodeJS.ProcessEnv): Promise<{ mnt: string; proc: Proc }>
  cleanup(): Promise<void>
}

export interface PluginProc extends Proc {
  readonly socket: string
  readonly mountpoint: string
  readonly dataDir: string
}

function makeProc(name: string, address: string, logFile: string, args: () => string[], env: NodeJS.ProcessEnv): Proc {
  const p: Proc = {
    name,
    address,
    logFile,
    proc: null,
    start() {
      const out = openSync(logFile, 'a')
      p.proc = spawn(process.execPath, [...HEAP_FLAGS, POLYFS, ...args()], { stdio: ['ignore', out, out], env: withMallocTuning(env) })
    },
    async stop() {
      const c = p.proc
      if (!c || c.exitCode !== null || c.signalCode !== null) return
      const done = new Promise((r) => c.once('exit', r))
      c.kill('SIGCONT')
      c.kill('SIGTERM')
      const timer = setTimeout(() => c.kill('SIGKILL'), 10_000)
      await done
      clearTimeout(timer)
    },
    async kill9() {
      const c = p.proc
      if (!c || c.exitCode !== null || c.signalCode !== null) return
      const done = new Promise((r) => c.once('exit', r))
      c.kill('SIGKILL')
      await done
    },
    signal(sig) {
      p.proc?.kill(sig)
    },
    alive() {
      return !!p.proc && p.proc.exitCode === null && p.proc.signalCode === null
    },
    log() {
      try {
        return readFileSync(logFile, 'utf8')
      } catch {
        return ''
      }
    },
  }
  return p
}

export interface ClusterOptions {
  readonly waypoints?: number
  /** Extra flags for every node (e.g. ['--down-after', '2']). */
  readonly nodeArgs?: string[]
}

/** Creates the waypoints (started) and no nodes; add and start nodes with addNode(). */
export function startCluster(t: Cleanup, o: ClusterOptions = {}): Cluster {
  const root = mkdtempSync(path.join(tmpdir(), 'polyfs-cluster-'))
  chmodSync(root, 0o755)
  const env = { ...process.env, POLYFS_SECRET: SECRET }
  const base = nextPort
  nextPort += 40
  const waypoints: Proc[] = []
  for (let i = 0; i < (o.waypoints ?? 1); i++) {
    const address = `127.0.0.${2 + i}:${base + i}`
    const w = makeProc(`waypoint-${i + 1}`, address, path.join(root, `waypoint-${i + 1}.log`), () => ['waypoint', '--listen', address, '--log-level', 'debug'], env)
    w.start()
    waypoints.push(w)
  }
  const wlist = waypoints.map((w) => w.address).join(',')
  const nodes: Proc[] = []
  const mounts: { mnt: string; proc: Proc }[] = []
  const clients = new RpcClients({ secret: SECRET })
  const c: Cluster = {
    root,
    waypoints,
    nodes,
    clients,
    nodeAddress(i: number) {
      return `127.0.0.${11 + i}:${base + 10 + i}`
    },
    addNode(extra = [], extraEnv = {}) {
      const i = nodes.length
      const address = c.nodeAddress(i)
      const data = path.join(root, `node-${i + 1}`)
      const n = makeProc(`node-${i + 1}`, address, path.join(root, `node-${i + 1}.log`), () => ['node', '--data', data, '--listen', address, '--waypoints', wlist, '--log-level', 'debug', ...(o.nodeArgs ?? []), ...extra], { ...env, ...extraEnv })
      nodes.push(n)
      return n
    },
    addPlugin(extraEnv = {}) {
      const i = nodes.length
      const address = c.nodeAddress(i)
      const name = `plugin-${i + 1}`
      const socket = path.join(root, `${name}.sock`)
      const mountpoint = path.join(root, `${name}-mnt`)
      const dataDir = path.join(root, name)
      const pEnv = { ...env, SECRET, WAYPOINTS: wlist, ADVERTISE: address, LOG_LEVEL: 'debug', ...extraEnv }
      const n = makeProc(name, address, path.join(root, `${name}.log`), () => ['plugin', '--socket', socket, '--mountpoint', mountpoint, '--data', dataDir], pEnv)
      nodes.push(n)
      mounts.push({ mnt: mountpoint, proc: n })
      return Object.assign(n, { socket, mountpoint, dataDir })
    },
    async map() {
      for (const w of waypoints) {
        try {
          const m = await clients.waypoint(w.address).getMaster({}, { timeoutMs: 1000 })
          if (!m.known || !m.leader?.address) continue
          const map = await clients.master(m.leader.address).getClusterMap({}, { timeoutMs: 1000 })
          if (!map.error?.code) return map
        } catch {
          // try the next waypoint
        }
      }
      return null
    },
    async waitMap(cond, timeoutMs, what) {
      let last: GetClusterMapResponse | null = null
      await waitFor(
        async () => {
          last = await c.map()
          return last !== null && cond(last)
        },
        timeoutMs,
        what,
      ).catch((err: Error) => {
        throw new Error(`${err.message}; last map: ${JSON.stringify(last, (_k, v) => (v?.type === 'Buffer' ? '<bytes>' : v))}`)
      })
      return last as unknown as GetClusterMapResponse
    },
    async mount(extra = [], extraEnv = {}) {
      const mnt = path.join(root, `mnt-${mounts.length + 1}`)
      mkdirSync(mnt)
      const proc = makeProc(`mount-${mounts.length + 1}`, '', path.join(root, `mount-${mounts.length + 1}.log`), () => ['mount', '--waypoints', wlist, mnt, '--log-level', 'debug', ...extra], { ...env, ...extraEnv })
      proc.start()
      mounts.push({ mnt, proc })
      await waitFor(() => !proc.alive() || isMounted(mnt), 30_000, `mount at ${mnt}`)
      if (!proc.alive()) throw new Error(`mount exited:\n${proc.log()}`)
      return { mnt, proc }
    },
    async cleanup() {
      for (const m of mounts) {
        await m.proc.stop()
        if (isMounted(m.mnt)) spawnSync('fusermount', ['-uz', m.mnt])
      }
      await Promise.all([...nodes, ...waypoints].map((p) => p.stop()))
      clients.close()
      if (process.env.POLYFS_KEEP_TEST_DIRS) return
      rmSync(root, { recursive: true, force: true })
    },
  }
  t.after(() => c.cleanup())
  return c
}

/** A cluster with `n` nodes started (it waits for nothing: see fullyReplicated). */
export function startNodes(t: Cleanup, n: number, o: ClusterOptions = {}): Cluster {
  const c = startCluster(t, o)
  for (let i = 0; i < n; i++) c.addNode().start()
  return c
}

/** Waits until the data region has `replicas` voters and no learners. */
export function fullyReplicated(c: Cluster, replicas = 3): Promise<GetClusterMapResponse> {
  return c.waitMap((m) => (m.regions?.[0]?.voters ?? []).length === replicas && (m.regions?.[0]?.learners ?? []).length === 0, 60_000, `${replicas} replicas`)
}

/** Prints the tail of every process log (for a failing test's output). */
/** A ClusterKV client of the cluster, connected, closed by t.after. */
export async function connectKV(t: Cleanup, c: Cluster): Promise<ClusterKV> {
  const kv = new ClusterKV({ clients: c.clients, waypoints: c.waypoints.map((w) => w.address), logger: logger('test') })
  t.after(() => kv.close())
  await kv.connect()
  return kv
}

export function dumpLogs(c: Cluster, lines = 40): string {
  return [...c.waypoints, ...c.nodes]
    .map((p) => `---- ${p.name} (${p.address})\n${p.log().split('\n').slice(-lines).join('\n')}`)
    .join('\n')
}
