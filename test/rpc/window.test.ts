// HTTP/2 flow control: both ends of every PolyFS connection grant FLOW_CONTROL_WINDOW, per
// stream and per connection (docs/protocol.md, "Flow control"), not HTTP/2's 64 KiB. Checked
// from the other end with node:http2, which sees the SETTINGS and WINDOW_UPDATE frames.
import assert from 'node:assert/strict'
import * as http2 from 'node:http2'
import type { AddressInfo } from 'node:net'
import { test } from 'node:test'
import { FLOW_CONTROL_WINDOW } from '../../src/rpc/server'
import { waitFor } from '../helpers/mount'
import { clients, startServer } from './helpers'

const HTTP2_DEFAULT_WINDOW = 65_535
// The checks below could not tell the two apart otherwise.
assert.ok(FLOW_CONTROL_WINDOW > HTTP2_DEFAULT_WINDOW)

test('flow control: an RpcServer grants FLOW_CONTROL_WINDOW per stream and per connection', async (t) => {
  const { address } = await startServer(t, (s) => s.addKv({ handle: async (req) => ({ id: req.id }) }))
  const session = http2.connect(`http://${address}`)
  t.after(() => session.close())
  session.on('error', () => undefined)
  await new Promise<void>((resolve) => session.once('remoteSettings', () => resolve()))
  assert.equal(session.remoteSettings.initialWindowSize, FLOW_CONTROL_WINDOW, 'the window the server grants each stream (its SETTINGS)')
  // The connection's window arrives as a WINDOW_UPDATE on stream 0 right after the SETTINGS.
  await waitFor(() => (session.state.remoteWindowSize ?? 0) >= FLOW_CONTROL_WINDOW, 5000, 'the connection window the server grants')
})

test('flow control: RpcClients grant FLOW_CONTROL_WINDOW per stream and per connection', async (t) => {
  const rpc = clients(t) // its close runs first (t.after hooks run in order), so no reconnect outlives the server
  const server = http2.createServer()
  const sessions = new Set<http2.ServerHttp2Session>()
  let seen: http2.ServerHttp2Session | undefined
  server.on('session', (s) => {
    seen = s
    sessions.add(s)
    s.on('error', () => undefined)
  })
  // Every stream is refused (UNAVAILABLE): only the connection's settings matter here.
  server.on('stream', (stream) => stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '14' }, { endStream: true }))
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()))
  t.after(async () => {
    for (const s of sessions) s.destroy()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  })
  const port = (server.address() as AddressInfo).port
  rpc.kv(`127.0.0.1:${port}`).call({ regionId: 1, get: { key: Buffer.from('k') } }, { timeoutMs: 2000 }).catch(() => undefined)
  await waitFor(() => seen !== undefined && seen.remoteSettings.initialWindowSize === FLOW_CONTROL_WINDOW, 5000, 'the window the client grants each stream (its SETTINGS)')
  await waitFor(() => (seen?.state.remoteWindowSize ?? 0) >= FLOW_CONTROL_WINDOW, 5000, 'the connection window the client grants')
})
