// The RPC metrics of one method on one side: served (this process answered) or called (this
// process asked). Per code a counter cell, made on first use; per method a latency cell (none
// for RaftTransport.Stream: a batch is handed to Raft synchronously, so only counts matter).
// Streams count messages (a Kv.Session request, a Raft batch), not stream lifetimes.
import * as grpc from '@grpc/grpc-js'
import { counterCell, histogramCell, metrics, type CounterCell, type HistogramCell } from '../observe/metrics'
import { ErrorCode, TransportCode } from './errors'
import type { Method } from './services'

/** Code labels: OK, the application codes, gRPC status names; anything else is OTHER (a code
 * passed through from a peer of another version must not grow the label set). */
const KNOWN_CODES = new Set<string>(['OK', ...Object.values(ErrorCode), ...Object.values(TransportCode), ...Object.keys(grpc.status).filter((k) => Number.isNaN(Number(k)))])

export function codeLabel(code: string): string {
  return KNOWN_CODES.has(code) ? code : 'OTHER'
}

/** The gRPC status name of a status number ('UNAVAILABLE'). */
export function statusName(code: number): string {
  return codeLabel((grpc.status[code] as string | undefined) ?? 'UNKNOWN')
}

/** OK, or the application error code a response carries in its `error` field. */
export function responseCode(res: unknown): string {
  const code = (res as { error?: { code?: string } } | null | undefined)?.error?.code
  return code ? codeLabel(code) : 'OK'
}

export class MethodMetrics {
  private readonly ok: CounterCell
  private readonly codes = new Map<string, CounterCell>()
  private readonly seconds: HistogramCell | null

  constructor(
    private readonly counter: typeof metrics.rpcServed,
    histogram: typeof metrics.rpcServedSeconds | null,
    private readonly method: string,
  ) {
    this.ok = counterCell(counter, { method, code: 'OK' })
    this.seconds = histogram ? histogramCell(histogram, { method }) : null
  }

  /** One call or message with its outcome (a code label: see codeLabel). */
  count(code: string): void {
    if (code === 'OK') return this.ok.inc()
    let c = this.codes.get(code)
    if (!c) this.codes.set(code, (c = counterCell(this.counter, { method: this.method, code: codeLabel(code) })))
    c.inc()
  }

  /** count(code), and the time since t0 (performance.now()). */
  done(t0: number, code: string): void {
    this.seconds?.observe((performance.now() - t0) / 1000)
    this.count(code)
  }
}

const servedBy = new Map<string, MethodMetrics>()
const calledBy = new Map<string, MethodMetrics>()

/** What this process answered on method m. */
export function served(m: Method): MethodMetrics {
  let mm = servedBy.get(m.path)
  if (!mm) servedBy.set(m.path, (mm = new MethodMetrics(metrics.rpcServed, m.requestStream && !m.responseStream ? null : metrics.rpcServedSeconds, m.label)))
  return mm
}

/** What this process asked on method m. */
export function called(m: Method): MethodMetrics {
  let mm = calledBy.get(m.path)
  if (!mm) calledBy.set(m.path, (mm = new MethodMetrics(metrics.rpcCalls, m.requestStream && !m.responseStream ? null : metrics.rpcCallSeconds, m.label)))
  return mm
}
