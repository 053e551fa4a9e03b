// The `polyfs` command: one program, every role.
//   index.ts  the commander program: subcommands, flags, help text
//   mount.ts     `polyfs mount --local` and `polyfs dev --nodes 0`: a local store through FUSE
//   cluster.ts   `polyfs node`, `polyfs mount --waypoints`, `polyfs dev`: the cluster
//   status.ts    `polyfs status`
//   waypoint.ts  `polyfs waypoint`
//   plugin.ts    `polyfs plugin`: the Docker plugin's entrypoint
import { Command, InvalidArgumentError, Option } from 'commander'
import path from 'node:path'
import { runClientMount, runDev, runNode } from './cluster'
import { runLocalMount } from './mount'
import { PLUGIN_ENV, runPlugin } from './plugin'
import { runStatus } from './status'
import { runWaypoint } from './waypoint'

/** host:port with a port in 0..65535, or a usage error. */
function address(value: string): string {
  const m = /^(.+):(\d{1,5})$/.exec(value.trim())
  if (!m || Number(m[2]) > 65535) throw new InvalidArgumentError('expected host:port')
  return value.trim()
}

function addresses(value: string): string[] {
  const list = value.split(',').map((s) => s.trim()).filter(Boolean)
  if (list.length === 0) throw new InvalidArgumentError('expected a comma-separated list of host:port')
  return list.map(address)
}

function count(lo: number, hi: number) {
  return (value: string): number => {
    const n = Number(value)
    if (!Number.isInteger(n) || n < lo || n > hi) throw new InvalidArgumentError(`expected a whole number from ${lo} to ${hi}`)
    return n
  }
}

/** The secret from the flag or POLYFS_SECRET; a clear error when neither is set. */
function secretOf(flag: string | undefined): string {
  const s = flag || process.env.POLYFS_SECRET
  if (!s) throw new Error('no cluster secret: set POLYFS_SECRET or pass --secret')
  return s
}

/** A number of seconds in [0, 3600], or a usage error that says so. */
function seconds(value: string): number {
  const n = Number(value)
  if (value.trim() === '' || !Number.isFinite(n) || n < 0 || n > 3600) throw new InvalidArgumentError('expected a number of seconds from 0 to 3600')
  return n
}

