// Recent events of this process, for the status page and `polyfs status`: a bounded ring in
// memory (a restart forgets them; logs keep the history). Each event is also logged.
import type { NodeEvent } from '../rpc'
import { metrics } from './metrics'

/** Events kept per process. */
export const MAX_EVENTS = 200

export type EventLevel = 'info' | 'warn' | 'error'

export interface EventInput {
  kind: string
  message: string
  level?: EventLevel
  subjectNode?: number
  regionId?: number
}

export class EventLog {
  private readonly ring: NodeEvent[] = []
  /** The node id stamped on each event (set once the node knows it). */
  nodeId = 0

  record(e: EventInput): NodeEvent {
    const ev: NodeEvent = { atMs: Date.now(), kind: e.kind, nodeId: this.nodeId, subjectNode: e.subjectNode ?? 0, regionId: e.regionId ?? 0, message: e.message, level: e.level ?? 'info' }
    this.ring.push(ev)
    if (this.ring.length > MAX_EVENTS) this.ring.splice(0, this.ring.length - MAX_EVENTS)
    metrics.events.inc({ kind: e.kind })
    return ev
  }

  /** The last `n` events, oldest first. */
  recent(n = MAX_EVENTS): NodeEvent[] {
    return this.ring.slice(-n)
  }
}

/** The process's event log. */
export const events = new EventLog()
