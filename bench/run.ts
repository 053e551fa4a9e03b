// PolyFS benchmark harness (issues 3 and 5). Mounts PolyFS (single node), a 3-node PolyFS
// cluster on loopback, a no-op filesystem on the same fuse-native binding, bindfs, and uses the
// local disk, one after the other with fresh mounts, runs the same workloads on each, and prints
// one table with ratios, the storing processes' memory and write amplification, and the
// targets. See bench/README.md.
//
//   node dist/bench/run.js [--quick] [--systems polyfs,cluster,noop,bindfs,local] [--rows create,stat,...]
//                          [--profile DIR] [--out FILE] [--summarize FILE.cpuprofile...]
import { execFileSync } from 'node:child_process'
import { promises as fsp, mkdirSync, writeFileSync } from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { Task } from '../src/observe'
import { summaryText } from './lib/profile'
import { ProcFigures, ProcResults, Results, errorsText, mergeRounds, notesText, procText, roundsText, table, targetLines, targets, truncatedText } from './lib/report'
import { Proc, RssWatch, ioSnapshot, writeAmp } from './lib/procstat'
import { dbRows } from './lib/dbrows'
import { SYSTEMS, SystemId, Up, safeRm, setup } from './lib/systems'
import { FULL, Measure, QUICK, ROWS, RowHooks, Sizes, dataRows, metaRows } from './lib/workloads'

const REPO = path.resolve(__dirname, '..', '..')

interface Args { quick: boolean; systems: SystemId[]; rows: Set<string>; profile?: string; out?: string; summarize: string[]; work?: string; rounds?: number }

/** Rounds when --rounds is not given: every system set up, measured and torn down this often. */
const DEFAULT_ROUNDS = { full: 2, quick: 1 }

function usage(msg?: string): never {
  if (msg) process.stderr.write(`run: ${msg}\n`)
  process.stderr.write(
    'usage: node dist/bench/run.js [--quick] [--systems ' + SYSTEMS.map((s) => s.id).join(',') + '] [--rows ' + ROWS.map((r) => r.id).join(',') + ']\n' +
      '                              [--rounds N] [--profile DIR] [--out FILE.json] [--workdir DIR]\n' +
      '  --rounds N  set every system up fresh, measure it and tear it down N times (default 2, --quick 1);\n' +
      '              the table shows the mean, the per-round values follow it\n' +
      '       node dist/bench/run.js --summarize FILE.cpuprofile...\n',
  )
  process.exit(2)
}

function parseArgs(argv: string[]): Args {
  const a: Args = { quick: false, systems: SYSTEMS.map((s) => s.id), rows: new Set(ROWS.map((r) => r.id)), summarize: [] }
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i]!
    const next = () => argv[++i] ?? usage(`${k} needs a value`)
    if (k === '--quick') a.quick = true
    else if (k === '--systems') {
      a.systems = next().split(',') as SystemId[]
      for (const s of a.systems) if (!SYSTEMS.some((x) => x.id === s)) usage(`unknown system ${s}`)
    } else if (k === '--rows') {
      a.rows = new Set(next().split(','))
      for (const r of a.rows) if (!ROWS.some((x) => x.id === r)) usage(`unknown row ${r}`)
    } else if (k === '--profile') a.profile = path.resolve(next())
    else if (k === '--out') a.out = path.resolve(next())
    else if (k === '--workdir') a.work = path.resolve(next())
    else if (k === '--rounds') {
      a.rounds = Number(next())
      if (!Number.isInteger(a.rounds) || a.rounds < 1 || a.rounds > 10) usage('--rounds: a whole number from 1 to 10')
    }
    else if (k === '--summarize') {
      while (argv[i + 1] && !argv[i + 1]!.startsWith('--')) a.summarize.push(argv[++i]!)
    } else if (k === '-h' || k === '--help') usage()
    else usage(`unknown argument ${k}`)
  }
  return a
}

const T0 = Date.now()
const SIGNAL_REPEAT_MS = 1000
const say = (s: string) => process.stderr.write(`${((Date.now() - T0) / 1000).toFixed(1).padStart(6)}s ${s}\n`)

/** Progress of the whole run for the long phases (src/observe's Task): a system
 * counts as done when torn down, a row (a line `  name`) as a share of its system. Every
 * PROGRESS_EVERY_MS without a log line, the current phase and the run's progress are printed. */
