// The 'cluster' system: a waypoint and 3 nodes on loopback addresses (3 replicas per region),
// and a client mount (`polyfs mount --waypoints`, stores nothing) that the workloads run in.
// Every piece is its own process started with Daemon, so teardown signals only those PIDs.
//   WORK/cluster/node-1..3   the nodes' data dirs
//   WORK/cluster/mnt         the mountpoint
import { randomBytes } from 'node:crypto'
import { promises as fsp } from 'node:fs'
import * as path from 'node:path'
import { Daemon, freePort, fusermountU, isMounted, run, sleep, waitMounted } from './proc'
import { nodeProc, processesUp, type ProcessesUp } from './procstat'
import { HEAP_FLAGS, withMallocTuning } from '../../src/util'

const REPO = path.resolve(__dirname, '..', '..', '..')
const BIN = path.join(REPO, 'bin', 'polyfs')

export const CLUSTER_NODES = 3
const WAYPOINT_HOST = '127.0.0.2'
const nodeHost = (i: number) => `127.0.0.${10 + i}`
/** Bound on waiting for 3 master members and 3 region voters (bootstrap, joins, promotions). */
const READY_TIMEOUT_MS = 90_000
const READY_POLL_MS = 1000
const STATUS_TIMEOUT_MS = 10_000
const MOUNT_TIMEOUT_MS = 30_000
const STOP_TIMEOUT_MS = 60_000

export type ClusterUp = ProcessesUp

/** The part of `polyfs status --json` (the Picture, src/observe/picture.ts) readiness reads. */
interface StatusPicture { master?: { voters?: number[]; learners?: number[] }; regions?: { voters?: number[]; learners?: number[] }[] }

/** Ready means 3 master voters, and region 1 with 3 voters and no learners. */
function readiness(out: string): { ready: boolean; what: string } {
  const i = out.indexOf('{')
  if (i < 0) return { ready: false, what: 'no JSON from status' }
  let s: StatusPicture
  try {
    s = JSON.parse(out.slice(i)) as StatusPicture
  } catch {
    return { ready: false, what: 'unparsable status' }
  }
  const master = s.master?.voters?.length ?? 0
  const r = s.regions?.[0]
  const voters = r?.voters?.length ?? 0
  const learners = r?.learners?.length ?? 0
  const what = `master voters ${master}, region voters ${voters}, learners ${learners}`
  return { ready: master === CLUSTER_NODES && voters === CLUSTER_NODES && learners === 0, what }
}

/**
 * Start the waypoint and the nodes, wait (bounded) until the master group and the first region
 * have 3 voters each, then mount. onStarted gets down() as soon as the first process runs, so a
 * signal during setup can tear down what exists.
 */
export async function setupCluster(base: string, log: (s: string) => void, onStarted?: (down: () => Promise<void>) => void, cpuProfDir?: string): Promise<ClusterUp> {
  const env = withMallocTuning({ ...process.env, POLYFS_SECRET: randomBytes(16).toString('hex') })
  const mnt = path.join(base, 'mnt')
  await fsp.mkdir(mnt, { recursive: true })
  const waypoint = `${WAYPOINT_HOST}:${await freePort(WAYPOINT_HOST)}`
  let wp: Daemon | null = null
  const nodes: { name: string; d: Daemon }[] = []
  let mount: Daemon | null = null
  let downed: Promise<void> | null = null

  const stop = async (name: string, d: Daemon) => {
    const code = await d.stop(STOP_TIMEOUT_MS)
    if (code !== 0 && code !== null) log(`  ${name} (pid ${d.pid}) exited with ${code}: ${d.stderr.trim().split('\n').slice(-3).join(' | ')}`)
  }
  // Order: the client first (it flushes to the nodes), unmount, then the nodes, the waypoint,
  // and the files only once nothing is mounted.
  const down = () =>
    (downed ??= (async () => {
      if (mount) await stop('mount', mount)
      await fusermountU(mnt)
      await Promise.all(nodes.map((n) => stop(n.name, n.d)))
      if (wp) await stop('waypoint', wp)
      if (await isMounted(mnt)) throw new Error(`${mnt} is still mounted; not removing ${base}`)
      await fsp.rm(base, { recursive: true, force: true })
    })())
  const tail = (d: Daemon) => d.stderr.trim().slice(-400)
  const fail = async (msg: string): Promise<never> => {
    await down().catch((err) => log(`  cluster teardown: ${(err as Error).message}`))
    throw new Error(msg)
  }

  // --profile: the nodes and the client mount run under --cpu-prof (one file per process).
  // The heap setting every PolyFS process gets (src/util/heap.ts), and --profile's flags.
  const prof = [...HEAP_FLAGS, ...(cpuProfDir ? ['--cpu-prof', `--cpu-prof-dir=${cpuProfDir}`] : [])]
  wp = new Daemon(process.execPath, [BIN, 'waypoint', '--listen', waypoint, '--log-level', 'warn'], env)
  onStarted?.(down)
  for (let i = 1; i <= CLUSTER_NODES; i++) {
    const host = nodeHost(i)
    const listen = `${host}:${await freePort(host)}`
    const name = `node-${i}`
    nodes.push({ name, d: new Daemon(process.execPath, [...prof, BIN, 'node', '--data', path.join(base, name), '--listen', listen, '--waypoints', waypoint, '--log-level', 'warn'], env) })
  }
  log(`  waypoint ${waypoint} (pid ${wp.pid}), ${nodes.map((n) => `${n.name} pid ${n.d.pid}`).join(', ')}`)

  const t0 = Date.now()
  let what = ''
  let lastLog = t0
  for (;;) {
    for (const d of [wp, ...nodes.map((n) => n.d)]) {
      if (d.child.exitCode !== null || d.child.signalCode !== null) await fail(`cluster: pid ${d.pid} exited during setup (${d.child.exitCode ?? d.child.signalCode}): ${tail(d)}`)
    }
    const r = await run(process.execPath, [BIN, 'status', '--waypoints', waypoint, '--json'], STATUS_TIMEOUT_MS, env)
    const s = r.code === 0 ? readiness(r.stdout) : { ready: false, what: r.stderr.trim().split('\n').pop() ?? `status exit ${r.code}` }
    what = s.what
    if (s.ready) break
    if (Date.now() - t0 > READY_TIMEOUT_MS) await fail(`cluster not ready after ${READY_TIMEOUT_MS / 1000} s (${what})`)
    if (Date.now() - lastLog > 10_000) {
      log(`  waiting for the cluster: ${what}`)
      lastLog = Date.now()
    }
    await sleep(READY_POLL_MS)
  }
  log(`  cluster ready in ${((Date.now() - t0) / 1000).toFixed(1)} s (${what})`)

  mount = new Daemon(process.execPath, [...prof, BIN, 'mount', '--waypoints', waypoint, mnt, '--log-level', 'warn'], env)
  try {
    await waitMounted(mnt, mount.child, MOUNT_TIMEOUT_MS)
  } catch (err) {
    await fail(`cluster mount: ${(err as Error).message}; stderr: ${tail(mount)}`)
  }
  return processesUp(mnt, { name: 'mount (client)', pid: mount.pid }, nodes.flatMap((n) => nodeProc(n.name, n.d.pid)), CLUSTER_NODES, down)
}
