// `polyfs status`: the cluster at a glance in the terminal, the same Picture the status page
// shows (src/observe/picture.ts): a header (cluster, health, master), problems, nodes, regions
// with their replicas, tasks in progress and the last events. Colours only on a terminal and
// without NO_COLOR. `--watch [seconds]` redraws it in place until Ctrl-C.
//
// `--json` prints the Picture itself, pretty-printed (the shape is the Picture interface; fields
// are only ever added):
//   { atMs, clusterId, mapVersion,
//     master: { leader, leaderAddress, term, voters[], learners[] },
//     settings: { dataReplicas, downAfterMs },
//     nodes: [{ id, address, httpAddress, health: up|down|removed|unreachable|unknown, masterState,
//               error, roles[] (master-leader|master|master-learner|data), capacityBytes,
//               freeBytes, rssBytes, cpuCores, loopLagMs, lastHeartbeatMs, uptimeMs, replicas,
//               leads, kvOps[], kvLatencyMs[], fuseOps[] }],
//     regions: [{ id, startKey, endKey (hex, "" = unbounded), epoch ("confVer/version"), leader,
//                 voters[], learners[], health: ok|under-replicated|unavailable, why, sizeBytes,
//                 replicas: [{ nodeId, role: leader|follower|learner, live, appliedIndex }] }],
//     events: [{ atMs, kind, nodeId, subjectNode, regionId, message, level }] (oldest first),
//     tasks: [{ id, kind, label, done, total, unit, rate, etaMs, startedMs, finishedMs, failed,
//               regionId, nodeId }],
//     totals: { stepMs, kvOps[], kvLatencyMs[], fuseOps[] },
//     problems: string[], healthy: boolean }
// With --watch, --json prints one such document per round on one line (JSON lines); a round
// that failed prints { "atMs": ..., "error": "..." } instead.
import { gatherPicture, type Picture, type PictureNode, type PictureRegion } from '../observe/picture'
import { formatAmount, formatProgress } from '../observe/progress'
import { RpcClients, type TaskProgress } from '../rpc'
import { logger, setLogLevel } from '../util'

export interface StatusArgs {
  waypoints: string[]
  secret: string
  json: boolean
  /** Redraw every this many seconds until Ctrl-C (undefined: once). */
  watchSec?: number
  logLevel?: string
}

/** Events shown under the tables. */
const SHOWN_EVENTS = 10
const GATHER_TIMEOUT_MS = 2000

export interface RenderOptions {
  color: boolean
  /** The time ages are measured from (default: the picture's). */
  now?: number
}

/** Colours wanted on `out`: a terminal, and NO_COLOR unset or empty (no-color.org). */
export function wantColor(out: { isTTY?: boolean }, env: NodeJS.ProcessEnv = process.env): boolean {
  return out.isTTY === true && !env.NO_COLOR
}

const ANSI = /\x1b\[[0-9;?]*[A-Za-z]/g
const visible = (s: string) => s.replace(ANSI, '').length

function painter(on: boolean) {
  const sgr = (code: string) => (s: string) => (on && s ? `\x1b[${code}m${s}\x1b[0m` : s)
  return { red: sgr('31'), green: sgr('32'), yellow: sgr('33'), cyan: sgr('36'), dim: sgr('2'), bold: sgr('1'), redBold: sgr('1;31'), greenBold: sgr('1;32') }
}
type Paint = ReturnType<typeof painter>

/** Columns padded to their widest cell (ANSI codes do not count); the last one is not padded. */
function table(rows: string[][]): string[] {
  const widths: number[] = []
  for (const r of rows) r.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, visible(c))))
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c + ' '.repeat((widths[i] ?? 0) - visible(c)))).join('  ').trimEnd())
}

/** "[#####-----] 52%": a fraction as a text bar. */
export function bar(fraction: number, width = 10): string {
  const f = Number.isFinite(fraction) ? Math.min(1, Math.max(0, fraction)) : 0
  const full = Math.round(f * width)
  return `[${'#'.repeat(full)}${'-'.repeat(width - full)}] ${Math.round(f * 100)}%`
}

