// The 'gluster' system: GlusterFS (Debian's glusterfs-server, 10.x) as a peer. One glusterd in
// the foreground (-N) with its own volfile, so its state, PID files and logs live under
// WORK/gluster instead of /var/lib/glusterd and /var/log/glusterfs, listening on 127.0.0.2
// only; a replica-3 volume of three bricks, all on 127.0.0.2 (GlusterFS refuses 127.0.0.1 and
// localhost as brick hosts; three bricks of one replica set on one host need `force`); and the
// FUSE client `glusterfs -N` that the workloads run in.
//   WORK/gluster/glusterd.vol   glusterd's volfile (working, run and logging directories here)
//   WORK/gluster/lib            glusterd's working directory (instead of /var/lib/glusterd)
//   WORK/gluster/run            its run directory (brick PID files) and its CLI socket
//   WORK/gluster/log            glusterd, brick, self-heal daemon, CLI and client logs
//   WORK/gluster/brick-1..3     the bricks (same disk as PolyFS's data)
//   WORK/gluster/mnt            the mountpoint
// glusterd starts the brick processes (glusterfsd) and the self-heal daemon itself; their PIDs
// come from `gluster volume status --xml`. Teardown: SIGTERM the client, unmount, `gluster
// volume stop`, SIGTERM glusterd; a brick or self-heal daemon still alive then is signalled by
// the PID glusterd reported, and only while its command line still names this run's directory.
//
// What 10.3 does not let us move: glusterd's port must be 24007 (it starts the bricks with
// `-s HOST` and no port, so they fetch their volfiles from HOST:24007); each brick's and the
// self-heal daemon's unix socket is in /var/run/gluster; and glusterd makes
// /var/run/gluster/snaps, /var/lib/glusterd/ss_brick and an empty
// /var/lib/glusterd/geo-replication/gsyncd_template.conf. Teardown removes those sockets (the
// ones named on our processes' command lines) and whichever of those paths did not exist
// before and are still empty.
import { randomBytes } from 'node:crypto'
import { Dirent, promises as fsp } from 'node:fs'
import * as path from 'node:path'
import { Daemon, canBind, cmdline, freePort, fusermountU, isMounted, pidAlive, run, sleep, stopForeign, tailFile, tailStderr, waitGone, waitMounted } from './proc'
import { nodeProc, processesUp, type ProcessesUp, type Proc } from './procstat'

export const GLUSTER_REPLICAS = 3
const HOST = '127.0.0.2'
const GLUSTERD_PORT = 24007
/** Bounds on every wait. */
const READY_TIMEOUT_MS = 60_000
const POLL_MS = 500
const CLI_TIMEOUT_MS = 60_000
const MOUNT_TIMEOUT_MS = 60_000
const STOP_TIMEOUT_MS = 60_000
const BRICK_STOP_TIMEOUT_MS = 20_000
/** Paths outside the work dir that glusterd creates; removed after it if they were not there before and are empty. Children first. */
const SYSTEM_PATHS = ['/var/lib/glusterd/geo-replication/gsyncd_template.conf', '/var/lib/glusterd/geo-replication', '/var/lib/glusterd/ss_brick', '/var/run/gluster/snaps']

/** What a peer system's setup returns (also MooseFS's). */
export type PeerUp = ProcessesUp

/** A brick or daemon line of `gluster volume status --xml`. */
interface StatusNode { hostname: string; path: string; status: number; pid: number }

function parseStatus(xml: string): StatusNode[] {
  const out: StatusNode[] = []
  const tag = (block: string, t: string) => new RegExp(`<${t}>([^<]*)</${t}>`).exec(block)?.[1] ?? ''
  for (const m of xml.matchAll(/<node>([\s\S]*?)<\/node>/g)) {
    const b = m[1]!
    out.push({ hostname: tag(b, 'hostname'), path: tag(b, 'path'), status: Number(tag(b, 'status')), pid: Number(tag(b, 'pid')) })
  }
  return out
}

