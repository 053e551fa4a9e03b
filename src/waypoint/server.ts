// startWaypoint: the rules of rules.ts served over gRPC (the Waypoint service only).
import { RpcServer } from '../rpc'
import { logger as makeLogger, type Logger } from '../util'
import { WaypointRules, type WaypointEvent } from './rules'

export const DEFAULT_HOLD_MS = 3000
export const DEFAULT_MASTER_EXPIRY_MS = 30_000

export interface WaypointOptions {
  /** host:port to listen on (port 0 picks a free one). */
  listen: string
  /** The cluster secret every caller must present. */
  secret: string
  /** No bootstrap claim is granted during this long after start (default 3 s). */
  holdMs?: number
  /** A master registration older than this is forgotten (default 30 s). */
  masterExpiryMs?: number
  logger?: Logger
  /** Milliseconds clock (default Date.now); tests move it by hand. */
  clock?: () => number
}

export interface RunningWaypoint {
  /** The bound host:port. */
  address: string
  close(): Promise<void>
}

export async function startWaypoint(opts: WaypointOptions): Promise<RunningWaypoint> {
  const log = opts.logger ?? makeLogger('waypoint')
  const now = opts.clock ?? Date.now
  const rules = new WaypointRules(
    { holdMs: opts.holdMs ?? DEFAULT_HOLD_MS, masterExpiryMs: opts.masterExpiryMs ?? DEFAULT_MASTER_EXPIRY_MS, startedAtMs: now() },
    (e) => logEvent(log, e),
  )
  const server = new RpcServer({ secret: opts.secret, logger: log })
  server.addWaypoint({
    getMaster: async () => rules.getMaster(now()),
    setMaster: async (req) => rules.setMaster(req, now()),
    claim: async (req) => rules.claim(req, now()),
  })
  const address = await server.listen(opts.listen)
  return { address, close: () => server.close() }
}

function logEvent(log: Logger, e: WaypointEvent): void {
  switch (e.type) {
    case 'registered':
      return log.info({ clusterId: e.clusterId, leader: e.leader, term: e.term, previous: e.previous }, 'master registered')
    case 'claimGranted':
      return e.renewal ? log.debug({ claimant: e.claimant, ttlMs: e.ttlMs }, 'bootstrap claim renewed') : log.info({ claimant: e.claimant, address: e.address, ttlMs: e.ttlMs }, 'bootstrap claim granted')
    case 'claimReleased':
      return log.info({ claimant: e.claimant }, 'bootstrap claim released')
  }
}
