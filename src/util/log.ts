// One pino logger per process; components take a child with a `component` field.
import pino from 'pino'

export type Logger = pino.Logger

let root: Logger | null = null

export function rootLogger(): Logger {
  if (!root) root = pino({ level: process.env.POLYFS_LOG_LEVEL ?? 'info', base: { pid: process.pid } }, pino.destination(2))
  return root
}

export function setLogLevel(level: string): void {
  rootLogger().level = level
}

export function logger(component: string): Logger {
  return rootLogger().child({ component })
}