const volfile = (base: string, basePort: number) => `volume management
    type mgmt/glusterd
    option working-directory ${base}/lib
    option run-directory ${base}/run
    option logging-directory ${base}/log
    option glusterd-sockfile ${base}/run/glusterd.socket
    option transport-type socket
    option transport.socket.bind-address ${HOST}
    option transport.socket.listen-port ${GLUSTERD_PORT}
    option transport.socket.keepalive-time 10
    option transport.socket.keepalive-interval 2
    option transport.socket.read-fail-log off
    option ping-timeout 0
    option event-threads 1
    option base-port ${basePort}
    option max-port ${basePort + 99}
end-volume
`

const exists = (p: string) => fsp.lstat(p).then(() => true, () => false)

/**
 * Start glusterd, create and start the volume, wait (bounded) until its three bricks and the
 * self-heal daemon are online, then mount it and wait until a file can be written. onStarted
 * gets down() before glusterd starts.
 */
export async function setupGluster(base: string, log: (s: string) => void, onStarted?: (down: () => Promise<void>) => void): Promise<PeerUp> {
  const logDir = path.join(base, 'log')
  const runDir = path.join(base, 'run')
  const mnt = path.join(base, 'mnt')
  const bricks = [1, 2, 3].map((i) => path.join(base, `brick-${i}`))
  const vol = `polyfsbench${randomBytes(3).toString('hex')}`
  const sock = path.join(runDir, 'glusterd.socket')
  const cli = (args: string[], timeoutMs = CLI_TIMEOUT_MS) =>
    run('gluster', [`--glusterd-sock=${sock}`, '--mode=script', `--log-file=${path.join(logDir, 'cli.log')}`, `--timeout=${Math.floor(timeoutMs / 1000)}`, ...args], timeoutMs + 5000)

  let glusterd: Daemon | null = null
  let client: Daemon | null = null
  let started = false
  /** PIDs of the bricks and the self-heal daemon, as glusterd reported them, and their unix sockets. */
  const spawned: number[] = []
  const sockets = new Set<string>()
  const preexisting = new Map<string, boolean>()
  let downed: Promise<void> | null = null

  /** Note a process glusterd started: its PID, and the socket its -S names. */
  const track = async (pid: number) => {
    if (!(pid > 1) || (glusterd && pid === glusterd.pid) || spawned.includes(pid)) return
    // Only a process whose command line names this run's directory (a brick path, a PID file).
    const cmd = await cmdline(pid)
    if (!cmd.includes(base)) return
    spawned.push(pid)
    const m = /(?:^| )-S (\S+\.socket)(?: |$)/.exec(cmd)
    if (m && /^\/(var\/)?run\/gluster\/[0-9a-f]+\.socket$/.test(m[1]!)) sockets.add(m[1]!)
  }
  // glusterd and glusterfs exit with the signal's number (15) after SIGTERM.
  const stop = async (name: string, d: Daemon) => {
    const code = await d.stop(STOP_TIMEOUT_MS)
    if (code !== 0 && code !== 15 && code !== null) log(`  ${name} (pid ${d.pid}) exited with ${code}: ${d.stderr.trim().split('\n').slice(-3).join(' | ')}`)
  }
  const down = () =>
    (downed ??= (async () => {
      const t0 = Date.now()
      if (client) await stop('glusterfs client', client)
      await fusermountU(mnt)
      // The bricks glusterd reported, and (if setup failed before that) those in its PID files.
      for (const p of await pidFiles(runDir)) await track(p)
      if (glusterd && started && glusterd.child.exitCode === null && glusterd.child.signalCode === null) {
        // glusterd stops the bricks and the self-heal daemon it started.
        const r = await cli(['volume', 'stop', vol, 'force'])
        if (r.code === 0) await waitGone(spawned, BRICK_STOP_TIMEOUT_MS)
        else log(`  gluster volume stop: exit ${r.code}: ${(r.stderr || r.stdout).trim().slice(-300)}`)
      }
      if (glusterd) await stop('glusterd', glusterd)
      // glusterd leaves its bricks running when it exits: any brick still alive (one started
      // while the volume stop raced it, say) is stopped by its PID.
      for (const p of await pidFiles(runDir)) await track(p)
      const left: number[] = []
      for (const p of spawned) if (await pidAlive(p)) left.push(p)
      if (left.length) {
        log(`  gluster: pids ${left.join(', ')} still running without glusterd; stopping them`)
        await stopForeign(left, base, BRICK_STOP_TIMEOUT_MS, log)
      }
      for (const s of sockets) {
        const st = await fsp.lstat(s).catch(() => null)
        if (st?.isSocket()) await fsp.unlink(s).catch(() => undefined)
      }
      for (const p of SYSTEM_PATHS) {
        if (preexisting.get(p) !== false) continue
        const st = await fsp.lstat(p).catch(() => null)
        if (!st) continue
        if (st.isDirectory()) await fsp.rmdir(p).catch(() => log(`  gluster: leaving ${p} (not empty)`))
        else if (st.isFile() && st.size === 0) await fsp.unlink(p).catch(() => undefined)
        else log(`  gluster: leaving ${p} (not empty)`)
      }
      if (await isMounted(mnt)) throw new Error(`${mnt} is still mounted; not removing ${base}`)
      await fsp.rm(base, { recursive: true, force: true })
      log(`  gluster torn down in ${((Date.now() - t0) / 1000).toFixed(1)} s`)
    })())
  const logTail = (f: string) => tailFile(path.join(logDir, f), 5)
  const fail = async (msg: string): Promise<never> => {
    const detail = [`glusterd log: ${await logTail('glusterd.log')}`]
    if (glusterd) detail.push(`glusterd stderr: ${tailStderr(glusterd)}`)
    await down().catch((err) => log(`  gluster teardown: ${(err as Error).message}`))
    throw new Error(`${msg}; ${detail.join('; ')}`)
  }
  onStarted?.(down)
  // Whatever throws during setup (not only through fail()) tears down what was started.
  try {
    const t0 = Date.now()
    for (const d of [path.join(base, 'lib'), runDir, logDir, mnt, ...bricks]) await fsp.mkdir(d, { recursive: true })
    if (!(await canBind(HOST, GLUSTERD_PORT))) await fail(`gluster: ${HOST}:${GLUSTERD_PORT} is in use (glusterd 10.3 must listen there: its bricks fetch their volfiles from that port)`)
    // Bricks take ports from base-port up; glusterd checks each one is free before using it.
    const basePort = await freePort(HOST, 30_000, 9_000)
    await fsp.writeFile(path.join(base, 'glusterd.vol'), volfile(base, basePort))
    for (const p of SYSTEM_PATHS) preexisting.set(p, await exists(p))

    if (downed) throw new Error('gluster: torn down during setup')
    glusterd = new Daemon('glusterd', ['-N', '-f', path.join(base, 'glusterd.vol'), '-l', path.join(logDir, 'glusterd.log'), '-L', 'WARNING'])
    const gd = glusterd
    const alive = async () => {
      if (gd.child.exitCode !== null || gd.child.signalCode !== null) await fail(`gluster: glusterd (pid ${gd.pid}) exited during setup (${gd.child.exitCode ?? gd.child.signalCode})`)
    }
    // glusterd answers the CLI once it listens on its socket.
    for (;;) {
      await alive()
      const r = await cli(['volume', 'list'], 10_000)
      if (r.code === 0) break
      if (Date.now() - t0 > READY_TIMEOUT_MS) await fail(`gluster: glusterd not answering after ${READY_TIMEOUT_MS / 1000} s: ${(r.stderr || r.stdout).trim().slice(-200)}`)
      await sleep(POLL_MS)
    }
    log(`  glusterd ${HOST}:${GLUSTERD_PORT} (pid ${gd.pid}) answering after ${((Date.now() - t0) / 1000).toFixed(1)} s`)

    const create = await cli(['volume', 'create', vol, 'replica', String(GLUSTER_REPLICAS), ...bricks.map((b) => `${HOST}:${b}`), 'force'])
    if (create.code !== 0) await fail(`gluster volume create: exit ${create.code}: ${(create.stderr || create.stdout).trim().slice(-300)}`)
    started = true
    const start = await cli(['volume', 'start', vol])
    if (start.code !== 0) await fail(`gluster volume start: exit ${start.code}: ${(start.stderr || start.stdout).trim().slice(-300)}; brick log: ${await logTail(path.join('bricks', `${bricks[0]!.slice(1).replace(/\//g, '-')}.log`))}`)

    // Wait for the three bricks and the self-heal daemon to be online with a PID.
    let nodes: StatusNode[] = []
    for (;;) {
      await alive()
      const r = await cli(['volume', 'status', vol, '--xml'], 10_000)
      if (r.code === 0) {
        nodes = parseStatus(r.stdout)
        for (const n of nodes) await track(n.pid)
        const up = nodes.filter((n) => n.hostname === HOST && n.status === 1 && n.pid > 0)
        const shd = nodes.filter((n) => n.hostname === 'Self-heal Daemon' && n.status === 1 && n.pid > 0)
        if (up.length === GLUSTER_REPLICAS && shd.length >= 1) break
      }
      if (Date.now() - t0 > READY_TIMEOUT_MS) await fail(`gluster: bricks not online after ${READY_TIMEOUT_MS / 1000} s: ${r.code === 0 ? JSON.stringify(nodes) : (r.stderr || r.stdout).trim().slice(-200)}`)
      await sleep(POLL_MS)
    }
    const brickNodes = nodes.filter((n) => n.hostname === HOST)
    const shd = nodes.find((n) => n.hostname === 'Self-heal Daemon')
    log(`  volume ${vol} started: ${brickNodes.map((b) => `${path.basename(b.path)} pid ${b.pid}`).join(', ')}, self-heal daemon pid ${shd?.pid}`)

    if (downed) throw new Error('gluster: torn down during setup')
    client = new Daemon('glusterfs', ['-N', `--volfile-server=${HOST}`, `--volfile-server-port=${GLUSTERD_PORT}`, `--volfile-id=${vol}`, `--log-file=${path.join(logDir, 'client.log')}`, '--log-level=WARNING', mnt])
    const cl = client
    try {
      await waitMounted(mnt, cl.child, MOUNT_TIMEOUT_MS)
    } catch (err) {
      await fail(`gluster mount: ${(err as Error).message}; client log: ${await logTail('client.log')}`)
    }
    // The mount can exist before the client has connected to the bricks: wait until a file can
    // be written and removed.
    const probe = path.join(mnt, '.polyfs-bench-probe')
    for (;;) {
      const w = await run('sh', ['-c', 'echo x > "$1" && rm "$1"', 'sh', probe], 10_000)
      if (w.code === 0) break
      if (cl.child.exitCode !== null || Date.now() - t0 > READY_TIMEOUT_MS + MOUNT_TIMEOUT_MS) await fail(`gluster mount not writable: ${w.stderr.trim()}; client log: ${await logTail('client.log')}`)
      await sleep(POLL_MS)
    }
    log(`  gluster up in ${((Date.now() - t0) / 1000).toFixed(1)} s`)

    const procs: Proc[] = [
      ...brickNodes.flatMap((b) => nodeProc(`glusterfsd ${path.basename(b.path)}`, b.pid)),
      ...nodeProc('glustershd (self-heal)', shd?.pid),
      ...nodeProc('glusterd', gd.pid),
    ]
    return processesUp(mnt, { name: 'glusterfs (FUSE client)', pid: cl.pid }, procs, GLUSTER_REPLICAS, down)
  } catch (err) {
    await down().catch((e) => log(`  gluster teardown: ${(e as Error).message}`))
    throw err
  }
}

/** Live PIDs in the *.pid files glusterd wrote under its run directory (a bounded walk). */
async function pidFiles(dir: string): Promise<number[]> {
  const out: number[] = []
  const walk = async (d: string, depth: number) => {
    if (depth > 4) return
    let ents: Dirent[]
    try {
      ents = await fsp.readdir(d, { withFileTypes: true })
    } catch {
      return
    }
    for (const e of ents) {
      const p = path.join(d, e.name)
      if (e.isDirectory()) await walk(p, depth + 1)
      else if (e.name.endsWith('.pid')) {
        const n = Number((await fsp.readFile(p, 'utf8').catch(() => '')).trim())
        if (Number.isInteger(n) && n > 1 && (await pidAlive(n))) out.push(n)
      }
    }
  }
  await walk(dir, 0)
  return out
}
