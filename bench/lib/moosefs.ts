// The 'moosefs' system: MooseFS (Debian's moosefs-* packages, 3.0.x) as a peer: a master and
// three chunkservers, goal 3 (every chunk on all three), and the FUSE client mfsmount.
// MooseFS chunkservers refuse a master on a 127.x address, so everything runs inside a network
// namespace made for this run (polyfs-bench-mfs-<random>) whose lo carries link-local
// addresses: the master on 169.254.77.1, chunkserver i on 169.254.77.1i. Each daemon is started
// as `nsenter --net=/run/netns/NAME CMD` (nsenter execs CMD: the PID we track is the daemon's),
// in the foreground (-f). nsenter changes only the network namespace, so the client's FUSE
// mount is visible in the harness's mount namespace.
//   WORK/moosefs/master         the master's data (metadata.mfs, changelogs, lock file)
//   WORK/moosefs/cs-1..3        each chunkserver's data path and its chunk directory (chunks/)
//   WORK/moosefs/*.cfg          the daemons' configuration files
//   WORK/moosefs/mnt            the mountpoint
// Teardown: SIGTERM the client, unmount, SIGTERM the chunkservers, then the master, then delete
// the namespace and the files.
import { randomBytes } from 'node:crypto'
import { promises as fsp } from 'node:fs'
import * as path from 'node:path'
import { Daemon, childPids, cmdline, fusermountU, isMounted, run, sleep, tailStderr, waitMounted } from './proc'
import type { PeerUp } from './gluster'
import { nodeProc, processesUp, type Proc } from './procstat'

export const MFS_GOAL = 3
const CHUNKSERVERS = 3
const MASTER_IP = '169.254.77.1'
const csIp = (i: number) => `169.254.77.${10 + i}`
const PREFIX = 16
/** Ports inside the namespace (nothing else listens there): the defaults. */
const MATOML_PORT = 9419
const MATOCS_PORT = 9420
const MATOCL_PORT = 9421
const CS_PORT = 9422
const READY_TIMEOUT_MS = 60_000
const POLL_MS = 500
const CMD_TIMEOUT_MS = 20_000
const MOUNT_TIMEOUT_MS = 60_000
const STOP_TIMEOUT_MS = 60_000
const NETNS_DIR = '/run/netns'
/** Debian's empty metadata file, copied as the new master's first metadata.mfs. */
const EMPTY_METADATA = '/var/lib/mfs/metadata.mfs.empty'

/** Run as root (the work dir is not readable by the mfs user) at nice 0 like every other system. */
const common = (dataPath: string) => ['WORKING_USER = root', 'WORKING_GROUP = root', `DATA_PATH = ${dataPath}`, 'NICE_LEVEL = 0', 'LOCK_MEMORY = 0']

/**
 * Make the namespace, start the master and the chunkservers in it, wait (bounded) until the
 * master lists three chunkservers, mount, and set goal 3 on the root. onStarted gets down()
 * before anything is created.
 */
