// `polyfs waypoint`: serves the Waypoint service (src/waypoint) until SIGINT/SIGTERM.
import { logger, setLogLevel } from '../util'
import { startWaypoint } from '../waypoint'
import { onStopSignals } from './signals'

export interface WaypointArgs {
  listen: string
  /** Falls back to env POLYFS_SECRET; one of the two is required. */
  secret?: string
  logLevel: string
}

export async function runWaypoint(a: WaypointArgs): Promise<void> {
  const secret = a.secret || process.env.POLYFS_SECRET
  if (!secret) throw new Error('waypoint: no cluster secret: set POLYFS_SECRET or pass --secret')
  setLogLevel(a.logLevel)
  const log = logger('waypoint')
  const wp = await startWaypoint({ listen: a.listen, secret, logger: log })
  log.info({ address: wp.address }, 'waypoint listening')
  onStopSignals(log, () => wp.close())
}
