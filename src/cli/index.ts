// The `polyfs` command: one program, every role.
//   index.ts  the commander program: subcommands, flags, help text
//   mount.ts  `polyfs mount --local` and `polyfs dev`: a local store served through FUSE
// Later issues add waypoint, node, status and plugin here, each in its own file.
import { Command, InvalidArgumentError, Option } from 'commander'
import path from 'node:path'
import { runLocalMount } from './mount'
import { runWaypoint } from './waypoint'

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
    .description('PolyFS: a distributed filesystem that ships as a Docker managed volume plugin.\nToday: a single-node filesystem on a local store, served through FUSE.')
    .showHelpAfterError()
  const logLevel = () => new Option('--log-level <level>', 'log level: trace, debug, info, warn, error').default('info').choices(['trace', 'debug', 'info', 'warn', 'error'])

  program
    .command('mount')
    .description('Mount a PolyFS filesystem at MOUNTPOINT until SIGINT/SIGTERM, then flush and unmount.')
    .requiredOption('--local <dataDir>', 'serve a single-node filesystem stored in DATA_DIR (created when missing; for development and tests)')
    .argument('<mountpoint>', 'an existing, empty directory')
    .addOption(logLevel())
    .option('--attr-timeout <seconds>', 'kernel attribute/entry cache lifetime, 0 to 3600', seconds, 1)
    .option('--fuse-debug', 'print libfuse debug output', false)
    .action(async (mountpoint: string, o: { local: string; logLevel: string; attrTimeout: number; fuseDebug: boolean }) => {
      await runLocalMount({ dataDir: o.local, mountpoint, logLevel: o.logLevel, attrTimeoutSec: o.attrTimeout, debug: o.fuseDebug })
    })

  program
    .command('dev')
    .description('Development: a single-node filesystem at ./mnt (data in ./.polyfs-dev) until Ctrl-C. `make up` runs this.')
    .option('--mount <dir>', 'mountpoint (created when missing)', './mnt')
    .option('--data <dir>', 'data directory', './.polyfs-dev/data')
    .addOption(logLevel())
    .action(async (o: { mount: string; data: string; logLevel: string }) => {
      await runLocalMount({ dataDir: path.resolve(o.data), mountpoint: path.resolve(o.mount), logLevel: o.logLevel, createMountpoint: true, banner: true })
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

  program.addHelpText(
    'after',
    '\nEnvironment:\n  POLYFS_OP_TIMING=1  log, at unmount, how many times each FUSE operation ran and its mean time inside PolyFS\n\nLogs are JSON lines (pino) on stderr. Docs: docs/ in the repository.\n',
  )
  program.parseAsync(argv).catch((err: Error) => {
    process.stderr.write(`polyfs: ${err.message}\n`)
    process.exit(1)
  })
}
