// The VolumeDriver API of `polyfs plugin` over its unix socket, with real nodes behind it:
// two plugin processes (two simulated Docker hosts, each a supervisor holding the socket and the mount, and its node in a worker, one loopback address each) in a cluster
// with two plain nodes. Every endpoint with good and bad input, refcounting by mount ID, a
// volume written through one host and read through the other, a dead FUSE mount and a killed
// plugin that come back, and Mount refused with a reason while the cluster is unreachable.
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import path from 'node:path'
import { test } from 'node:test'
import { dumpLogs, startCluster, type Cluster, type PluginProc } from '../helpers/cluster'
import { isMounted, waitFor } from '../helpers/mount'
import { driverCall, driverErr, driverOk } from '../helpers/volumedriver'

async function pluginReady(p: PluginProc): Promise<void> {
  await waitFor(() => !p.alive() || fs.existsSync(p.socket), 30_000, `${p.name} socket`)
  if (!p.alive()) throw new Error(`${p.name} exited:\n${p.log()}`)
  // List answers only once the node is in the cluster and the filesystem is mounted.
  await waitFor(async () => !p.alive() || (await driverCall(p.socket, 'VolumeDriver.List').then((r) => !r.body.Err, () => false)), 90_000, `${p.name} ready`)
  if (!p.alive()) throw new Error(`${p.name} exited:\n${p.log()}`)
}

/** Whether `pid` runs (an exited orphan may stay a zombie until something reaps it). */
function running(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'))
  } catch {
    return false
  }
}

const names = (list: { Name: string }[]) => list.map((v) => v.Name).sort()