const PROGRESS_EVERY_MS = 15_000
const progress = {
  task: null as Task | null,
  systemsDone: 0,
  rowsSeen: 0,
  rowsPerSystem: 1,
  phase: '',
  phaseAt: Date.now(),
  lastLine: Date.now(),
  timer: null as NodeJS.Timeout | null,
  start(systems: number, rowsPerSystem: number): void {
    this.task = new Task({ id: 'bench', kind: 'bench', label: 'bench run', unit: 'systems', total: systems }, () => undefined)
    this.rowsPerSystem = Math.max(1, rowsPerSystem)
    this.timer = setInterval(() => {
      if (Date.now() - this.lastLine < PROGRESS_EVERY_MS) return
      say(`  ... ${this.phase || 'setting up'} for ${((Date.now() - this.phaseAt) / 1000).toFixed(0)} s; run ${this.text()}`)
    }, PROGRESS_EVERY_MS)
    this.timer.unref()
  },
  line(s: string): void {
    this.lastLine = Date.now()
    const m = /^(?:\[[a-z]+\] )?(setting up|tearing down)$|^ {2}([a-z0-9-]+)\b/.exec(s.replace(/^\[[a-z]+\] /, ''))
    if (!m) return
    this.phase = (m[1] ?? m[2]) as string
    this.phaseAt = Date.now()
    if (m[2]) this.rowsSeen++
    this.task?.update(this.systemsDone + Math.min(0.95, this.rowsSeen / this.rowsPerSystem))
  },
  systemDone(): void {
    this.systemsDone++
    this.rowsSeen = 0
    this.task?.update(this.systemsDone)
  },
  stop(): void {
    if (this.timer) clearInterval(this.timer)
  },
  /** "42%, about 12 min left" */
  text(): string {
    const t = this.task
    if (!t) return ''
    const pct = Math.floor((t.done / Math.max(1, t.total)) * 100)
    // The mean rate since the start: systems differ, but a run's phases repeat per system.
    const eta = t.done > 0 ? ((t.total - t.done) * (Date.now() - t.startedMs)) / t.done : 0
    return `${pct}%${eta ? `, about ${eta > 90_000 ? `${Math.round(eta / 60_000)} min` : `${Math.round(eta / 1000)} s`} left` : ''}`
  },
}

const log = (s: string) => {
  progress.line(s)
  say(s)
}

