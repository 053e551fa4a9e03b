// config.json, the managed plugin's manifest, checked against Docker's Plugin Config v1 schema
// (the keys docs/plugin.md lists, from https://docs.docker.com/engine/extend/config/). dockerd
// decodes it with Go's encoding/json, which silently ignores a key it does not know: a `mount`
// instead of `mounts` would give a plugin without its data directory and no error at all.
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import path from 'node:path'
import { test } from 'node:test'
import { PLUGIN_ENV } from '../../src/cli/plugin'
import { HEAP_FLAGS, MALLOC_TUNABLES } from '../../src/util'
import { REPO } from '../helpers/mount'

type Shape = 'string' | 'boolean' | 'number' | 'string[]' | { [key: string]: Shape } | [{ [key: string]: Shape }]

const settable = 'string[]' as const
/** Every key Plugin Config v1 defines (rootfs and the digest are written by `docker plugin create`). */
const SCHEMA: { [key: string]: Shape } = {
  description: 'string',
  documentation: 'string',
  entrypoint: 'string[]',
  workdir: 'string',
  interface: { types: 'string[]', socket: 'string', protocolscheme: 'string' },
  network: { type: 'string' },
  mounts: [{ name: 'string', description: 'string', settable, source: 'string', destination: 'string', type: 'string', options: 'string[]' }],
  env: [{ name: 'string', description: 'string', settable, value: 'string' }],
  args: { name: 'string', description: 'string', settable, value: 'string[]' },
  linux: { capabilities: 'string[]', allowAllDevices: 'boolean', devices: [{ name: 'string', description: 'string', settable, path: 'string' }] },
  propagatedMount: 'string',
  ipcHost: 'boolean',
  pidHost: 'boolean',
  user: { uid: 'number', gid: 'number' },
}

/** Every place `value` departs from `shape`, as "path: problem" lines. */
function check(value: unknown, shape: Shape, where: string): string[] {
  if (typeof shape === 'string') {
    if (shape === 'string[]') return Array.isArray(value) && value.every((v) => typeof v === 'string') ? [] : [`${where}: expected an array of strings`]
    return typeof value === shape ? [] : [`${where}: expected a ${shape}`]
  }
  if (Array.isArray(shape)) {
    if (!Array.isArray(value)) return [`${where}: expected an array`]
    return value.flatMap((v, i) => check(v, shape[0], `${where}[${i}]`))
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return [`${where}: expected an object`]
  const out: string[] = []
  for (const [k, v] of Object.entries(value)) {
    if (!(k in shape)) {
      const near = Object.keys(shape).find((s) => s.toLowerCase().startsWith(k.toLowerCase().slice(0, 4)))
      out.push(`${where}.${k}: not a Plugin Config v1 key${near ? ` (did you mean "${near}"?)` : ''}`)
      continue
    }
    out.push(...check(v, shape[k], `${where}.${k}`))
  }
  return out
}

const manifest = () => JSON.parse(readFileSync(path.join(REPO, 'config.json'), 'utf8'))

test('config.json: only Plugin Config v1 keys, with the right types', () => {
  assert.deepEqual(check(manifest(), SCHEMA, 'config'), [])
})

test('config.json: the checker catches misspelled and mistyped keys', () => {
  const m = manifest()
  m.mount = m.mounts
  delete m.mounts
  m.linux.capabilites = ['CAP_SYS_ADMIN']
  m.propagatedmount = '/mnt/polyfs'
  m.network = 'host'
  m.env[0].settable = 'value'
  const problems = check(m, SCHEMA, 'config')
  assert.ok(problems.includes('config.mount: not a Plugin Config v1 key (did you mean "mounts"?)'), problems.join('\n'))
  assert.ok(problems.some((p) => p.startsWith('config.linux.capabilites: not a Plugin Config v1 key')))
  assert.ok(problems.some((p) => p.startsWith('config.propagatedmount: not a Plugin Config v1 key')))
  assert.ok(problems.includes('config.network: expected an object'))
  assert.ok(problems.includes('config.env[0].settable: expected an array of strings'))
})

test('config.json: what PolyFS needs from Docker, and the settings docs/plugin.md documents', () => {
  const m = manifest()
  assert.deepEqual(m.interface.types, ['docker.volumedriver/1.0'])
  assert.equal(m.interface.socket, 'polyfs.sock')
  assert.equal(m.network.type, 'host', 'nodes reach each other on the host network')
  assert.equal(m.propagatedMount, '/mnt/polyfs', 'the FUSE mount is shared with the host from here')
  assert.ok(m.linux.capabilities.includes('CAP_SYS_ADMIN'), 'mounting FUSE needs CAP_SYS_ADMIN')
  assert.ok(m.linux.devices.some((d: { path: string }) => d.path === '/dev/fuse'))
  assert.deepEqual(m.entrypoint.slice(-2), ['/opt/polyfs/bin/polyfs', 'plugin'])
  assert.equal(m.entrypoint[0], '/usr/bin/tini', 'PID 1 reaps children')
  // The heap setting every PolyFS process starts with (src/util/heap.ts): here, and in the
  // first line of bin/polyfs for a node or mount started by hand.
  const nodeAt = m.entrypoint.indexOf('/usr/bin/node')
  assert.deepEqual(m.entrypoint.slice(nodeAt + 1, -2), [...HEAP_FLAGS], 'the plugin starts node with HEAP_FLAGS')
  const shebang = readFileSync(path.join(REPO, 'bin', 'polyfs'), 'utf8').split('\n')[0]
  assert.equal(shebang, `#!/usr/bin/env -S node ${HEAP_FLAGS.join(' ')}`, 'bin/polyfs starts node with HEAP_FLAGS')
  const data = m.mounts.find((x: { name: string }) => x.name === 'data')
  assert.ok(data, 'a mount named data')
  assert.equal(data.destination, '/var/lib/polyfs')
  assert.equal(data.type, 'bind')
  assert.ok(data.settable.includes('source'), 'the host directory can be chosen: docker plugin set polyfs data.source=...')
  assert.ok(!data.source.startsWith('/var/lib/docker'), 'node data never lives under /var/lib/docker')
  const env = Object.fromEntries(m.env.map((e: { name: string; value: string; settable: string[] }) => [e.name, e]))
  assert.deepEqual(Object.keys(env).sort(), Object.keys(PLUGIN_ENV).sort(), 'the env the manifest declares is the env `polyfs plugin` reads')
  for (const e of Object.values(env) as { name: string; settable: string[] }[]) assert.deepEqual(e.settable, ['value'], `${e.name} is settable`)
  assert.equal(env.GLIBC_TUNABLES?.value, MALLOC_TUNABLES, 'the plugin starts with the malloc settings every PolyFS process gets')
  const doc = readFileSync(path.join(REPO, 'docs', 'plugin.md'), 'utf8')
  for (const e of Object.values(env) as { name: string; value: string }[]) {
    const row = doc.split('\n').find((l) => l.startsWith(`| \`${e.name}\``))
    assert.ok(row, `docs/plugin.md has a row for ${e.name}`)
    assert.ok(row.includes(e.value === '' ? '(empty)' : `\`${e.value}\``), `docs/plugin.md gives ${e.name}'s default ${JSON.stringify(e.value)}: ${row}`)
  }
})