test('plugin: the VolumeDriver API on two hosts of one cluster', async (t) => {
  const c: Cluster = startCluster(t)
  c.addNode().start()
  c.addNode().start()
  const a = c.addPlugin()
  const b = c.addPlugin()
  a.start()
  b.start()
  try {
    await pluginReady(a)
    await pluginReady(b)
    await c.waitMap((m) => (m.regions?.[0]?.voters ?? []).length === 3, 60_000, '3 replicas')

    // Handshake and scope.
    assert.deepEqual((await driverOk(a.socket, 'Plugin.Activate')).Implements, ['VolumeDriver'])
    assert.deepEqual((await driverOk(a.socket, 'VolumeDriver.Capabilities')).Capabilities, { Scope: 'global' })

    // Bad names and options: a clear Err, and nothing is created.
    const badNames = ['', '../etc', 'a/b', 'a\u0000b', 'x'.repeat(129), '.hidden', '..', 'sp ace', 'é']
    for (const Name of badNames) assert.match(await driverErr(a.socket, 'VolumeDriver.Create', { Name }), /volume name|required/, `name ${JSON.stringify(Name)}`)
    assert.match(await driverErr(a.socket, 'VolumeDriver.Create', { Name: 'v1', Opts: { size: '1G' } }), /unknown option "size"/)
    assert.match(await driverErr(a.socket, 'VolumeDriver.Create', { Name: 'v1', Opts: { mode: '999' } }), /mode=999/)
    assert.match(await driverErr(a.socket, 'VolumeDriver.Create', { Name: 'v1', Opts: { uid: '-1' } }), /uid=-1/)
    assert.match(await driverErr(a.socket, 'VolumeDriver.Create', { Name: 'v1', Opts: 'uid=1' }), /Opts must be an object/)
    assert.deepEqual((await driverOk(a.socket, 'VolumeDriver.List')).Volumes, [])
    assert.ok(!fs.existsSync(path.join(a.mountpoint, 'volumes', 'v1')))
    const malformed = await driverCall(a.socket, 'VolumeDriver.Create', '{"Name": ')
    assert.equal(malformed.status, 400)
    assert.match(malformed.body.Err, /bad request/)
    assert.equal((await driverCall(a.socket, 'VolumeDriver.Nope')).status, 404)

    // Create on A with options; B sees it (the volume set is cluster-wide).
    await driverOk(a.socket, 'VolumeDriver.Create', { Name: 'v1', Opts: { uid: '999', gid: '998', mode: '0750' } })
    await driverOk(b.socket, 'VolumeDriver.Create', { Name: 'v1' }) // again, from another host: fine
    assert.deepEqual(names((await driverOk(b.socket, 'VolumeDriver.List')).Volumes), ['v1'])
    const st = fs.statSync(path.join(a.mountpoint, 'volumes', 'v1'))
    assert.equal(st.uid, 999)
    assert.equal(st.gid, 998)
    assert.equal(st.mode & 0o7777, 0o750)
    const got = (await driverOk(b.socket, 'VolumeDriver.Get', { Name: 'v1' })).Volume
    assert.equal(got.Name, 'v1')
    assert.equal(got.Mountpoint, path.join(b.mountpoint, 'volumes', 'v1'))
    assert.ok(!Number.isNaN(Date.parse(got.CreatedAt)))
    assert.equal(got.Status.replicas, '3/3')
    assert.equal(got.Status.health, 'healthy')
    assert.deepEqual(got.Status.options, { gid: '998', mode: '0750', uid: '999' })
    assert.equal((await driverOk(b.socket, 'VolumeDriver.Path', { Name: 'v1' })).Mountpoint, got.Mountpoint)
    assert.match(await driverErr(b.socket, 'VolumeDriver.Get', { Name: 'nope' }), /no such volume: nope/)
    assert.match(await driverErr(b.socket, 'VolumeDriver.Path', { Name: 'nope' }), /no such volume/)
    assert.match(await driverErr(b.socket, 'VolumeDriver.Mount', { Name: 'nope', ID: 'x' }), /no such volume/)
    assert.match(await driverErr(b.socket, 'VolumeDriver.Mount', { Name: 'v1' }), /mount ID is required/)

    // Written through A, read through B.
    const pa = (await driverOk(a.socket, 'VolumeDriver.Mount', { Name: 'v1', ID: 'm1' })).Mountpoint as string
    assert.equal(pa, path.join(a.mountpoint, 'volumes', 'v1'))
    const data = Buffer.alloc(1 << 20, 7)
    const fd = fs.openSync(path.join(pa, 'data.bin'), 'w')
    fs.writeSync(fd, data)
    fs.fsyncSync(fd)
    fs.closeSync(fd)
    const pb = (await driverOk(b.socket, 'VolumeDriver.Mount', { Name: 'v1', ID: 'm2' })).Mountpoint as string
    assert.ok(fs.readFileSync(path.join(pb, 'data.bin')).equals(data), 'B reads what A wrote')
    const g2 = (await driverOk(a.socket, 'VolumeDriver.Get', { Name: 'v1' })).Volume
    assert.equal(g2.Status.mounts, 2)
    assert.equal(g2.Status.mountedHere, 1)
    assert.equal(g2.Status.size, 1 << 20)

    // Refcounting by mount ID: in use while any ID is mounted on any host.
    assert.match(await driverErr(b.socket, 'VolumeDriver.Remove', { Name: 'v1' }), /in use: mounted 2 time/)
    await driverOk(b.socket, 'VolumeDriver.Unmount', { Name: 'v1', ID: 'm2' })
    await driverOk(b.socket, 'VolumeDriver.Unmount', { Name: 'v1', ID: 'm2' }) // duplicate: tolerated
    await driverOk(b.socket, 'VolumeDriver.Unmount', { Name: 'v1', ID: 'never-mounted' }) // unbalanced: tolerated
    await driverOk(b.socket, 'VolumeDriver.Unmount', { Name: 'v1', ID: 'm1' }) // A's ID, from B: not B's mount
    assert.match(await driverErr(b.socket, 'VolumeDriver.Remove', { Name: 'v1' }), /in use: mounted 1 time/)
    await driverOk(a.socket, 'VolumeDriver.Mount', { Name: 'v1', ID: 'm1' }) // repeated Mount of one ID counts once
    await driverOk(a.socket, 'VolumeDriver.Mount', { Name: 'v1', ID: 'm3' })
    await driverOk(a.socket, 'VolumeDriver.Unmount', { Name: 'v1', ID: 'm1' })
    assert.match(await driverErr(b.socket, 'VolumeDriver.Remove', { Name: 'v1' }), /in use: mounted 1 time/)
    await driverOk(a.socket, 'VolumeDriver.Unmount', { Name: 'v1', ID: 'm3' })

    // Remove: gone everywhere; a new volume of the same name starts empty.
    await driverOk(b.socket, 'VolumeDriver.Remove', { Name: 'v1' })
    assert.match(await driverErr(b.socket, 'VolumeDriver.Remove', { Name: 'v1' }), /no such volume/)
    assert.deepEqual((await driverOk(a.socket, 'VolumeDriver.List')).Volumes, [])
    assert.match(await driverErr(a.socket, 'VolumeDriver.Get', { Name: 'v1' }), /no such volume/)
    assert.ok(!fs.existsSync(path.join(a.mountpoint, 'volumes', 'v1')))
    await driverOk(a.socket, 'VolumeDriver.Create', { Name: 'v1' })
    assert.deepEqual(fs.readdirSync(path.join(a.mountpoint, 'volumes', 'v1')), [])
    await waitFor(() => fs.readdirSync(path.join(a.mountpoint, '.polyfs-trash')).length === 0, 30_000, 'the removed data deleted')

    // A dead FUSE session (detached under the plugin) is noticed and mounted again.
    await driverOk(a.socket, 'VolumeDriver.Create', { Name: 'keep' })
    const pk = (await driverOk(a.socket, 'VolumeDriver.Mount', { Name: 'keep', ID: 'k1' })).Mountpoint as string
    fs.writeFileSync(path.join(pk, 'f'), 'kept')
    spawnSync('fusermount', ['-uz', a.mountpoint])
    assert.ok(!isMounted(a.mountpoint))
    const again = (await driverOk(a.socket, 'VolumeDriver.Mount', { Name: 'keep', ID: 'k2' })).Mountpoint as string
    assert.equal(fs.readFileSync(path.join(again, 'f'), 'utf8'), 'kept')

    // A crash of this host's node: kill -9 of the worker. The supervisor keeps the mount and
    // the socket and starts a new node; the mount never dies, it is served meanwhile by the
    // other nodes.
    const workerOf = (p: PluginProc) => Number(spawnSync('pgrep', ['-P', String(p.proc?.pid)], { encoding: 'utf8' }).stdout.trim().split('\n')[0])
    const worker = workerOf(a)
    assert.ok(worker > 0, 'the plugin runs its node in a worker')
    process.kill(worker, 'SIGKILL')
    assert.equal(fs.readFileSync(path.join(again, 'f'), 'utf8'), 'kept', 'read through the mount while the node is down')
    fs.writeFileSync(path.join(again, 'during'), 'written while the node was down')
    await waitFor(() => workerOf(a) > 0 && workerOf(a) !== worker, 30_000, 'a new node')
    assert.match(a.log(), /the node \(plugin worker\) died: starting it again/)
    await driverOk(a.socket, 'VolumeDriver.Mount', { Name: 'keep', ID: 'k4' })
    assert.equal(fs.readFileSync(path.join(pb, '..', 'keep', 'during'), 'utf8'), 'written while the node was down', 'host B sees it')

    // kill -9 of the whole plugin (the supervisor): its node shuts down by itself, the mount is
    // dead ("Transport endpoint is not connected"); started again, the plugin detaches the dead
    // session, mounts again, and the volumes are all there.
    const w2 = workerOf(a)
    await a.kill9()
    await waitFor(() => !running(w2), 30_000, 'the orphaned node to exit')
    // The kernel says ENOTCONN once the session is gone, ECONNABORTED while it is being torn down.
    assert.throws(() => fs.statSync(a.mountpoint), /ENOTCONN|ECONNABORTED/)
    a.start()
    await pluginReady(a)
    assert.deepEqual(names((await driverOk(a.socket, 'VolumeDriver.List')).Volumes), ['keep', 'v1'])
    const p3 = (await driverOk(a.socket, 'VolumeDriver.Mount', { Name: 'keep', ID: 'k3' })).Mountpoint as string
    assert.equal(fs.readFileSync(path.join(p3, 'f'), 'utf8'), 'kept')

    // The cluster unreachable from B: Mount refuses with the reason, it never pretends.
    for (const n of c.nodes) if (n !== b) await n.stop()
    const err = await driverErr(b.socket, 'VolumeDriver.Mount', { Name: 'keep', ID: 'late' })
    assert.match(err, /cluster (did not answer|is unreachable)/)
  } catch (err) {
    console.error(dumpLogs(c, 60))
    throw err
  }
})
