// RpcServer: one gRPC server per process hosting whichever PolyFS services the role adds.
// Every call passes the same gate before a handler sees it, in this order:
//   1. the secret (metadata x-polyfs-secret, compared in constant time) -> UNAUTHENTICATED;
//      a stream is refused as a whole at its start;
//   2. the body decodes (codec.ts) -> INVALID_ARGUMENT; on a stream, ends that stream;
//   3. the handler runs; a throw becomes INTERNAL (logged at warn), or the status of a thrown
//      RpcError. Sizes above maxMessageBytes are refused by grpc-js (RESOURCE_EXHAUSTED).
// The two streams (Kv.Session, RaftTransport.Stream) live in server-streams.ts.
import * as grpc from '@grpc/grpc-js'
import { createHash, timingSafeEqual } from 'node:crypto'
import type { Http2Session } from 'node:http2'
import { logger as makeLogger, type Logger } from '../util'
import { decode, encode } from './codec'
import { handlerFailure, invoke, type KvHandler, type MasterHandler, type NodeAdminHandler, type RaftHandler, type Status, type WaypointHandler } from './handlers'
import type * as M from './messages'
import { responseCode, served, statusName } from './metrics'
import { serveKvSession, serveRaftStream, type OpenStream } from './server-streams'
import { KV, MASTER, type Method, NODE_ADMIN, RAFT, rawDefinition, SECRET_HEADER, WAYPOINT } from './services'

export const DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024
/** HTTP/2 flow-control window, per stream and per connection, that each end of a connection
 * grants the other (docs/protocol.md, "Flow control"): HTTP/2's default of 64 KiB makes a
 * 512 KiB answer or a 2 MiB commit wait for a WINDOW_UPDATE round trip every 32-64 KiB. */
export const FLOW_CONTROL_WINDOW = 8 * 1024 * 1024
type SessionHandlerFactory = (http2Server: unknown) => (session: Http2Session) => void
interface GrpcServerInternals {
  commonServerOptions?: { settings?: Record<string, unknown> }
  _sessionHandler?: SessionHandlerFactory
  _channelzSessionHandler?: SessionHandlerFactory
}

/**
 * Makes the server grant FLOW_CONTROL_WINDOW too. grpc-js 1.14 reads
 * 'grpc-node.flow_control_window' on the client side only (grpc/grpc-node#3058 would add it to
 * the server), so a server's receive window stays at HTTP/2's 64 KiB. Two internals of the
 * pinned version are used: the settings every accepted session advertises (the window of each
 * stream) and the handler each new session goes through (where the connection's window is
 * raised). If either is missing (another grpc-js version), this throws: test/rpc/window.test.ts
 * checks the windows a session really has.
 */
function grantServerWindow(server: grpc.Server, window: number): void {
  const s = server as unknown as GrpcServerInternals
  if (s.commonServerOptions === undefined || typeof s._sessionHandler !== 'function' || typeof s._channelzSessionHandler !== 'function') {
    throw new Error('RpcServer: this grpc-js version lacks the internals grantServerWindow uses (see src/rpc/server.ts)')
  }
  s.commonServerOptions.settings = { ...s.commonServerOptions.settings, initialWindowSize: window }
  for (const name of ['_sessionHandler', '_channelzSessionHandler'] as const) {
    const make = s[name] as SessionHandlerFactory
    s[name] = function (this: unknown, http2Server: unknown) {
      const handle = make.call(this, http2Server)
      return (session: Http2Session) => {
        try {
          session.setLocalWindowSize(window)
        } catch {
          // the session is already closing: nothing to grant
        }
        handle(session)
      }
    }
  }
}

/** Kv.Session requests handled at once per stream; beyond it a request is answered BUSY. */
export const DEFAULT_SESSION_MAX_IN_FLIGHT = 256
/** close(): how long open calls get to finish before the server is shut down hard. */
const SHUTDOWN_GRACE_MS = 1000

export interface RpcServerOptions {
  /** The cluster secret every call must carry. */
  secret: string
  logger?: Logger
  /** Largest message received or sent (default 64 MiB). */
  maxMessageBytes?: number
  /** Kv.Session requests handled at once per stream (default 256). */
  sessionMaxInFlight?: number
}

export class RpcServer {
  private readonly server: grpc.Server
  private readonly secretDigest: Buffer
  private readonly log: Logger
  private readonly sessionMaxInFlight: number
  /** Open streams, ended with UNAVAILABLE by close() so shutdown need not wait for them. */
  private readonly streams = new Set<OpenStream>()
  private closed = false

  constructor(opts: RpcServerOptions) {
    if (!opts.secret) throw new Error('RpcServer: an empty secret would let anyone in')
    this.secretDigest = digest(opts.secret)
    this.log = opts.logger ?? makeLogger('rpc')
    this.sessionMaxInFlight = opts.sessionMaxInFlight ?? DEFAULT_SESSION_MAX_IN_FLIGHT
    const maxBytes = opts.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES
    this.server = new grpc.Server({
      'grpc.max_receive_message_length': maxBytes,
      'grpc.max_send_message_length': maxBytes,
      // Streams live for the whole process: ping idle clients so a dead peer's streams end
      // within keepalive_time + keepalive_timeout instead of lingering.
      'grpc.keepalive_time_ms': 30_000,
      'grpc.keepalive_timeout_ms': 10_000,
    })
    grantServerWindow(this.server, FLOW_CONTROL_WINDOW)
  }