function age(ms: number, now: number): string {
  if (!ms) return 'never'
  const s = Math.max(0, (now - ms) / 1000)
  return s < 60 ? `${s.toFixed(1)}s ago` : s < 3600 ? `${Math.floor(s / 60)}m${String(Math.floor(s % 60)).padStart(2, '0')}s ago` : `${(s / 3600).toFixed(1)}h ago`
}

function duration(ms: number): string {
  if (!ms) return '-'
  const s = Math.floor(ms / 1000)
  if (s < 60) return `${s}s`
  if (s < 3600) return `${Math.floor(s / 60)}m`
  if (s < 86400) return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`
  return `${Math.floor(s / 86400)}d${Math.floor((s % 86400) / 3600)}h`
}

const clockTime = (ms: number) => new Date(ms).toTimeString().slice(0, 8)
const list = (ids: number[]) => (ids.length ? ids.join(',') : '-')
const last = (a: number[]) => a[a.length - 1] ?? 0

function nodeState(n: PictureNode, c: Paint): string {
  switch (n.health) {
    case 'up':
      return c.green('up')
    case 'down':
    case 'unreachable':
      return c.red(n.health)
    case 'removed':
      return c.dim('removed')
    default:
      return c.yellow(n.health)
  }
}

function regionHealth(r: PictureRegion, c: Paint): string {
  const h = r.health === 'ok' ? c.green('ok') : r.health === 'under-replicated' ? c.yellow('under-replicated') : c.red(r.health)
  return r.why ? `${h} ${c.dim(r.why)}` : h
}

/** "1L 2F 3F!": each replica's node, its role (L leader, F follower, l learner), ! when not live. */
function replicas(r: PictureRegion, c: Paint): string {
  return r.replicas
    .map((x) => {
      const s = `${x.nodeId}${x.role === 'leader' ? 'L' : x.role === 'learner' ? 'l' : 'F'}`
      return x.live ? s : c.red(`${s}!`)
    })
    .join(' ')
}

const range = (r: PictureRegion) => `${r.startKey || '-inf'}..${r.endKey || '+inf'}`

/** A task as table cells: label, bar, progress, amount, where. */
function taskRow(t: TaskProgress, c: Paint): string[] {
  const where = [t.nodeId ? `node ${t.nodeId}` : '', t.regionId ? `region ${t.regionId}` : ''].filter(Boolean).join(', ')
  const amount = t.total ? `${t.unit === 'bytes' ? formatAmount(t.done, t.unit) : Math.round(t.done)} of ${formatAmount(t.total, t.unit)}` : ''
  const progress = formatProgress(t)
  const state = t.finishedMs ? (t.failed ? c.red(progress) : c.green(progress)) : progress
  return [`  ${t.label}`, t.total ? `[${bar(t.done / t.total).slice(1, 11)}]` : '', state, c.dim(amount), c.dim(where)]
}

/** The picture as text, the way the status page shows it. */
export function render(p: Picture, o: RenderOptions): string {
  const c = painter(o.color)
  const now = o.now ?? p.atMs
  const out: string[] = []
  const m = p.master
  const members = `members ${list(m.voters)}${m.learners.length ? `, learners ${list(m.learners)}` : ''}`
  const leader = m.leader ? `node ${m.leader} (${m.leaderAddress || '?'})` : c.red('none')
  out.push(`${c.bold(`cluster ${p.clusterId || '?'}`)}  ${p.healthy ? c.greenBold('HEALTHY') : c.redBold('UNHEALTHY')}  master leader ${leader}, term ${m.term}, ${members}`)
  const up = p.nodes.filter((n) => n.health === 'up').length
  const counted = p.nodes.filter((n) => n.health !== 'removed').length
  const load = `${Math.round(last(p.totals.kvOps))} kv ops/s (${last(p.totals.kvLatencyMs).toFixed(1)} ms), ${Math.round(last(p.totals.fuseOps))} fuse ops/s`
  out.push(c.dim(`map v${p.mapVersion}, ${up} of ${counted} nodes up, ${p.regions.length} region${p.regions.length === 1 ? '' : 's'}, ${p.settings.dataReplicas} replicas wanted, down after ${(p.settings.downAfterMs / 1000).toFixed(0)} s; ${load}; at ${clockTime(p.atMs)}`))

  if (p.problems.length) {
    out.push('', c.redBold('PROBLEMS'))
    for (const s of p.problems) out.push(c.red(`  ! ${s}`))
  }

  out.push('')
  const nodeRows = [['NODE', 'ADDRESS', 'STATE', 'ROLES', 'REGIONS', 'FREE/CAPACITY', 'USED', 'RSS MiB', 'CPU %', 'LAG ms', 'HEARTBEAT', 'UPTIME'].map((h) => c.bold(h))]
  for (const n of p.nodes) {
    const used = n.capacityBytes ? bar(1 - n.freeBytes / n.capacityBytes) : '-'
    const answered = n.health === 'up'
    nodeRows.push([
      String(n.id),
      n.address,
      nodeState(n, c),
      n.roles.join(',') || '-',
      answered ? `${n.replicas} (${n.leads} led)` : '-',
      n.capacityBytes ? `${formatAmount(n.freeBytes, 'bytes')}/${formatAmount(n.capacityBytes, 'bytes')}` : '-',
      used,
      n.rssBytes ? (n.rssBytes / 2 ** 20).toFixed(0) : '-',
      answered ? (n.cpuCores * 100).toFixed(0) : '-',
      answered ? n.loopLagMs.toFixed(1) : '-',
      age(n.lastHeartbeatMs, now),
      answered ? duration(n.uptimeMs) : '-',
    ])
  }
  out.push(...table(nodeRows))

  out.push('')
  const regionRows = [['REGION', 'RANGE', 'EPOCH', 'LEADER', 'REPLICAS', 'SIZE', 'HEALTH'].map((h) => c.bold(h))]
  for (const r of p.regions) {
    const leaderLive = r.replicas.find((x) => x.nodeId === r.leader)?.live ?? false
    regionRows.push([String(r.id), range(r), r.epoch, r.leader ? (leaderLive ? String(r.leader) : c.red(`${r.leader}!`)) : c.red('none'), replicas(r, c), r.sizeBytes ? formatAmount(r.sizeBytes, 'bytes') : '-', regionHealth(r, c)])
  }
  out.push(...table(regionRows))
  out.push(c.dim('replicas: node and role, L leader, F follower, l learner; ! not live'))

  if (p.tasks.length) {
    out.push('', c.bold('TASKS'))
    out.push(...table(p.tasks.map((t) => taskRow(t, c))))
  }

  const shown = p.events.slice(-SHOWN_EVENTS)
  if (shown.length) {
    out.push('', c.bold(`EVENTS (last ${shown.length} of ${p.events.length})`))
    const rows = shown.map((e) => {
      const level = e.level === 'error' ? c.red('error') : e.level === 'warn' ? c.yellow('warn') : c.dim(e.level || 'info')
      return [`  ${clockTime(e.atMs)}`, level, c.cyan(e.kind), e.message]
    })
    out.push(...table(rows))
  }
  return out.join('\n') + '\n'
}

/** Once: the picture, or an error (the caller exits 1) when no master answers. */
async function once(clients: RpcClients, a: StatusArgs): Promise<void> {
  let p: Picture
  try {
    p = await gatherPicture(clients, { waypoints: a.waypoints, timeoutMs: GATHER_TIMEOUT_MS })
  } catch (err) {
    throw new Error(`status: ${(err as Error).message}`)
  }
  process.stdout.write(a.json ? JSON.stringify(p, null, 2) + '\n' : render(p, { color: wantColor(process.stdout) }))
}

/** `line` cut to `cols` visible characters (ANSI codes kept, colour reset after a cut). */
function cut(line: string, cols: number): string {
  if (visible(line) <= cols) return line
  let out = ''
  let n = 0
  for (let i = 0; i < line.length && n < cols; ) {
    const m = /^\x1b\[[0-9;?]*[A-Za-z]/.exec(line.slice(i, i + 16))
    if (m) {
      out += m[0]
      i += m[0].length
    } else {
      out += line[i]
      i++
      n++
    }
  }
  return out + '\x1b[0m'
}

/**
 * Redraws every `everySec` until SIGINT/SIGTERM. On a terminal: the alternate screen, each frame
 * drawn from the home position over the last one (no flicker) and cut to the window, the
 * terminal restored on the way out. Elsewhere: frames one after the other. A failed round shows
 * its error above the last good picture, and the next round tries again. One RpcClients serves
 * every round.
 */
async function watch(clients: RpcClients, a: StatusArgs, everySec: number): Promise<void> {
  const out = process.stdout
  const screen = out.isTTY === true && !a.json
  const color = wantColor(out)
  const c = painter(color)
  let stopped = false
  let interrupt: (() => void) | null = null
  /** `p`, or null as soon as a stop is asked for (nothing piles up across rounds). */
  const unlessStopped = <T>(p: Promise<T>): Promise<T | null> =>
    stopped
      ? Promise.resolve(null)
      : new Promise<T | null>((resolve, reject) => {
          interrupt = () => resolve(null)
          p.then(resolve, reject)
        }).finally(() => (interrupt = null))
  const pause = (ms: number): Promise<unknown> => {
    let timer: NodeJS.Timeout | undefined
    return unlessStopped(new Promise((r) => (timer = setTimeout(r, ms)))).finally(() => clearTimeout(timer))
  }
  let restored = !screen
  const restore = () => {
    if (restored) return
    restored = true
    out.write('\x1b[?25h\x1b[?1049l') // show the cursor, leave the alternate screen
  }
  const stop = () => {
    if (stopped) {
      // A second Ctrl-C: do not wait for anything.
      restore()
      process.exit(130)
    }
    stopped = true
    interrupt?.()
  }
  process.on('SIGINT', stop)
  process.on('SIGTERM', stop)
  process.on('exit', restore)
  let frame = ''
  const draw = () => {
    if (!screen) {
      out.write(frame)
      return
    }
    const cols = out.columns || 200
    const lines = frame.replace(/\n$/, '').split('\n').slice(0, Math.max(1, (out.rows || 1000) - 1))
    out.write('\x1b[H' + lines.map((l) => cut(l, cols) + '\x1b[K').join('\n') + '\x1b[J')
  }
  if (screen) {
    out.write('\x1b[?1049h\x1b[?25l\x1b[H\x1b[2J') // alternate screen, hide the cursor, clear
    out.on('resize', draw)
  }
  let good: Picture | null = null
  let masterHint: string | undefined
  try {
    while (!stopped) {
      const started = Date.now()
      const r = await unlessStopped(
        gatherPicture(clients, { waypoints: a.waypoints, masterHint, timeoutMs: GATHER_TIMEOUT_MS }).then(
          (p) => ({ p, err: null }),
          (err: Error) => ({ p: null, err }),
        ),
      )
      if (!r) break
      if (r.p) good = r.p
      // The leader just seen is asked first next round; after a failure, the waypoints.
      masterHint = r.p?.master.leaderAddress || undefined
      if (a.json) {
        out.write(r.p ? JSON.stringify(r.p) + '\n' : JSON.stringify({ atMs: started, error: r.err?.message ?? 'unknown error' }) + '\n')
      } else {
        const title = c.dim(`polyfs status every ${everySec} s, ${clockTime(Date.now())}${screen ? ', Ctrl-C to quit' : ''}`)
        const failed = r.p ? '' : `${c.redBold(`round failed: ${r.err?.message ?? 'unknown error'}`)}\n`
        const shown = r.p ?? good
        const body = shown ? `${r.p ? '' : c.dim(`last good picture, from ${clockTime(shown.atMs)}:`) + '\n'}${render(shown, { color, now: Date.now() })}` : ''
        frame = `${title}\n${failed}${body}${screen ? '' : '\n'}`
        draw()
      }
      await pause(Math.max(0, everySec * 1000 - (Date.now() - started)))
    }
  } finally {
    process.off('SIGINT', stop)
    process.off('SIGTERM', stop)
    out.off('resize', draw)
    restore()
    process.off('exit', restore)
  }
}

export async function runStatus(a: StatusArgs): Promise<void> {
  if (a.logLevel) setLogLevel(a.logLevel)
  const clients = new RpcClients({ secret: a.secret, logger: logger('status') })
  try {
    if (a.watchSec === undefined) await once(clients, a)
    else await watch(clients, a, a.watchSec)
  } finally {
    clients.close()
  }
}
