// Shared by the rpc tests: servers and clients on 127.0.0.1 port 0, closed by t.after; a raw
// grpc-js client that sends whatever bytes it is given (for malformed and oversized bodies).
import * as grpc from '@grpc/grpc-js'
import pino from 'pino'
import { RpcClients, RpcServer, type RpcClientsOptions, type RpcServerOptions } from '../../src/rpc'
import type { Cleanup } from '../helpers/mount'

export const SECRET = 'test-secret'

/** Logs of the code under test stay quiet unless POLYFS_TEST_LOG is set. */
export const quiet = pino({ level: process.env.POLYFS_TEST_LOG ?? 'silent' })

export async function startServer(t: Cleanup, setup: (s: RpcServer) => void, opts: Partial<RpcServerOptions> = {}, address = '127.0.0.1:0'): Promise<{ server: RpcServer; address: string }> {
  const server = new RpcServer({ secret: SECRET, logger: quiet, ...opts })
  setup(server)
  t.after(() => server.close())
  return { server, address: await server.listen(address) }
}

export function clients(t: Cleanup, opts: Partial<RpcClientsOptions> = {}): RpcClients {
  const c = new RpcClients({ secret: SECRET, logger: quiet, ...opts })
  t.after(() => c.close())
  return c
}

const identity = (b: Buffer) => b

/** A grpc-js client that sends raw bytes, with or without the secret. */
export function rawClient(t: Cleanup, address: string, opts: grpc.ChannelOptions = {}): grpc.Client {
  const c = new grpc.Client(address, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1, ...opts })
  t.after(() => c.close())
  return c
}

export function secretMetadata(secret: string | null = SECRET): grpc.Metadata {
  const md = new grpc.Metadata()
  if (secret !== null) md.set('x-polyfs-secret', secret)
  return md
}

/** A unary call with a raw body; resolves with the status (code name and details) and the response. */
export function rawUnary(c: grpc.Client, path: string, body: Buffer, md: grpc.Metadata): Promise<{ code: string; details: string; res?: Buffer }> {
  return new Promise((resolve) => {
    c.makeUnaryRequest(path, identity, identity, body, md, { deadline: Date.now() + 5000 }, (err, res) => {
      if (err) resolve({ code: grpc.status[err.code], details: err.details })
      else resolve({ code: 'OK', details: '', res })
    })
  })
}

/** Opens a bidi stream with raw bodies; `status` resolves with the final status. */
export function rawBidi(c: grpc.Client, path: string, md: grpc.Metadata): { call: grpc.ClientDuplexStream<Buffer, Buffer>; status: Promise<{ code: string; details: string }>; received: Buffer[] } {
  const call = c.makeBidiStreamRequest(path, identity, identity, md)
  const received: Buffer[] = []
  call.on('data', (b: Buffer) => received.push(b))
  call.on('error', () => undefined) // the status promise reports it
  const status = new Promise<{ code: string; details: string }>((resolve) => call.on('status', (s: grpc.StatusObject) => resolve({ code: grpc.status[s.code], details: s.details })))
  return { call, status, received }
}

/** Opens a client stream with raw bodies; `status` resolves when the server answers. */
export function rawClientStream(c: grpc.Client, path: string, md: grpc.Metadata): { call: grpc.ClientWritableStream<Buffer>; status: Promise<{ code: string; details: string }> } {
  let call!: grpc.ClientWritableStream<Buffer>
  const status = new Promise<{ code: string; details: string }>((resolve) => {
    call = c.makeClientStreamRequest(path, identity, identity, md, {}, (err) => resolve(err ? { code: grpc.status[err.code], details: err.details } : { code: 'OK', details: '' }))
  })
  return { call, status }
}
