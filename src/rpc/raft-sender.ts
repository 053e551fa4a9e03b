// The client side of RaftTransport.Stream: fire-and-forget batches to one address over one
// long-lived stream, opened lazily by the first send. Raft tolerates lost messages (it
// retransmits on its own timers), so this side never retries a batch:
//   - a stream that fails is logged at debug; whatever it still buffered is dropped, and sends
//     during the following backoff (100 ms doubling to 2 s, reset once a stream lived 10 s)
//     are dropped too; the first send after the backoff opens a new stream;
//   - bytes handed to the stream and not yet written out are bounded (maxQueuedBytes); a
//     batch that would exceed the bound is dropped. Drops are counted (`dropped`).
import type * as grpc from '@grpc/grpc-js'
import type { Logger } from '../util'
import { encodeForWireParts, type WireParts } from './codec'
import type { Init, RaftBatch } from './messages'
import { called } from './metrics'
import { RAFT } from './services'

/** Batches of every sender of this process: OK (handed to the stream) or why dropped. */
const batchMetrics = called(RAFT.stream)

export const RAFT_MIN_BACKOFF_MS = 100
export const RAFT_MAX_BACKOFF_MS = 2000
/** A stream that lived this long before failing was healthy: the next backoff starts small. */
const HEALTHY_STREAM_MS = 10_000

/** Opens a RaftTransport.Stream; `done` is called once when it ends, with its error if any. */
export type OpenRaftStream = (done: (err: grpc.ServiceError | null) => void) => grpc.ClientWritableStream<Buffer>

interface StreamState {
  call: grpc.ClientWritableStream<Buffer>
  /** Bytes written to the call whose write has not completed. */
  bytes: number
  openedAtMs: number
}

export class RaftSender {
  private stream: StreamState | null = null
  private failures = 0
  private retryAtMs = 0
  private closed = false
  /** Batches dropped: during a backoff, over the byte bound, or not encodable. */
  dropped = 0

  constructor(
    private readonly address: string,
    private readonly openStream: OpenRaftStream,
    private readonly maxQueuedBytes: number,
    private readonly log: Logger,
  ) {}

  /** Bytes handed to the current stream and not yet written to the connection. */
  get queuedBytes(): number {
    return this.stream?.bytes ?? 0
  }

  send(batch: Init<RaftBatch>): void {
    if (this.closed) return
    if (!this.stream && Date.now() < this.retryAtMs) {
      this.dropped++
      batchMetrics.count('UNAVAILABLE')
      return
    }
    // Entries' data go to the socket from the log's own memory: no copy per follower.
    let body: Buffer | WireParts
    try {
      body = encodeForWireParts('RaftBatch', batch)
    } catch (err) {
      this.dropped++
      batchMetrics.count('INTERNAL')
      this.log.error({ err, address: this.address }, 'raft batch does not encode; dropped')
      return
    }
    const s = this.stream ?? this.open()
    if (s.bytes + body.length > this.maxQueuedBytes) {
      this.dropped++
      batchMetrics.count('RESOURCE_EXHAUSTED')
      return
    }
    batchMetrics.count('OK')
    s.bytes += body.length
    s.call.write(body as Buffer, () => {
      s.bytes -= body.length
    })
  }

  close(): void {
    this.closed = true
    const s = this.stream
    this.stream = null
    s?.call.cancel()
  }

  private open(): StreamState {
    const s: StreamState = { call: null as unknown as grpc.ClientWritableStream<Buffer>, bytes: 0, openedAtMs: Date.now() }
    s.call = this.openStream((err) => this.onEnd(s, err))
    this.stream = s
    return s
  }

  private onEnd(s: StreamState, err: grpc.ServiceError | null): void {
    if (this.stream !== s) return
    this.stream = null
    const now = Date.now()
    if (now - s.openedAtMs >= HEALTHY_STREAM_MS) this.failures = 0
    this.failures++
    const backoffMs = Math.min(RAFT_MIN_BACKOFF_MS * 2 ** (this.failures - 1), RAFT_MAX_BACKOFF_MS)
    this.retryAtMs = now + backoffMs
    this.log.debug({ address: this.address, code: err?.code, details: err?.details, droppedBytes: s.bytes, backoffMs }, 'raft stream ended')
  }
}