  addWaypoint(h: WaypointHandler): void {
    this.addUnaryService(WAYPOINT, h)
  }

  addMaster(h: MasterHandler): void {
    this.addUnaryService(MASTER, h)
  }

  addNodeAdmin(h: NodeAdminHandler): void {
    this.addUnaryService(NODE_ADMIN, h)
  }

  addKv(h: KvHandler): void {
    const call = this.unary(KV.call, async (req: M.KvRequest) => ({ ...(await h.handle(req)), id: req.id }))
    const session = (stream: grpc.ServerDuplexStream<Buffer, Buffer>) => {
      const denied = this.deny(stream.metadata)
      if (denied) {
        served(KV.session).count('UNAUTHENTICATED')
        return void stream.emit('error', denied)
      }
      serveKvSession(stream, h, { maxInFlight: this.sessionMaxInFlight, log: this.log, streams: this.streams, closed: () => this.closed })
    }
    this.server.addService({ Session: rawDefinition(KV.session), Call: rawDefinition(KV.call) }, { Session: session, Call: call })
  }

  addRaft(h: RaftHandler): void {
    const stream = (call: grpc.ServerReadableStream<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      const denied = this.deny(call.metadata)
      if (denied) {
        served(RAFT.stream).count('UNAUTHENTICATED')
        return cb(denied)
      }
      serveRaftStream(call, cb, h, { log: this.log, streams: this.streams, closed: () => this.closed })
    }
    this.server.addService({ Stream: rawDefinition(RAFT.stream) }, { Stream: stream })
  }

  /** Binds host:port (port 0 picks a free one) and starts serving; resolves to the bound host:port. */
  listen(address: string): Promise<string> {
    const host = address.slice(0, address.lastIndexOf(':'))
    return new Promise((resolve, reject) => {
      this.server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(`${host}:${port}`)))
    })
  }

  /** Ends open streams with UNAVAILABLE, lets unary calls finish for up to 1 s, then stops hard. */
  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    for (const s of [...this.streams]) s.end({ code: grpc.status.UNAVAILABLE, details: 'server shutting down' })
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.server.forceShutdown()
        resolve()
      }, SHUTDOWN_GRACE_MS)
      this.server.tryShutdown(() => {
        clearTimeout(timer)
        resolve()
      })
    })
  }

  // ---- the gate ----------------------------------------------------------------------------------

  /** The UNAUTHENTICATED status for a call without the right secret, or null to let it in. */
  private deny(md: grpc.Metadata): Status | null {
    const values = md.get(SECRET_HEADER)
    if (values.length === 0) return { code: grpc.status.UNAUTHENTICATED, details: `missing ${SECRET_HEADER} metadata` }
    // Digests of both sides: equal lengths for timingSafeEqual, and nothing leaks the secret's length.
    if (values.length > 1 || !timingSafeEqual(digest(values[0]), this.secretDigest)) {
      return { code: grpc.status.UNAUTHENTICATED, details: `wrong ${SECRET_HEADER}: this server belongs to another cluster or the secret differs` }
    }
    return null
  }

  private addUnaryService<K extends string>(methods: Record<K, Method>, h: Record<K, (req: never) => Promise<unknown>>): void {
    const def: Record<string, grpc.MethodDefinition<Buffer, Buffer>> = {}
    const impl: grpc.UntypedServiceImplementation = {}
    for (const name of Object.keys(methods) as K[]) {
      const m = methods[name]
      def[m.rpc] = rawDefinition(m)
      impl[m.rpc] = this.unary(m, (req) => h[name].call(h, req as never))
    }
    this.server.addService(def, impl)
  }

  private unary<Req>(m: Method, fn: (req: Req) => Promise<unknown>): grpc.handleUnaryCall<Buffer, Buffer> {
    const mm = served(m)
    return (call, cb) => {
      const t0 = performance.now()
      const denied = this.deny(call.metadata)
      if (denied) {
        mm.done(t0, 'UNAUTHENTICATED')
        return cb(denied)
      }
      let req: Req
      try {
        req = decode<Req>(m.request, call.request)
      } catch (err) {
        mm.done(t0, 'INVALID_ARGUMENT')
        return cb({ code: grpc.status.INVALID_ARGUMENT, details: (err as Error).message })
      }
      invoke(() => fn(req))
        .then((res) => {
          const body = encode(m.response, res)
          mm.done(t0, responseCode(res))
          cb(null, body)
        })
        .catch((err) => {
          const status = handlerFailure(this.log, m.path, err)
          mm.done(t0, statusName(status.code))
          cb(status)
        })
    }
  }
}

function digest(s: string | Buffer): Buffer {
  return createHash('sha256').update(s).digest()
}
