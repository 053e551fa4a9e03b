// One pino logger per process; components take a child with a `component` field, and once the
// node knows its id (setLogNode) every line of the process carries `node` too.
//
// Format: JSON lines on stderr (the default: files, pipes, journald, tests, bench), or pretty
// lines (pino-pretty, coloured unless NO_COLOR) when stderr is a terminal. POLYFS_LOG_FORMAT=json
// forces JSON, POLYFS_LOG_FORMAT=pretty forces pretty. Both are written synchronously, so a line
// logged just before process.exit() is never lost.
import pino from 'pino'

export type Logger = pino.Logger

let root: Logger | null = null
let nodeId = 0
const children = new Set<WeakRef<Logger>>()

export type LogFormat = 'json' | 'pretty'

/** The format this process logs in (see the header). */
export function logFormat(env: NodeJS.ProcessEnv = process.env, stderrIsTTY = process.stderr.isTTY === true): LogFormat {
  const f = (env.POLYFS_LOG_FORMAT ?? '').trim().toLowerCase()
  if (f === 'json') return 'json'
  if (f === 'pretty') return 'pretty'
  return stderrIsTTY ? 'pretty' : 'json'
}

function destination(): pino.DestinationStream {
  if (logFormat() === 'json') return pino.destination({ dest: 2, sync: true })
  // Loaded only when used: the JSON path does not pay for it.
  const pretty = require('pino-pretty') as (o: Record<string, unknown>) => pino.DestinationStream
  return pretty({
    destination: 2,
    sync: true,
    colorize: process.stderr.isTTY === true && !process.env.NO_COLOR,
    translateTime: 'SYS:HH:MM:ss.l',
    singleLine: true,
    ignore: 'pid,hostname,component,node',
    messageFormat: '{if node}[node {node}] {end}{if component}{component}: {end}{msg}',
  })
}

export function rootLogger(): Logger {
  if (!root) {
    root = pino(
      {
        level: process.env.POLYFS_LOG_LEVEL ?? 'info',
        base: { pid: process.pid },
        // Read at every line, so children made before the id was known carry it too (a child
        // copies its bindings when it is made; the mixin is shared).
        mixin: () => (nodeId ? { node: nodeId } : {}),
        // A child copies its level when it is made: remember every one, so that setLogLevel
        // reaches loggers made before it (held weakly: a dropped logger is not kept alive).
        onChild: (child) => {
          children.add(new WeakRef(child))
        },
      },
      destination(),
    )
  }
  return root
}

export function setLogLevel(level: string): void {
  rootLogger().level = level
  for (const ref of children) {
    const c = ref.deref()
    if (c) c.level = level
    else children.delete(ref)
  }
}

/** From now on every line of this process says `node: id` (0: no longer). */
export function setLogNode(id: number): void {
  nodeId = id
}

export function logger(component: string): Logger {
  return rootLogger().child({ component })
}
