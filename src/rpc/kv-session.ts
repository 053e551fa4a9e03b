// The client side of Kv.Session: many concurrent calls multiplexed over one long-lived stream
// to one address. Each call gets an id; responses come back in any order and are matched by id.
// Bounds: at most maxInFlight calls sent and unanswered; further calls wait in a FIFO of at
// most maxQueued (then RESOURCE_EXHAUSTED); every call has a deadline (DEADLINE_EXCEEDED,
// its slot is freed and a late answer is ignored). When the stream fails, every call sent or
// waiting rejects with the stream's status (UNAVAILABLE when it just ended); the next call
// opens a new stream. The stream is opened lazily, never in the background, so a dead
// address costs nothing until someone calls it.
import type * as grpc from '@grpc/grpc-js'
import type { Logger } from '../util'
import { decode, encodeForWire, encodeForWireParts, type WireParts } from './codec'
import { RpcError, toRpcError } from './errors'
import type { Init, KvRequest, KvResponse } from './messages'
import { called, responseCode } from './metrics'
import { KV } from './services'

/** Calls on every session of this process (one code per call, the round trip from call()). */
const callMetrics = called(KV.session)

export interface KvSessionOptions {
  /** Calls sent and not yet answered on the stream. */
  maxInFlight: number
  /** Calls waiting for a free slot. */
  maxQueued: number
  /** Deadline of a call that does not name one. */
  defaultTimeoutMs: number
  log: Logger
  /** A message with id 0 (pushed by the node, not an answer: a revoke). */
  onPush?: (res: KvResponse) => void
}

interface Pending {
  id: number
  /** performance.now() at call(). */
  t0: number
  /** The encoded request; a commit's block values stay in their own memory (WireParts). */
  body: Buffer | WireParts
  resolve(res: KvResponse): void
  reject(err: RpcError): void
  timer: NodeJS.Timeout
}

export class KvSession {
  private stream: grpc.ClientDuplexStream<Buffer, Buffer> | null = null
  /** Sent and unanswered, by id (at most maxInFlight). */
  private readonly inFlight = new Map<number, Pending>()
  /** Waiting for a slot, oldest first (at most maxQueued). */
  private readonly waiting: Pending[] = []
  private nextId = 1
  private closed = false

  constructor(
    private readonly address: string,
    private readonly openStream: () => grpc.ClientDuplexStream<Buffer, Buffer>,
    private readonly o: KvSessionOptions,
  ) {}

  call(req: Omit<Init<KvRequest>, 'id'>, timeoutMs = this.o.defaultTimeoutMs): Promise<KvResponse> {
    if (this.closed) return Promise.reject(new RpcError('CANCELLED', 'rpc clients closed'))
    const id = this.nextId++
    let body: Buffer | WireParts
    try {
      body = encodeForWireParts('KvRequest', { ...req, id })
    } catch (err) {
      return Promise.reject(new RpcError('INVALID_ARGUMENT', (err as Error).message))
    }
    return new Promise<KvResponse>((resolve, reject) => {
      if (this.inFlight.size >= this.o.maxInFlight && this.waiting.length >= this.o.maxQueued) {
        callMetrics.count('RESOURCE_EXHAUSTED')
        return reject(new RpcError('RESOURCE_EXHAUSTED', `${this.o.maxInFlight} kv calls in flight and ${this.o.maxQueued} waiting to ${this.address}`))
      }
      const p: Pending = { id, t0: performance.now(), body, resolve, reject, timer: setTimeout(() => this.expire(p, timeoutMs), timeoutMs) }
      if (this.inFlight.size < this.o.maxInFlight && this.waiting.length === 0) this.dispatch(p)
      else this.waiting.push(p)
    })
  }

  /** Writes a request nothing answers (id 0) on the open stream; none open: dropped. */
  send(req: Omit<Init<KvRequest>, 'id'>): void {
    if (this.closed || !this.stream) return
    try {
      this.stream.write(encodeForWire('KvRequest', { ...req, id: 0 }))
    } catch (err) {
      this.o.log.debug({ address: this.address, err }, 'could not send a kv message')
    }
  }

  /** Rejects every call with CANCELLED and cancels the stream. */
  close(): void {
    this.closed = true
    const s = this.stream
    this.failAll(new RpcError('CANCELLED', 'rpc clients closed'))
    s?.cancel()
  }

  private dispatch(p: Pending): void {
    const s = this.stream ?? this.open()
    this.inFlight.set(p.id, p)
    s.write(p.body as Buffer) // WireParts too: the patched grpc-js writes them (codec.ts)
  }

  private open(): grpc.ClientDuplexStream<Buffer, Buffer> {
    const s = this.openStream()
    this.stream = s
    s.on('data', (buf: Buffer) => this.onData(s, buf))
    // 'error' carries the status of a failed stream; 'status' comes for every end, OK included.
    s.on('error', (err: grpc.ServiceError) => this.onEnd(s, toRpcError(err)))
    s.on('status', () => this.onEnd(s, new RpcError('UNAVAILABLE', `kv session to ${this.address} ended`)))
    return s
  }

  private onData(s: grpc.ClientDuplexStream<Buffer, Buffer>, buf: Buffer): void {
    let res: KvResponse
    try {
      res = decode<KvResponse>('KvResponse', buf)
    } catch (err) {
      this.o.log.warn({ address: this.address, err }, 'malformed kv response; dropping the session')
      this.onEnd(s, new RpcError('INTERNAL', (err as Error).message))
      s.cancel()
      return
    }
    if (res.id === 0) {
      try {
        this.o.onPush?.(res)
      } catch (err) {
        this.o.log.warn({ address: this.address, err }, 'kv push listener failed')
      }
      return
    }
    const p = this.inFlight.get(res.id)
    if (!p) return // timed out already
    this.inFlight.delete(res.id)
    clearTimeout(p.timer)
    callMetrics.done(p.t0, responseCode(res))
    p.resolve(res)
    this.pump()
  }

  private onEnd(s: grpc.ClientDuplexStream<Buffer, Buffer>, err: RpcError): void {
    if (this.stream !== s) return
    this.stream = null
    this.o.log.debug({ address: this.address, code: err.code, details: err.details, inFlight: this.inFlight.size }, 'kv session ended')
    this.failAll(err)
  }

  private failAll(err: RpcError): void {
    this.stream = null
    const all = [...this.inFlight.values(), ...this.waiting]
    this.inFlight.clear()
    this.waiting.length = 0
    for (const p of all) {
      clearTimeout(p.timer)
      callMetrics.done(p.t0, err.code)
      p.reject(err)
    }
  }

  private expire(p: Pending, timeoutMs: number): void {
    if (this.inFlight.delete(p.id)) this.pump()
    else {
      const i = this.waiting.indexOf(p)
      if (i < 0) return
      this.waiting.splice(i, 1)
    }
    callMetrics.done(p.t0, 'DEADLINE_EXCEEDED')
    p.reject(new RpcError('DEADLINE_EXCEEDED', `kv call to ${this.address} took more than ${timeoutMs} ms`))
  }

  private pump(): void {
    while (this.waiting.length > 0 && this.inFlight.size < this.o.maxInFlight) this.dispatch(this.waiting.shift()!)
  }
}