export async function setupMoosefs(base: string, log: (s: string) => void, onStarted?: (down: () => Promise<void>) => void): Promise<PeerUp> {
  const ns = `polyfs-bench-mfs-${randomBytes(4).toString('hex')}`
  const nsPath = `${NETNS_DIR}/${ns}`
  const mnt = path.join(base, 'mnt')
  const inNs = (cmd: string, args: string[]) => ['--net=' + nsPath, cmd, ...args]
  const nsRun = (cmd: string, args: string[], timeoutMs = CMD_TIMEOUT_MS) => run('nsenter', inNs(cmd, args), timeoutMs)

  let nsMade = false
  /** `ip netns add` makes /run/netns (a bind mount of itself) the first time; undone after if it was not there. */
  let hadNetnsDir = true
  let master: Daemon | null = null
  const chunkservers: { name: string; d: Daemon }[] = []
  let client: Daemon | null = null
  let downed: Promise<void> | null = null

  /** ok: exit codes that are the daemon's normal answer to SIGTERM (mfsmount exits 1). */
  const stop = async (name: string, d: Daemon, ok: number[] = [0]) => {
    const code = await d.stop(STOP_TIMEOUT_MS)
    if (code !== null && !ok.includes(code)) log(`  ${name} (pid ${d.pid}) exited with ${code}: ${d.stderr.trim().split('\n').slice(-3).join(' | ')}`)
  }
  const down = () =>
    (downed ??= (async () => {
      const t0 = Date.now()
      if (client) await stop('mfsmount', client, [0, 1])
      await fusermountU(mnt)
      await Promise.all(chunkservers.map((c) => stop(c.name, c.d)))
      if (master) await stop('mfsmaster', master)
      if (nsMade) {
        const r = await run('ip', ['netns', 'delete', ns], CMD_TIMEOUT_MS)
        if (r.code !== 0) log(`  ip netns delete ${ns}: exit ${r.code}: ${r.stderr.trim()}`)
        await undoNetnsDir(hadNetnsDir, log)
      }
      if (await isMounted(mnt)) throw new Error(`${mnt} is still mounted; not removing ${base}`)
      await fsp.rm(base, { recursive: true, force: true })
      log(`  moosefs torn down in ${((Date.now() - t0) / 1000).toFixed(1)} s`)
    })())
  const fail = async (msg: string, d?: Daemon | null): Promise<never> => {
    const detail = d ? `; stderr: ${tailStderr(d)}` : ''
    await down().catch((err) => log(`  moosefs teardown: ${(err as Error).message}`))
    throw new Error(`${msg}${detail}`)
  }
  onStarted?.(down)
  // Whatever throws during setup (not only through fail()) tears down what was started.
  try {
    const t0 = Date.now()
    await fsp.mkdir(mnt, { recursive: true })
    // The namespace and its lo: 127.0.0.1 (mfsmount's local proxy for the mfs* tools) and the
    // link-local addresses the daemons use.
    if (downed) throw new Error('moosefs: torn down during setup')
    hadNetnsDir = await fsp.stat(NETNS_DIR).then(() => true, () => false)
    nsMade = true
    const add = await run('ip', ['netns', 'add', ns], CMD_TIMEOUT_MS)
    if (downed) {
      // Torn down while the namespace was being made: down() may have tried to delete it too early.
      await run('ip', ['netns', 'delete', ns], CMD_TIMEOUT_MS)
      await undoNetnsDir(hadNetnsDir, log)
      throw new Error('moosefs: torn down during setup')
    }
    if (add.code !== 0) {
      nsMade = false
      await fail(`moosefs: ip netns add ${ns}: exit ${add.code}: ${add.stderr.trim()}`)
    }
    for (const args of [['link', 'set', 'lo', 'up'], ...[MASTER_IP, ...[1, 2, 3].map(csIp)].map((ip) => ['addr', 'add', `${ip}/${PREFIX}`, 'dev', 'lo'])]) {
      const r = await run('ip', ['-n', ns, ...args], CMD_TIMEOUT_MS)
      if (r.code !== 0) await fail(`moosefs: ip -n ${ns} ${args.join(' ')}: exit ${r.code}: ${r.stderr.trim()}`)
    }

    // The master.
    const mdata = path.join(base, 'master')
    await fsp.mkdir(mdata, { recursive: true })
    await fsp.copyFile(EMPTY_METADATA, path.join(mdata, 'metadata.mfs'))
    await fsp.writeFile(path.join(base, 'mfsexports.cfg'), '*\t/\trw,alldirs,admin,maproot=0:0\n*\t.\trw\n')
    await fsp.writeFile(path.join(base, 'mfstopology.cfg'), '')
    await fsp.writeFile(
      path.join(base, 'mfsmaster.cfg'),
      [
        ...common(mdata),
        `EXPORTS_FILENAME = ${path.join(base, 'mfsexports.cfg')}`,
        `TOPOLOGY_FILENAME = ${path.join(base, 'mfstopology.cfg')}`,
        `MATOML_LISTEN_HOST = ${MASTER_IP}`,
        `MATOML_LISTEN_PORT = ${MATOML_PORT}`,
        `MATOCS_LISTEN_HOST = ${MASTER_IP}`,
        `MATOCS_LISTEN_PORT = ${MATOCS_PORT}`,
        `MATOCL_LISTEN_HOST = ${MASTER_IP}`,
        `MATOCL_LISTEN_PORT = ${MATOCL_PORT}`,
      ].join('\n') + '\n',
    )
    if (downed) throw new Error('moosefs: torn down during setup')
    master = new Daemon('nsenter', inNs('mfsmaster', ['-f', '-c', path.join(base, 'mfsmaster.cfg')]))
    const m = master
    // The chunkservers start once the master answers (one that finds no master retries only
    // after MASTER_RECONNECTION_DELAY, 5 s).
    for (;;) {
      if (m.child.exitCode !== null || m.child.signalCode !== null) await fail(`moosefs: mfsmaster (pid ${m.pid}) exited during setup (${m.child.exitCode ?? m.child.signalCode})`, m)
      const r = await nsRun('mfscli', ['-H', MASTER_IP, '-P', String(MATOCL_PORT), '-n', '-s', '|', '-SIG'])
      if (r.code === 0) break
      if (Date.now() - t0 > READY_TIMEOUT_MS) await fail(`moosefs: mfsmaster not answering after ${READY_TIMEOUT_MS / 1000} s: ${(r.stderr || r.stdout).trim().split('\n').pop()}`, m)
      await sleep(POLL_MS)
    }

    // The chunkservers, each with its own config, data path and chunk directory.
    for (let i = 1; i <= CHUNKSERVERS; i++) {
      const dir = path.join(base, `cs-${i}`)
      const chunks = path.join(dir, 'chunks')
      await fsp.mkdir(chunks, { recursive: true })
      await fsp.writeFile(path.join(dir, 'mfshdd.cfg'), chunks + '\n')
      await fsp.writeFile(
        path.join(dir, 'mfschunkserver.cfg'),
        [
          ...common(dir),
          `HDD_CONF_FILENAME = ${path.join(dir, 'mfshdd.cfg')}`,
          `MASTER_HOST = ${MASTER_IP}`,
          `MASTER_PORT = ${MATOCS_PORT}`,
          `BIND_HOST = ${csIp(i)}`,
          `CSSERV_LISTEN_HOST = ${csIp(i)}`,
          `CSSERV_LISTEN_PORT = ${CS_PORT}`,
        ].join('\n') + '\n',
      )
      if (downed) throw new Error('moosefs: torn down during setup')
      chunkservers.push({ name: `mfschunkserver cs-${i}`, d: new Daemon('nsenter', inNs('mfschunkserver', ['-f', '-c', path.join(dir, 'mfschunkserver.cfg')])) })
    }
    log(`  netns ${ns}: mfsmaster ${MASTER_IP} (pid ${master.pid}), ${chunkservers.map((c, i) => `cs-${i + 1} ${csIp(i + 1)} pid ${c.d.pid}`).join(', ')}`)

    // Ready: the master lists three chunkservers.
    let what = ''
    for (;;) {
      for (const d of [master, ...chunkservers.map((c) => c.d)]) {
        if (d.child.exitCode !== null || d.child.signalCode !== null) await fail(`moosefs: pid ${d.pid} exited during setup (${d.child.exitCode ?? d.child.signalCode})`, d)
      }
      const r = await nsRun('mfscli', ['-H', MASTER_IP, '-P', String(MATOCL_PORT), '-n', '-s', '|', '-SCS'])
      const n = r.code === 0 ? countChunkservers(r.stdout) : 0
      what = r.code === 0 ? `${n} chunkservers connected` : (r.stderr || r.stdout).trim().split('\n').pop() ?? `mfscli exit ${r.code}`
      if (n >= CHUNKSERVERS) break
      if (Date.now() - t0 > READY_TIMEOUT_MS) await fail(`moosefs not ready after ${READY_TIMEOUT_MS / 1000} s (${what})`, master)
      await sleep(POLL_MS)
    }
    log(`  moosefs master and chunkservers ready in ${((Date.now() - t0) / 1000).toFixed(1)} s (${what})`)

    // The client, in the foreground, at nice 0 like the others (its default is -19).
    if (downed) throw new Error('moosefs: torn down during setup')
    client = new Daemon('nsenter', inNs('mfsmount', [mnt, '-f', '-H', MASTER_IP, '-P', String(MATOCL_PORT), '-o', 'mfsnice=0']))
    try {
      await waitMounted(mnt, client.child, MOUNT_TIMEOUT_MS)
    } catch (err) {
      await fail(`moosefs mount: ${(err as Error).message}`, client)
    }
    // Goal 3 on the (empty) root: every file created below it keeps a copy on each chunkserver.
    const goal = await nsRun('mfssetgoal', ['-r', String(MFS_GOAL), mnt])
    if (goal.code !== 0) await fail(`mfssetgoal -r ${MFS_GOAL}: exit ${goal.code}: ${(goal.stderr || goal.stdout).trim()}`, client)
    const got = await nsRun('mfsgetgoal', [mnt])
    if (got.code !== 0 || !new RegExp(`:\\s*${MFS_GOAL}\\s*$`, 'm').test(got.stdout)) await fail(`mfsgetgoal: goal is not ${MFS_GOAL}: ${(got.stdout || got.stderr).trim()}`, client)
    log(`  moosefs up in ${((Date.now() - t0) / 1000).toFixed(1)} s (goal ${MFS_GOAL})`)

    // The master forks a "data writer" that writes its change logs (CHANGELOG_SAVE_MODE 0): its
    // writes are the master's, so it is measured too.
    const writers: Proc[] = []
    if (master.pid !== undefined) {
      for (const c of await childPids(master.pid)) if ((await cmdline(c)).includes('mfsmaster')) writers.push({ name: 'mfsmaster data writer', pid: c, role: 'node' })
    }
    const procs: Proc[] = [...chunkservers.flatMap((c) => nodeProc(c.name, c.d.pid)), ...nodeProc('mfsmaster', master.pid), ...writers]
    return processesUp(mnt, { name: 'mfsmount (FUSE client)', pid: client.pid }, procs, MFS_GOAL, down)
  } catch (err) {
    await down().catch((e) => log(`  moosefs teardown: ${(e as Error).message}`))
    throw err
  }
}

/** Chunkserver lines of `mfscli -SCS` in plain text (one per server: it names the server's IP). */
function countChunkservers(out: string): number {
  return out.split('\n').filter((l) => /169\.254\.77\.\d+/.test(l) && /\|/.test(l)).length
}

/** Unmount and remove /run/netns if `ip netns add` made it for us and no namespace is left in it. */
async function undoNetnsDir(hadIt: boolean, log: (s: string) => void): Promise<void> {
  if (hadIt) return
  const left = await fsp.readdir(NETNS_DIR).catch(() => null)
  if (left === null || left.length) return
  if (await isMounted(NETNS_DIR)) {
    const r = await run('umount', [NETNS_DIR], CMD_TIMEOUT_MS)
    if (r.code !== 0) {
      log(`  umount ${NETNS_DIR}: exit ${r.code}: ${r.stderr.trim()}`)
      return
    }
  }
  await fsp.rmdir(NETNS_DIR).catch(() => undefined)
}