function localDate(d = new Date()): string {
  const p = (n: number) => String(n).padStart(2, '0')
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}`
}

function machine(): Record<string, unknown> {
  const sh = (c: string, args: string[]) => {
    try {
      return execFileSync(c, args, { encoding: 'utf8', timeout: 5000 }).trim().split('\n')[0]
    } catch {
      return null
    }
  }
  return {
    node: process.version,
    kernel: os.release(),
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model,
    loadavg: os.loadavg(),
    memGiB: Math.round(os.totalmem() / 2 ** 30),
    fio: sh('fio', ['--version']),
    bindfs: sh('bindfs', ['--version']),
    commit: sh('git', ['-C', REPO, 'rev-parse', '--short', 'HEAD']),
  }
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2))
  if (args.summarize.length) {
    for (const f of args.summarize) process.stdout.write(summaryText(f) + '\n\n')
    return
  }
  if (process.getuid?.() !== 0) log('warning: not root; dropping caches will fail and cold rows will be warm')
  const sizes: Sizes = args.quick ? QUICK : FULL
  const rows = ROWS.filter((r) => args.rows.has(r.id))
  const work = args.work ?? (await fsp.mkdtemp(path.join(os.tmpdir(), 'polyfs-bench-')))
  await fsp.mkdir(work, { recursive: true })
  if (args.profile) mkdirSync(args.profile, { recursive: true })

  // One system up at a time; a signal tears the current one down before exiting. A system whose
  // setup starts several processes hands its teardown over before it is up (starting).
  let current: Up | null = null
  let starting: (() => Promise<void>) | null = null
  // A second signal exits at once, except within SIGNAL_REPEAT_MS of the first: `timeout` and a
  // terminal's Ctrl-C signal the whole process group, which can deliver the same signal twice.
  let interruptedAt = 0
  const onSignal = (sig: string) => {
    if (interruptedAt) {
      if (Date.now() - interruptedAt < SIGNAL_REPEAT_MS) return
      process.exit(130)
    }
    interruptedAt = Date.now()
    log(`${sig}: tearing down`)
    const down = current ? current.down : starting
    ;(down ? down() : Promise.resolve())
      .catch((err) => log(`teardown failed: ${(err as Error).message}`))
      .finally(() => safeRm(work, []).catch(() => undefined).finally(() => process.exit(130)))
  }
  process.on('SIGINT', () => onSignal('SIGINT'))
  process.on('SIGTERM', () => onSignal('SIGTERM'))

  const started = new Date()
  log(`bench: ${args.quick ? 'quick' : 'full'} run, sizes ${JSON.stringify(sizes)}, work dir ${work}`)
  const rounds = args.rounds ?? (args.quick ? DEFAULT_ROUNDS.quick : DEFAULT_ROUNDS.full)
  const perRound: Results[] = []
  const procs: ProcResults = {}
  const timing: Record<string, number> = {}
  progress.start(args.systems.length * rounds, args.rows.size)
  for (let round = 1; round <= rounds; round++) {
    const results: Results = {}
    perRound.push(results)
    for (const id of args.systems) {
      const t0 = Date.now()
      const tag = rounds > 1 ? `${id} round ${round}` : id
      log(`[${tag}] setting up`)
      const r: Record<string, Measure> = {}
      results[id] = r
      let rss: RssWatch | null = null
      try {
        current = await setup(id, { work, cpuProfDir: (id === 'polyfs' || id === 'cluster') && round === 1 ? args.profile : undefined, log, onStarted: (d) => (starting = d) })
        starting = null
        log(`[${tag}] running in ${current.dir}${current.pid ? ` (pid ${current.pid})` : ''}`)
        const want = args.rows
        const p: ProcFigures | null = current.nodes ? { rss: [] } : null
        let hooks: RowHooks = {}
        if (p && current.nodes) {
          const nodes = current.nodes
          const client = current.client
          const watched: Proc[] = client && !nodes.some((n) => n.pid === client.pid) ? [...nodes, client] : nodes
          log(`[${tag}] idle memory: ${watched.map((x) => `${x.name} pid ${x.pid}`).join(', ')}`)
          rss = await RssWatch.start(watched)
          // The last round's process figures are reported (each round starts fresh).
          procs[id] = p
          hooks = writeAmpHooks(nodes, current.replicas ?? 1, p, (s) => log(`[${tag}] ${s}`))
        }
        if (rows.some((x) => x.kind === 'data')) Object.assign(r, await dataRows(current.dir, sizes, want, log, hooks))
        if (rows.some((x) => x.kind === 'meta')) Object.assign(r, await metaRows(current.dir, sizes, want, log))
        if (rows.some((x) => x.kind === 'db')) {
          // The no-op keeps no data: a database cannot run on it.
          if (id === 'noop') {
            for (const row of rows) if (row.kind === 'db') r[row.id] = { value: null, done: 0, seconds: 0, error: 'not run: the no-op filesystem keeps no data' }
          } else {
            Object.assign(r, await dbRows(current.dir, sizes, want, log))
          }
        }
      } catch (err) {
        log(`[${tag}] failed: ${(err as Error).message}`)
        for (const row of rows) r[row.id] ??= { value: null, done: 0, seconds: 0, error: (err as Error).message }
      } finally {
        if (rss) procs[id]!.rss = rss.stop()
        starting = null
        if (current) {
          log(`[${tag}] tearing down`)
          await current.down().catch((err) => log(`[${tag}] teardown: ${(err as Error).message}`))
          current = null
        }
      }
      for (const k of Object.keys(r)) if (!args.rows.has(k)) delete r[k]
      const secs = (Date.now() - t0) / 1000
      timing[id] = (timing[id] ?? 0) + secs
      progress.systemDone()
      log(`[${tag}] done in ${secs.toFixed(0)} s; run ${progress.text()}`)
    }
  }
  progress.stop()
  const results = mergeRounds(perRound)
  if (!args.work) await safeRm(work, [])

  const t = targets(results, rows, procs)
  const date = localDate(started)
  const header = `PolyFS bench ${date} (${args.quick ? 'quick' : 'full'}: seq ${sizes.seqBytes / 2 ** 20} MiB, ${sizes.files} files, ${sizes.dirs} dirs, random ${sizes.randRuntimeSec} s, metadata phases capped at ${sizes.metaLimitMs / 1000} s)`
  const parts = [header + (rounds > 1 ? `, ${rounds} rounds: the mean, per-round values below` : ''), table(results, rows), roundsText(perRound, rows), errorsText(results), notesText(results), truncatedText(results, rows), procText(procs), `Targets:\n${targetLines(t)}`]
  process.stdout.write(parts.filter((x) => x).join('\n\n') + '\n')

  const out = args.out ?? path.join(REPO, 'bench', 'results', `${date}${args.quick ? '-quick' : ''}.json`)
  mkdirSync(path.dirname(out), { recursive: true })
  writeFileSync(
    out,
    JSON.stringify(
      { date, started: started.toISOString(), mode: args.quick ? 'quick' : 'full', sizes, machine: machine(), rounds, secondsPerSystem: timing, rows: rows.map((x) => ({ id: x.id, label: x.label, unit: x.unit })), results, perRound, processes: procs, targets: t },
      null,
      2,
    ) + '\n',
  )
  log(`results written to ${out}`)
}

/** write_bytes of the storing processes from right before the seqwrite fio job to right after its end fsync. */
function writeAmpHooks(nodes: Proc[], replicas: number, into: ProcFigures, log: (s: string) => void): RowHooks {
  let before: (number | null)[] = []
  return {
    before: async (row) => {
      if (row === 'seqwrite') before = await ioSnapshot(nodes)
    },
    after: async (row, m) => {
      if (row !== 'seqwrite' || m.error || m.done <= 0) return
      into.writeAmp = await writeAmp(row, nodes, before, m.done, replicas)
      const w = into.writeAmp
      if (w.totalBytes !== null) log(`  seqwrite: storing processes wrote ${(w.totalBytes / 2 ** 20).toFixed(0)} MiB for ${(w.fileBytes / 2 ** 20).toFixed(0)} MiB of file data`)
    },
  }
}

main().catch((err) => {
  log(`bench failed: ${(err as Error).stack ?? err}`)
  process.exit(1)
})
