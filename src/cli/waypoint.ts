// `polyfs waypoint`: serves the Waypoint service (src/waypoint) until SIGINT/SIGTERM.
import { logger, setLogLevel } from '../util'
import { startWaypoint } from '../waypoint'

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
  let stopping = false
  const stop = (sig: string) => {
    if (stopping) return
    stopping = true
    log.info({ sig }, 'waypoint stopping')
    wp.close().then(
      () => process.exit(0),
      (err) => {
        log.error({ err }, 'waypoint close failed')
        process.exit(1)
      },
    )
  }
  process.on('SIGINT', () => stop('SIGINT'))
  process.on('SIGTERM', () => stop('SIGTERM'))
}
