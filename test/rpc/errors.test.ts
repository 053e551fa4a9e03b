// docs/errors.md is the catalogue: it must list exactly the codes the code defines.
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import path from 'node:path'
import { test } from 'node:test'
import { ErrorCode, rpcError, RpcError, TransportCode } from '../../src/rpc'
import { REPO } from '../helpers/mount'

/** The codes in the first column of the table under the heading `## title`. */
function tableCodes(doc: string, title: string): string[] {
  const start = doc.indexOf(`\n## ${title}\n`)
  assert.ok(start >= 0, `docs/errors.md has a "## ${title}" section`)
  const rest = doc.slice(start + title.length + 5)
  const section = rest.slice(0, rest.search(/\n## |$/))
  return [...section.matchAll(/^\| `([A-Z_]+)` \|/gm)].map((m) => m[1])
}

const doc = readFileSync(path.join(REPO, 'docs/errors.md'), 'utf8')

test('errors: docs/errors.md lists every application code, and only those', () => {
  const documented = tableCodes(doc, 'Application error codes')
  assert.equal(new Set(documented).size, documented.length, 'no code listed twice')
  assert.deepEqual([...documented].sort(), Object.values(ErrorCode).sort())
})

test('errors: docs/errors.md lists every transport status code, and only those', () => {
  const documented = tableCodes(doc, 'Transport status codes')
  assert.equal(new Set(documented).size, documented.length, 'no code listed twice')
  assert.deepEqual([...documented].sort(), Object.values(TransportCode).sort())
})

test('errors: ErrorCode values are their own names (stable strings on the wire)', () => {
  for (const [k, v] of Object.entries(ErrorCode)) assert.equal(k, v)
  for (const [k, v] of Object.entries(TransportCode)) assert.equal(k, v)
})

test('errors: rpcError carries the hints it is given and no empty ones', () => {
  assert.deepEqual(rpcError(ErrorCode.BUSY, 'later'), { code: 'BUSY', message: 'later' })
  const leader = { nodeId: 2, address: '127.0.0.1:7002' }
  assert.deepEqual(rpcError(ErrorCode.NOT_LEADER, 'ask 2', { leader }), { code: 'NOT_LEADER', message: 'ask 2', leader })
  const e = new RpcError('UNAVAILABLE', 'gone')
  assert.ok(e instanceof Error)
  assert.equal(e.code, 'UNAVAILABLE')
  assert.equal(e.details, 'gone')
})
