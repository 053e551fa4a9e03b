// src/util/log.ts in a child process (its stderr a pipe): JSON by default, pretty with
// POLYFS_LOG_FORMAT=pretty (no colours off a terminal); after setLogNode every line carries the
// node id, from loggers made before too; `component` stays; nothing is lost at process.exit().
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import path from 'node:path'
import { test } from 'node:test'

const LOG = path.resolve(__dirname, '../../src/util/log.js')
const LINES = 2000

function run(env: NodeJS.ProcessEnv): { code: number | null; stderr: string } {
  const script = `
    const { logger, setLogNode, setLogLevel } = require(${JSON.stringify(LOG)})
    setLogLevel('info')
    const early = logger('cli')
    early.info('before')
    setLogNode(7)
    early.info({ x: 1 }, 'after')
    logger('kv').warn('late child')
    for (let i = 0; i < ${LINES}; i++) early.info('line %d', i)
    early.error('last')
    process.exit(3)
  `
  const r = spawnSync(process.execPath, ['-e', script], { env: { PATH: process.env.PATH, ...env }, encoding: 'utf8', timeout: 20_000 })
  return { code: r.status, stderr: r.stderr }
}

test('log: JSON by default off a terminal; node id from setLogNode on, component kept; nothing lost at exit', () => {
  const r = run({})
  assert.equal(r.code, 3)
  const lines = r.stderr.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>)
  assert.equal(lines.length, LINES + 4)
  assert.equal(lines[0]?.msg, 'before')
  assert.equal(lines[0]?.component, 'cli')
  assert.equal('node' in (lines[0] ?? {}), false)
  assert.deepEqual([lines[1]?.msg, lines[1]?.node, lines[1]?.component, lines[1]?.x], ['after', 7, 'cli', 1])
  assert.deepEqual([lines[2]?.msg, lines[2]?.node, lines[2]?.component], ['late child', 7, 'kv'])
  assert.deepEqual([lines.at(-1)?.msg, lines.at(-1)?.node, lines.at(-1)?.level], ['last', 7, 50])
  // POLYFS_LOG_FORMAT=json: the same JSON lines.
  const j = run({ POLYFS_LOG_FORMAT: 'json' }).stderr.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>)
  assert.deepEqual(j.map((l) => [l.msg, l.node, l.component]), lines.map((l) => [l.msg, l.node, l.component]))
})

test('log: POLYFS_LOG_FORMAT=pretty prints pretty lines, without colours off a terminal, none lost', () => {
  const r = run({ POLYFS_LOG_FORMAT: 'pretty' })
  assert.equal(r.code, 3)
  assert.doesNotMatch(r.stderr, /\x1b\[/)
  const lines = r.stderr.trim().split('\n')
  assert.equal(lines.length, LINES + 4)
  assert.match(lines[0] ?? '', /^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: cli: before$/)
  assert.match(lines[1] ?? '', /^\[[\d:.]+\] INFO: \[node 7\] cli: after \{"x":1\}$/)
  assert.match(lines[2] ?? '', /^\[[\d:.]+\] WARN: \[node 7\] kv: late child$/)
  assert.match(lines.at(-1) ?? '', /ERROR: \[node 7\] cli: last$/)
})

test('log: setLogLevel reaches loggers made before it, children of children too', async () => {
  const { logger, setLogLevel } = await import('../../src/util/log')
  const early = logger('early')
  const grandchild = early.child({ region: 1 })
  setLogLevel('error')
  try {
    assert.deepEqual([early.level, grandchild.level, logger('late').level], ['error', 'error', 'error'])
    assert.equal(grandchild.isLevelEnabled('warn'), false)
  } finally {
    setLogLevel('info')
  }
  assert.equal(grandchild.level, 'info')
})