export function main(argv: string[]): void {
  const program = new Command()
  program
    .name('polyfs')
    .description('PolyFS: a distributed filesystem that ships as a Docker managed volume plugin.\nRun `polyfs waypoint` somewhere, `polyfs node` on every host, and mount with `polyfs node --mount` or `polyfs mount --waypoints`.')
    .showHelpAfterError()
  const logLevel = () => new Option('--log-level <level>', 'log level: trace, debug, info, warn, error').default('info').choices(['trace', 'debug', 'info', 'warn', 'error'])

  program
    .command('mount')
    .description('Mount a PolyFS filesystem at MOUNTPOINT until SIGINT/SIGTERM, then flush and unmount: a cluster (--waypoints; stores nothing here) or a single-node local store (--local).')
    .option('--waypoints <list>', 'the cluster: comma-separated waypoint addresses (host:port)', addresses)
    .option('--local <dataDir>', 'serve a single-node filesystem stored in DATA_DIR (created when missing; for development and tests)')
    .option('--secret <secret>', 'cluster secret with --waypoints (default: env POLYFS_SECRET, preferred: argv is visible to other users)')
    .argument('<mountpoint>', 'an existing, empty directory')
    .addOption(logLevel())
    .option('--attr-timeout <seconds>', 'kernel attribute/entry cache lifetime, 0 to 3600 (default: 1 with --local; 0 with --waypoints, so metadata stays linearizable across hosts)', seconds)
    .option('--fuse-debug', 'print libfuse debug output', false)
    .option('--http <addr>', 'with --waypoints: serve the status page, /metrics, /healthz and /readyz on host:port', address)
    .action(async (mountpoint: string, o: { local?: string; waypoints?: string[]; secret?: string; logLevel: string; attrTimeout?: number; fuseDebug: boolean; http?: string }) => {
      if (!!o.local === !!o.waypoints) throw new Error('mount: give exactly one of --waypoints (a cluster) or --local (a local store)')
      if (o.waypoints) {
        await runClientMount({ waypoints: o.waypoints, mountpoint, secret: secretOf(o.secret), logLevel: o.logLevel, attrTimeoutSec: o.attrTimeout ?? 0, http: o.http })
        return
      }
      await runLocalMount({ dataDir: o.local as string, mountpoint, logLevel: o.logLevel, attrTimeoutSec: o.attrTimeout ?? 1, debug: o.fuseDebug })
    })

  program
    .command('node')
    .description('Run a cluster node (every role: data regions, the master group when elected, optionally a mount) until SIGINT/SIGTERM. A new node joins the cluster its waypoints know, or creates one.')
    .requiredOption('--data <dir>', 'data directory (created when missing): the node\'s identity and store')
    .requiredOption('--listen <addr>', 'host:port to serve gRPC on', address)
    .option('--advertise <addr>', 'host:port other nodes and clients use to reach this node (default: the listen address)', address)
    .requiredOption('--waypoints <list>', 'comma-separated waypoint addresses (host:port)', addresses)
    .option('--mount <dir>', 'also mount the filesystem at DIR (an existing, empty directory)')
    .option('--secret <secret>', 'cluster secret (default: env POLYFS_SECRET, preferred: argv is visible to other users)')
    .option('--attr-timeout <seconds>', 'with --mount: kernel attribute/entry cache lifetime (default 0: linearizable metadata)', seconds, 0)
    .option('--data-replicas <n>', 'replicas per data region, for a NEW cluster (default 3)', count(1, 7))
    .option('--member-replace-after <seconds>', 'for a NEW cluster: replace a master member silent this long (default 1800)', count(1, 7 * 86400))
    .option('--down-after <seconds>', 'for a NEW cluster: show a node down after this long without a heartbeat (default 10)', count(1, 86400))
    .option('--http <addr>', 'serve the status page, /metrics, /healthz and /readyz on host:port (read-only, no secret: bind it where only operators reach)', address)
    .addOption(logLevel())
    .action(async (o: { data: string; listen: string; advertise?: string; waypoints: string[]; mount?: string; secret?: string; attrTimeout: number; dataReplicas?: number; memberReplaceAfter?: number; downAfter?: number; logLevel: string; http?: string }) => {
      await runNode({
        data: o.data,
        listen: o.listen,
        advertise: o.advertise,
        waypoints: o.waypoints,
        mount: o.mount,
        secret: secretOf(o.secret),
        logLevel: o.logLevel,
        attrTimeoutSec: o.attrTimeout,
        dataReplicas: o.dataReplicas,
        memberReplaceAfterSec: o.memberReplaceAfter,
        downAfterSec: o.downAfter,
        http: o.http,
      })
    })

  program
    .command('status')
    .description('Show the cluster at a glance, the same picture as the status page: health and problems, the master group and its leader, nodes (state, roles, space, memory, CPU, heartbeat), regions with their replicas and leaders, tasks in progress, recent events. Exits 1 when no master answers.')
    .requiredOption('--waypoints <list>', 'comma-separated waypoint addresses (host:port)', addresses)
    .option('--secret <secret>', 'cluster secret (default: env POLYFS_SECRET)')
    .option('--json', 'print the picture as JSON (with --watch: one document per line)', false)
    .option('--watch [seconds]', 'redraw every SECONDS (default 2, at least 0.2) until Ctrl-C', (v: string) => {
      const n = Number(v)
      if (v.trim() === '' || !Number.isFinite(n) || n < 0.2 || n > 3600) throw new InvalidArgumentError('expected a number of seconds from 0.2 to 3600')
      return n
    })
    .addOption(logLevel().default('warn'))
    .addHelpText('after', '\nColours only on a terminal, and not when NO_COLOR is set.\n')
    .action(async (o: { waypoints: string[]; secret?: string; json: boolean; watch?: number | true; logLevel: string }) => {
      await runStatus({ waypoints: o.waypoints, secret: secretOf(o.secret), json: o.json, watchSec: o.watch === true ? 2 : o.watch, logLevel: o.logLevel })
    })

  program
    .command('dev')
    .description('Development: a local cluster (one waypoint and N nodes as child processes on 127.0.0.1, logs in DATA/logs) mounted at ./mnt until Ctrl-C; the data survives a restart. `make up` runs this. --nodes 0: a single-node local store instead.')
    .option('--nodes <n>', 'number of nodes (0: no cluster, a local store)', count(0, 9), 3)
    .option('--mount <dir>', 'mountpoint (created when missing)', './mnt')
    .option('--data <dir>', 'data directory', './.polyfs-dev')
    .option('--port <port>', 'waypoint port; node i listens on port+i', count(1024, 65000), 7700)
    .addOption(logLevel())
    .action(async (o: { nodes: number; mount: string; data: string; port: number; logLevel: string }) => {
      if (o.nodes === 0) {
        await runLocalMount({ dataDir: path.resolve(o.data, 'data'), mountpoint: path.resolve(o.mount), logLevel: o.logLevel, createMountpoint: true, banner: true })
        return
      }
      await runDev({ nodes: o.nodes, mount: o.mount, data: o.data, logLevel: o.logLevel, basePort: o.port, host: '127.0.0.1' })
    })

  program
    .command('waypoint')
    .description('Serve a waypoint (tells starting nodes who leads the master group; memory only) until SIGINT/SIGTERM.')
    .requiredOption('--listen <addr>', 'host:port to listen on')
    .option('--secret <secret>', 'cluster secret (default: env POLYFS_SECRET, preferred: argv is visible to other users)')
    .addOption(logLevel())
    .action(async (o: { listen: string; secret?: string; logLevel: string }) => {
      await runWaypoint({ listen: o.listen, secret: o.secret, logLevel: o.logLevel })
    })

  program
    .command('plugin')
    .description('The Docker volume plugin\'s entrypoint: a node (and a waypoint when this host is one), the filesystem mounted at MOUNTPOINT, and Docker\'s VolumeDriver API on SOCKET; a volume is the directory /volumes/NAME. Settings come from the environment (the plugin\'s settable env).')
    .option('--socket <path>', 'VolumeDriver API socket', '/run/docker/plugins/polyfs.sock')
    .option('--mountpoint <dir>', 'where the filesystem is mounted (the plugin\'s propagated mount)', '/mnt/polyfs')
    .option('--data <dir>', 'the node\'s data directory', '/var/lib/polyfs')
    .option('--listen <addr>', 'host:port to serve gRPC on (default: the ADVERTISE host at PORT)', address)
    .addOption(new Option('--worker', 'internal: the supervised process that does the work').hideHelp())
    .addHelpText('after', '\nEnvironment:\n' + Object.entries(PLUGIN_ENV).map(([k, v]) => `  ${k.padEnd(14)} ${v}`).join('\n') + '\n')
    .action(async (o: { socket: string; mountpoint: string; data: string; listen?: string; worker?: boolean }) => {
      await runPlugin(o)
    })

  program.addHelpText(
    'after',
    '\nEnvironment:\n  POLYFS_SECRET      the cluster secret (instead of --secret)\n  POLYFS_OP_TIMING=1  log, at unmount, how many times each FUSE operation ran and its mean time inside PolyFS\n\nLogs are JSON lines (pino) on stderr, human-readable on a terminal (POLYFS_LOG_FORMAT=json|pretty to choose). Docs: docs/ in the repository.\n',
  )
  program.parseAsync(argv).catch((err: Error) => {
    process.stderr.write(`polyfs: ${err.message}\n`)
    process.exit(1)
  })
}
