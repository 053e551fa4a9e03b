// The systems under test. Each is set up fresh before its rows and torn down right after.
//   polyfs  node bin/polyfs mount --local DATA MNT (a separate process; optionally --cpu-prof)
//   cluster a waypoint, 3 nodes (3 replicas) on loopback and a client mount (lib/cluster.ts)
//   gluster GlusterFS: glusterd, a replica-3 volume of 3 bricks on 127.0.0.2, glusterfs FUSE client (lib/gluster.ts)
//   moosefs MooseFS: master and 3 chunkservers (goal 3) in a network namespace, mfsmount (lib/moosefs.ts)
//   noop    node dist/bench/noopfs.js MNT: same binding and options, no work (our stack's limit)
//   bindfs  bindfs -f SRC MNT: a C FUSE passthrough onto the same disk
//   local   a plain directory on the same disk as PolyFS's data
import { promises as fsp } from 'node:fs'
import * as path from 'node:path'
import { setupCluster } from './cluster'
import { setupGluster } from './gluster'
import { setupMoosefs } from './moosefs'
import { Daemon, fusermountU, isMounted, waitMounted } from './proc'
import type { Proc } from './procstat'
import { HEAP_FLAGS, withMallocTuning } from '../../src/util'

export type SystemId = 'polyfs' | 'cluster' | 'gluster' | 'moosefs' | 'noop' | 'bindfs' | 'local'
/** In column order; also the default run order. */
export const SYSTEMS: { id: SystemId; label: string }[] = [
  { id: 'polyfs', label: 'PolyFS' },
  { id: 'cluster', label: 'PolyFS 3-node' },
  { id: 'gluster', label: 'GlusterFS r3' },
  { id: 'moosefs', label: 'MooseFS g3' },
  { id: 'noop', label: 'no-op FUSE' },
  { id: 'bindfs', label: 'bindfs' },
  { id: 'local', label: 'local disk' },
]

export interface Up {
  /** Directory the workloads run in. */
  dir: string
  pid?: number
  /** The processes that store the data (RSS and write amplification are measured on these). */
  nodes?: Proc[]
  /** A client process that stores nothing (its RSS is shown, without a target). */
  client?: Proc | null
  /** Copies of each byte the nodes keep together. */
  replicas?: number
  /** Unmount, stop the process, remove the system's files. Safe to call twice. */
  down(): Promise<void>
}

const REPO = path.resolve(__dirname, '..', '..', '..')

export interface SetupOpts {
  work: string
  cpuProfDir?: string
  log: (s: string) => void
  /** Called with a teardown as soon as a multi-process setup has started something. */
  onStarted?: (down: () => Promise<void>) => void
}

async function mkEmpty(p: string): Promise<string> {
  await fsp.mkdir(p, { recursive: true })
  return p
}

/** Remove a directory tree, unless a mount is still live under it (never delete through a mount). */
export async function safeRm(p: string, mounts: string[]): Promise<void> {
  for (const m of mounts) if (await isMounted(m)) throw new Error(`${m} is still mounted; not removing ${p}`)
  await fsp.rm(p, { recursive: true, force: true })
}

async function daemonMount(name: string, d: Daemon, mnt: string, rmDirs: string[], log: (s: string) => void): Promise<Up> {
  let downed = false
  const down = async () => {
    if (downed) return
    downed = true
    const code = await d.stop(60_000)
    if (code !== 0 && code !== null) log(`  ${name} (pid ${d.pid}) exited with ${code}: ${d.stderr.trim().split('\n').slice(-3).join(' | ')}`)
    await fusermountU(mnt)
    for (const p of rmDirs) await safeRm(p, [mnt])
  }
  try {
    await waitMounted(mnt, d.child, 20_000)
  } catch (err) {
    await down()
    throw new Error(`${name}: ${(err as Error).message}; stderr: ${d.stderr.trim().slice(-500)}`)
  }
  return { dir: mnt, pid: d.pid, down }
}

export async function setup(id: SystemId, o: SetupOpts): Promise<Up> {
  const base = await mkEmpty(path.join(o.work, id))
  switch (id) {
    case 'polyfs': {
      const data = await mkEmpty(path.join(base, 'data'))
      const mnt = await mkEmpty(path.join(base, 'mnt'))
      const node = [...HEAP_FLAGS, ...(o.cpuProfDir ? ['--cpu-prof', `--cpu-prof-dir=${o.cpuProfDir}`] : [])]
      const d = new Daemon(process.execPath, [...node, path.join(REPO, 'bin', 'polyfs'), 'mount', '--local', data, mnt, '--log-level', 'warn'], withMallocTuning(process.env))
      const up = await daemonMount('polyfs', d, mnt, [base], o.log)
      // The one process is client and store at once.
      return d.pid === undefined ? up : { ...up, nodes: [{ name: 'polyfs mount --local', pid: d.pid, role: 'node' }], replicas: 1 }
    }
    case 'cluster':
      return setupCluster(base, o.log, o.onStarted, o.cpuProfDir)
    case 'gluster':
      return setupGluster(base, o.log, o.onStarted)
    case 'moosefs':
      return setupMoosefs(base, o.log, o.onStarted)
    case 'noop': {
      const mnt = await mkEmpty(path.join(base, 'mnt'))
      const d = new Daemon(process.execPath, [path.join(__dirname, '..', 'noopfs.js'), mnt])
      return daemonMount('noopfs', d, mnt, [base], o.log)
    }
    case 'bindfs': {
      const src = await mkEmpty(path.join(base, 'src'))
      const mnt = await mkEmpty(path.join(base, 'mnt'))
      // -f: stay in the foreground, so the PID we track is bindfs itself. Default (single-threaded).
      const d = new Daemon('bindfs', ['-f', src, mnt])
      return daemonMount('bindfs', d, mnt, [base], o.log)
    }
    case 'local': {
      const dir = await mkEmpty(path.join(base, 'dir'))
      return { dir, down: () => safeRm(base, []) }
    }
  }
}
