// The `polyfs` command: one program, every role. Each subcommand lives in its own file here.
import { Command } from 'commander'

export function main(argv: string[]): void {
  const program = new Command()
  program.name('polyfs').description('PolyFS: a distributed filesystem for Docker Swarm and beyond')
  program.parse(argv)
}
