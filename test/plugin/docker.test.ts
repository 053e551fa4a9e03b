// The real plugin under a real dockerd: `make plugin` from the tree, `docker plugin create` and
// `enable`, volumes used by containers, a second host (a `polyfs plugin` process outside
// Docker, on its own loopback address) in the same cluster, a plugin restart under a running
// container, a crash of its worker, and a stack deployed on a one-node swarm. Starts its own dockerd when none runs.
// Everything stays on loopback: the plugin advertises 127.0.0.61, the second host 127.0.0.62.
import assert from 'node:assert/strict'
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import * as fs from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { test } from 'node:test'
import { POLYFS, REPO, isMounted, waitFor } from '../helpers/mount'
import { driverCall, driverOk } from '../helpers/volumedriver'

const PLUGIN = 'polyfs'
const IMAGE = 'polyfs-test-busybox'
const SECRET = 'docker-test-secret-42'

function sh(cmd: string, args: string[], opts: { ok?: boolean; timeoutMs?: number; input?: string } = {}): { code: number; out: string; err: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: opts.timeoutMs ?? 120_000, input: opts.input, cwd: REPO })
  const res = { code: r.status ?? -1, out: (r.stdout ?? '').trim(), err: (r.stderr ?? '').trim() }
  if (opts.ok !== false && res.code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${res.code}: ${res.err || res.out}${r.error ? ` (${r.error.message})` : ''}`)
  return res
}
const docker = (...args: string[]) => sh('docker', args).out
const dockerTry = (...args: string[]) => sh('docker', args, { ok: false })

interface Dockerd {
  /** Its log when this test started it. */
  log?: string
  /** Stops and starts it again (only when this test started it). */
  restart?: () => Promise<void>
}

/** Starts dockerd unless one answers; stopped again when the test ends. */
async function ensureDockerd(t: { after(fn: () => unknown): void }, dir: string): Promise<Dockerd> {
  if (dockerTry('info', '--format', '{{.ServerVersion}}').code === 0) return { log: process.env.POLYFS_DOCKERD_LOG }
  const logFile = path.join(dir, 'dockerd.log')
  let d: ChildProcess | null = null
  const stop = async () => {
    const p = d
    if (!p || p.exitCode !== null || p.signalCode !== null) return
    const done = new Promise((r) => p.once('exit', r))
    p.kill('SIGTERM')
    const timer = setTimeout(() => p.kill('SIGKILL'), 30_000)
    await done
    clearTimeout(timer)
  }
  const start = async () => {
    const log = fs.openSync(logFile, 'a')
    const p = spawn('dockerd', [], { stdio: ['ignore', log, log] })
    d = p
    await waitFor(() => p.exitCode === null && dockerTry('info', '--format', '{{.ServerVersion}}').code === 0, 60_000, 'dockerd')
  }
  t.after(stop)
  await start()
  return {
    log: logFile,
    async restart() {
      await stop()
      await start()
    },
  }
}

/** Waits until `docker exec` of `cmd` in container `c` prints `want` (or matches it). */
async function execUntil(c: string, cmd: string, want: RegExp, timeoutMs: number): Promise<string> {
  let last = ''
  await waitFor(
    () => {
      const r = dockerTry('exec', c, 'sh', '-c', cmd)
      last = `${r.out}${r.err}`
      return r.code === 0 && want.test(r.out)
    },
    timeoutMs,
    `${cmd} in ${c} to print ${want}`,
  ).catch((err: Error) => {
    throw new Error(`${err.message}; last output: ${last}`)
  })
  return last
}

/** The plugin's own log lines, from the dockerd log (ours, or POLYFS_DOCKERD_LOG). */
function pluginLog(dockerdLog: string | undefined): string {
  if (!dockerdLog) return '(dockerd was already running: its log has the plugin\'s lines, tagged plugin=<id>; set POLYFS_DOCKERD_LOG to show them here)'
  const id = dockerTry('plugin', 'inspect', PLUGIN, '--format', '{{.Id}}').out
  try {
    return fs.readFileSync(dockerdLog, 'utf8').split('\n').filter((l) => id && l.includes(`plugin=${id}`)).slice(-60).join('\n')
  } catch {
    return ''
  }
}

test('docker: the managed plugin with real containers, two hosts, a restart and a swarm stack', { timeout: 20 * 60_000 }, async (t) => {
  const dir = fs.mkdtempSync(path.join(tmpdir(), 'polyfs-docker-'))
  fs.chmodSync(dir, 0o755)
  const data = path.join(dir, 'plugin-data')
  fs.mkdirSync(data)
  const port = 27_000 + Math.floor(Math.random() * 1000) * 4
  const containers = new Set<string>()
  const volumes = new Set<string>()
  let hostB: ChildProcess | null = null
  let swarmMine = false
  let stack = ''
  t.after(async () => {
    if (stack) {
      dockerTry('stack', 'rm', stack)
      await waitFor(() => dockerTry('ps', '-aq', '--filter', `label=com.docker.stack.namespace=${stack}`).out === '', 60_000, 'stack gone').catch(() => undefined)
    }
    for (const c of containers) dockerTry('rm', '-f', c)
    for (const v of volumes) dockerTry('volume', 'rm', '-f', v)
    if (swarmMine) dockerTry('swarm', 'leave', '--force')
    dockerTry('plugin', 'disable', '-f', PLUGIN)
    dockerTry('plugin', 'rm', '-f', PLUGIN)
    if (hostB && hostB.exitCode === null) {
      const done = new Promise((r) => hostB?.once('exit', r))
      hostB.kill('SIGTERM')
      const timer = setTimeout(() => hostB?.kill('SIGKILL'), 15_000)
      await done
      clearTimeout(timer)
    }
    const mntB = path.join(dir, 'b-mnt')
    if (isMounted(mntB)) spawnSync('fusermount', ['-uz', mntB])
    if (!process.env.POLYFS_KEEP_TEST_DIRS) fs.rmSync(dir, { recursive: true, force: true })
  })
  const dockerd = await ensureDockerd(t, dir)

  // Build from the tree (the rootfs afresh; downloaded .debs stay cached) and create the plugin.
  fs.rmSync(path.join(REPO, 'plugin', 'rootfs'), { recursive: true, force: true })
  sh('make', ['-o', 'build', 'plugin', `PLUGIN_NAME=${PLUGIN}`], { timeoutMs: 600_000 })
  sh('make', ['test-image'], { timeoutMs: 300_000 })
  assert.match(docker('plugin', 'ls', '--format', '{{.Name}} {{.Enabled}}'), new RegExp(`^${PLUGIN}:latest false$`, 'm'))
  const rootfsMb = Number(sh('du', ['-sm', path.join(REPO, 'plugin', 'rootfs')]).out.split(/\s/)[0])
  t.diagnostic(`plugin rootfs: ${rootfsMb} MB`)
  docker('plugin', 'set', PLUGIN, `SECRET=${SECRET}`, 'ADVERTISE=127.0.0.61', `PORT=${port}`, 'DATA_REPLICAS=2', `data.source=${data}`)
  docker('plugin', 'enable', PLUGIN)
  try {
    // A volume, written by one container and read by another; listed, inspected, protected.
    const v1 = `pt-v1-${port}`
    volumes.add(v1)
    docker('volume', 'create', '-d', PLUGIN, v1)
    assert.match(docker('volume', 'ls', '--format', '{{.Driver}} {{.Name}}'), new RegExp(`^${PLUGIN}:latest ${v1}$`, 'm'))
    const info = JSON.parse(docker('volume', 'inspect', v1))[0]
    assert.equal(info.Scope, 'global')
    assert.equal(info.Status.health, 'healthy')
    assert.equal(info.Mountpoint, `/mnt/polyfs/volumes/${v1}`)
    docker('run', '--rm', '--network', 'none', '-v', `${v1}:/data`, IMAGE, 'sh', '-c', 'seq 1 20000 > /data/numbers && echo first > /data/note && sync')
    assert.equal(docker('run', '--rm', '--network', 'none', '-v', `${v1}:/data`, IMAGE, 'sh', '-c', 'cat /data/note; wc -l < /data/numbers'), 'first\n20000')
    const mounts = sh('grep', ['fuse.polyfs', '/proc/mounts']).out
    assert.match(mounts, /propagated-mount fuse\.polyfs/, 'the FUSE mount is visible on the host')

    // The plugin's HTTP (docs/operations.md): the node's readiness and status at HTTP (7480 on
    // the ADVERTISE host), the mount's own metrics at the next port, moved by the writes above.
    const ready = await fetch('http://127.0.0.61:7480/readyz', { signal: AbortSignal.timeout(5000) })
    assert.equal(ready.status, 200, await ready.clone().text())
    assert.equal(((await ready.json()) as { ok: boolean }).ok, true)
    const page = (await (await fetch('http://127.0.0.61:7480/api/status', { signal: AbortSignal.timeout(10_000) })).json()) as { healthy: boolean; nodes: { address: string }[] }
    assert.deepEqual(page.nodes.map((n) => n.address), [`127.0.0.61:${port}`])
    assert.equal((await fetch('http://127.0.0.61:7481/readyz', { signal: AbortSignal.timeout(5000) })).status, 200)
    const mountMetrics = await (await fetch('http://127.0.0.61:7481/metrics', { signal: AbortSignal.timeout(5000) })).text()
    const writes = mountMetrics.split('\n').find((l) => l.startsWith('polyfs_fuse_operations_total{') && l.includes('op="write"') && l.includes('result="ok"'))
    assert.ok(writes && Number(writes.split(' ').pop()) > 0, `the mount counted the containers' writes: ${writes}`)

    // Bad input through the docker CLI: the plugin's refusal reaches the user.
    const bad = dockerTry('volume', 'create', '-d', PLUGIN, '-o', 'size=1G', `pt-bad-${port}`)
    assert.notEqual(bad.code, 0)
    assert.match(bad.err, /unknown option "size"/)
    assert.ok(!docker('volume', 'ls', '-q').split('\n').includes(`pt-bad-${port}`))

    // In use: refused; after the container is gone: removed.
    const holder = `pt-holder-${port}`
    containers.add(holder)
    docker('run', '-d', '--name', holder, '--network', 'none', '-v', `${v1}:/data`, IMAGE, 'sleep', '3600')
    const inUse = dockerTry('volume', 'rm', v1)
    assert.notEqual(inUse.code, 0)
    assert.match(inUse.err, /in use/)

    // A second host: `polyfs plugin` outside Docker on 127.0.0.62, joined through this host's
    // waypoint. The volume set is one, and data written on one host is read on the other.
    const sockB = path.join(dir, 'b.sock')
    const mntB = path.join(dir, 'b-mnt')
    fs.mkdirSync(mntB)
    const logB = fs.openSync(path.join(dir, 'host-b.log'), 'a')
    hostB = spawn(process.execPath, [POLYFS, 'plugin', '--socket', sockB, '--mountpoint', mntB, '--data', path.join(dir, 'b-data')], {
      stdio: ['ignore', logB, logB],
      env: { ...process.env, SECRET, WAYPOINTS: `127.0.0.61:${port + 1}`, ADVERTISE: `127.0.0.62:${port + 2}`, LOG_LEVEL: 'debug' },
    })
    await waitFor(async () => fs.existsSync(sockB) && (await driverCall(sockB, 'VolumeDriver.List').then((r) => !r.body.Err, () => false)), 90_000, 'host B ready')
    const onB = (await driverOk(sockB, 'VolumeDriver.List')).Volumes.map((v: { Name: string }) => v.Name)
    assert.ok(onB.includes(v1), `host B lists ${v1}: ${onB}`)
    const pathB = (await driverOk(sockB, 'VolumeDriver.Mount', { Name: v1, ID: 'host-b-1' })).Mountpoint as string
    assert.equal(fs.readFileSync(path.join(pathB, 'note'), 'utf8'), 'first\n')
    const v2 = `pt-v2-${port}`
    volumes.add(v2)
    await driverOk(sockB, 'VolumeDriver.Create', { Name: v2 })
    const pathB2 = (await driverOk(sockB, 'VolumeDriver.Mount', { Name: v2, ID: 'host-b-2' })).Mountpoint as string
    const fd = fs.openSync(path.join(pathB2, 'from-b'), 'w')
    fs.writeSync(fd, 'written on host B')
    fs.fsyncSync(fd)
    fs.closeSync(fd)
    await driverOk(sockB, 'VolumeDriver.Unmount', { Name: v2, ID: 'host-b-2' })
    assert.ok(docker('volume', 'ls', '-q').split('\n').includes(v2), 'docker on host A lists the volume host B created')
    assert.equal(docker('run', '--rm', '--network', 'none', '-v', `${v2}:/data`, IMAGE, 'cat', '/data/from-b'), 'written on host B')
    await driverOk(sockB, 'VolumeDriver.Unmount', { Name: v1, ID: 'host-b-1' })

    // Restart of the plugin under a running container: its next read works or fails with a
    // clear error; after the container restarts (a new mount) everything fsynced is there.
    docker('exec', holder, 'sh', '-c', 'echo fsynced-before-restart > /data/durable && sync')
    docker('plugin', 'disable', '-f', PLUGIN)
    docker('plugin', 'enable', PLUGIN)
    const during = dockerTry('exec', holder, 'cat', '/data/durable')
    if (during.code === 0) assert.equal(during.out, 'fsynced-before-restart')
    else assert.match(during.err, /Transport endpoint is not connected|Software caused connection abort|Input\/output error|No such device/, `a clear error: ${during.err}`)
    t.diagnostic(`read in a running container across the plugin restart: ${during.code === 0 ? 'worked' : during.err}`)
    docker('restart', '-t', '1', holder)
    await execUntil(holder, 'cat /data/durable', /^fsynced-before-restart$/, 60_000)
    assert.equal(docker('exec', holder, 'sh', '-c', 'wc -l < /data/numbers'), '20000')
    // A crash of this host's node (the plugin's worker process): Docker would not restart a
    // dead plugin, so the plugin's supervisor starts the node again, and it keeps the FUSE mount
    // meanwhile: the running container's reads pause, they do not fail.
    // (node's own flags, HEAP_FLAGS, come before the script.)
    const workerOf = () => sh('pgrep', ['-f', '^/usr/bin/node( -[^ ]+)* /opt/polyfs/bin/polyfs plugin --worker'], { ok: false }).out.split('\n').filter(Boolean).map(Number)
    const [crashed] = workerOf()
    assert.ok(crashed > 0, 'the plugin runs its node in a worker')
    process.kill(crashed, 'SIGKILL')
    const t0 = Date.now()
    assert.equal(docker('exec', holder, 'sh', '-c', 'cat /data/durable && echo more >> /data/durable && sync && wc -l < /data/durable'), 'fsynced-before-restart\n2')
    t.diagnostic(`read and fsync in a running container across a crash of the node: worked, ${Date.now() - t0} ms`)
    await waitFor(() => workerOf().length === 1 && !workerOf().includes(crashed), 60_000, 'a new node')
    docker('rm', '-f', holder)
    containers.delete(holder)
    docker('volume', 'rm', v1)
    volumes.delete(v1)
    assert.ok(!docker('volume', 'ls', '-q').split('\n').includes(v1))
    assert.ok(!(await driverOk(sockB, 'VolumeDriver.List')).Volumes.some((v: { Name: string }) => v.Name === v1), 'gone on host B too')

    // dockerd restarts (the plugin with it): the volumes mount again, with their data.
    if (dockerd.restart) {
      await dockerd.restart()
      let out = ''
      await waitFor(() => {
        const r = dockerTry('run', '--rm', '--network', 'none', '-v', `${v2}:/data`, IMAGE, 'cat', '/data/from-b')
        out = r.code === 0 ? r.out : r.err
        return r.code === 0
      }, 90_000, 'a volume mounting after dockerd restarted').catch((err: Error) => {
        throw new Error(`${err.message}: ${out}`)
      })
      assert.equal(out, 'written on host B')
    } else {
      t.diagnostic('dockerd was already running: its restart is not tested here')
    }

    // A one-node swarm on loopback and a stack whose service keeps its data on a polyfs volume
    // across `docker service update --force` (a new task, a new container, the same data).
    const swarm = dockerTry('info', '--format', '{{.Swarm.LocalNodeState}}').out
    if (swarm !== 'active') {
      docker('swarm', 'init', '--advertise-addr', '127.0.0.1', '--listen-addr', '127.0.0.1:2377')
      swarmMine = true
    }
    stack = `pst${port}`
    const stackFile = path.join(dir, 'stack.yml')
    fs.writeFileSync(
      stackFile,
      [
        'version: "3.8"',
        'services:',
        '  app:',
        `    image: ${IMAGE}`,
        '    command: ["sh", "-c", "date +%s%N >> /data/starts && sync && sleep 3600"]',
        '    volumes:',
        '      - data:/data',
        '    deploy:',
        '      replicas: 1',
        'volumes:',
        '  data:',
        '    driver: polyfs',
        '',
      ].join('\n'),
    )
    docker('stack', 'deploy', '--resolve-image', 'never', '-c', stackFile, stack)
    volumes.add(`${stack}_data`)
    const task = (): string => dockerTry('ps', '-q', '--filter', `label=com.docker.swarm.service.name=${stack}_app`, '--filter', 'status=running').out.split('\n')[0] ?? ''
    await waitFor(() => task() !== '', 180_000, 'the stack task running')
    const first = task()
    await execUntil(first, 'wc -l < /data/starts', /^1$/, 60_000)
    assert.match(docker('volume', 'ls', '--format', '{{.Driver}} {{.Name}}'), new RegExp(`^${PLUGIN}:latest ${stack}_data$`, 'm'))
    docker('service', 'update', '--force', '--detach', `${stack}_app`)
    let second = ''
    await waitFor(
      () => {
        second = task()
        return second !== '' && second !== first
      },
      180_000,
      'a new task after service update --force',
    )
    await execUntil(second, 'wc -l < /data/starts', /^2$/, 60_000)
    dockerTry('stack', 'rm', stack)
    await waitFor(() => dockerTry('ps', '-aq', '--filter', `label=com.docker.stack.namespace=${stack}`).out === '', 120_000, 'stack removed')
    stack = ''
    await waitFor(() => dockerTry('volume', 'rm', `pst${port}_data`).code === 0, 60_000, 'stack volume removed')
    volumes.delete(`pst${port}_data`)
  } catch (err) {
    console.error(`---- plugin log\n${pluginLog(dockerd.log)}\n---- host B\n${(() => {
      try {
        return fs.readFileSync(path.join(dir, 'host-b.log'), 'utf8').split('\n').slice(-40).join('\n')
      } catch {
        return ''
      }
    })()}`)
    throw err
  }
})
