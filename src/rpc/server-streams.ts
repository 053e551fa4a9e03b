// The server side of the two long-lived streams, after the secret was checked (server.ts).
//   Kv.Session: requests are handled concurrently and answered as they complete, each response
//     carrying its request's id. At most maxInFlight requests per stream are being handled or
//     written out; one beyond that is answered BUSY at once. A client that keeps sending while
//     it reads nothing (2 x maxInFlight answers unwritten) loses the stream: RESOURCE_EXHAUSTED.
//   RaftTransport.Stream: every batch goes to onBatch in arrival order; the one response
//     (RaftStreamDone) is sent when the sender ends the stream.
// A body that does not decode ends its stream with INVALID_ARGUMENT.
import * as grpc from '@grpc/grpc-js'
import type { Logger } from '../util'
import { decode, encode, encodeForWire } from './codec'
import { ErrorCode, rpcError } from './errors'
import type { Init, KvRequest, KvResponse, RaftBatch } from './messages'
import { handlerFailure, invoke, type KvHandler, type KvStream, type RaftHandler, type Status } from './handlers'
import { responseCode, served } from './metrics'
import { KV, RAFT } from './services'

/** A stream the server can end early (at close). */
export interface OpenStream {
  end(status: Status): void
}

interface StreamContext {
  log: Logger
  /** The server's set of open streams; each stream removes itself when it ends. */
  streams: Set<OpenStream>
  closed(): boolean
}

const SHUTTING_DOWN: Status = { code: grpc.status.UNAVAILABLE, details: 'server shutting down' }

export function serveKvSession(stream: grpc.ServerDuplexStream<Buffer, Buffer>, h: KvHandler, ctx: StreamContext & { maxInFlight: number }): void {
  if (ctx.closed()) return void stream.emit('error', SHUTTING_DOWN)
  const mm = served(KV.session)
  let done = false
  let clientEnded = false
  let handling = 0 // requests whose handler has not finished
  let unwritten = 0 // responses handed to the stream whose write has not completed
  const open: OpenStream = { end: (s) => finish(s) }
  ctx.streams.add(open)

  const finish = (s: Status | null) => {
    if (done) return
    done = true
    ctx.streams.delete(open)
    if (s) stream.emit('error', s)
    else stream.end()
  }
  const maybeEnd = () => {
    if (clientEnded && handling === 0 && unwritten === 0) finish(null)
  }
  const send = (res: Init<KvResponse>) => {
    if (done) return
    let buf: Buffer
    try {
      buf = encodeForWire('KvResponse', res)
    } catch (err) {
      ctx.log.warn({ err, method: KV.session.path }, 'kv handler returned a response that does not encode')
      buf = encode('KvResponse', { id: res.id, error: rpcError(ErrorCode.INTERNAL, (err as Error).message) })
    }
    unwritten++
    stream.write(buf, () => {
      unwritten--
      maybeEnd()
    })
  }

  const kvStream: KvStream = { alive: () => !done, push: (res) => send(res), state: new Map() }

  stream.on('data', (buf: Buffer) => {
    if (done) return
    const t0 = performance.now()
    let req: KvRequest
    try {
      req = decode<KvRequest>('KvRequest', buf)
    } catch (err) {
      mm.count('INVALID_ARGUMENT')
      return finish({ code: grpc.status.INVALID_ARGUMENT, details: (err as Error).message })
    }
    if (req.op === 'release') {
      // The answer to a revoke: nothing answers it (its id is 0).
      invoke(() => h.handle(req, kvStream)).catch((err) => handlerFailure(ctx.log, KV.session.path, err))
      return
    }
    if (handling + unwritten >= ctx.maxInFlight) {
      if (unwritten >= 2 * ctx.maxInFlight) {
        mm.count('RESOURCE_EXHAUSTED')
        return finish({ code: grpc.status.RESOURCE_EXHAUSTED, details: 'the client sends requests but does not read the responses' })
      }
      mm.done(t0, ErrorCode.BUSY)
      return send(busy(req.id, ctx.maxInFlight))
    }
    handling++
    invoke(() => h.handle(req, kvStream))
      .then(
        (res) => ({ ...res, id: req.id }),
        (err): Init<KvResponse> => ({ id: req.id, error: rpcError(ErrorCode.INTERNAL, handlerFailure(ctx.log, KV.session.path, err).details) }),
      )
      .then((res) => {
        handling--
        mm.done(t0, responseCode(res))
        send(res)
      })
  })
  stream.on('end', () => {
    clientEnded = true
    maybeEnd()
  })
  // The client went away or the transport failed: nothing more can be written.
  const gone = () => {
    done = true
    ctx.streams.delete(open)
  }
  stream.on('cancelled', gone)
  stream.on('close', gone)
  stream.on('error', gone)
}

export function serveRaftStream(call: grpc.ServerReadableStream<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>, h: RaftHandler, ctx: StreamContext): void {
  if (ctx.closed()) return cb(SHUTTING_DOWN)
  const mm = served(RAFT.stream)
  let done = false
  const open: OpenStream = { end: (s) => finish(s) }
  ctx.streams.add(open)
  const finish = (s: Status | null) => {
    if (done) return
    done = true
    ctx.streams.delete(open)
    if (s) cb(s)
    else cb(null, encode('RaftStreamDone', {}))
  }
  call.on('data', (buf: Buffer) => {
    if (done) return
    let batch: RaftBatch
    try {
      batch = decode<RaftBatch>('RaftBatch', buf)
    } catch (err) {
      mm.count('INVALID_ARGUMENT')
      return finish({ code: grpc.status.INVALID_ARGUMENT, details: (err as Error).message })
    }
    // A throwing onBatch loses that batch only: Raft tolerates a lost message, and ending the
    // stream would lose every batch behind it too.
    try {
      h.onBatch(batch)
      mm.count('OK')
    } catch (err) {
      mm.count('INTERNAL')
      ctx.log.warn({ err, method: RAFT.stream.path }, 'raft onBatch threw; batch dropped')
    }
  })
  call.on('end', () => finish(null))
  const gone = () => {
    done = true
    ctx.streams.delete(open)
  }
  call.on('cancelled', gone)
  call.on('close', gone)
  call.on('error', gone)
}

function busy(id: number, maxInFlight: number): Init<KvResponse> {
  return { id, error: rpcError(ErrorCode.BUSY, `more than ${maxInFlight} requests in flight on this stream; retry after one completes`) }
}
