// SIGINT/SIGTERM for every long-running command: the first signal runs `stop` (flush,
// unmount, close) and exits 0 when it succeeds, 1 when it fails; a second signal exits at once.
import type { Logger } from '../util'

export function onStopSignals(log: Logger, stop: (sig: string) => Promise<void>): (sig: string) => void {
  let signals = 0
  const handler = (sig: string) => {
    if (++signals > 1) {
      log.warn({ sig }, 'second signal: exiting without a clean shutdown')
      process.exit(130)
    }
    log.info({ sig }, 'shutting down')
    stop(sig).then(
      () => process.exit(0),
      (err) => {
        log.error({ err }, 'shutdown failed')
        process.exit(1)
      },
    )
  }
  process.on('SIGINT', () => handler('SIGINT'))
  process.on('SIGTERM', () => handler('SIGTERM'))
  return handler
}
