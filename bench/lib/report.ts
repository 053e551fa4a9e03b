// The table, the ratios, the per-process figures (RSS, write amplification) and the targets of
// issue 3 (ratios of the single-node PolyFS) and issue 5 (absolute figures of the 3-node cluster).
import { Measure, ROWS, RowDef } from './workloads'
import { SYSTEMS, SystemId } from './systems'
import type { RssReport, WriteAmp } from './procstat'

export type Results = Partial<Record<SystemId, Record<string, Measure>>>

/** RSS and write amplification of a system's storing processes (systems that expose them). */
export interface ProcFigures { rss: RssReport[]; writeAmp?: WriteAmp }
export type ProcResults = Partial<Record<SystemId, ProcFigures>>

/** value is a ratio (kind 'ratio') or an absolute figure in unit (kind 'absolute'). */
export interface TargetLine { target: string; row: string; kind: 'ratio' | 'absolute'; value: number | null; unit?: string; need: number; met: boolean | null }

const MiB = 2 ** 20
/** Issue 5, on this machine, for the 3-node cluster. The harness measures MB/s (10^6 bytes/s). */
export const ISSUE5 = {
  randwriteIops: 1500,
  createPerSec: 2000,
  seqwriteMBs: (150 * MiB) / 1e6,
  seqreadMBs: (700 * MiB) / 1e6,
  idleRssBytes: 150 * MiB,
  writeAmpPerReplica: 2.5,
} as const

const val = (r: Results, s: SystemId, row: string): number | null => r[s]?.[row]?.value ?? null
const ratio = (a: number | null, b: number | null): number | null => (a !== null && b !== null && b > 0 ? a / b : null)
const label = (s: SystemId) => SYSTEMS.find((x) => x.id === s)?.label ?? s

function fmtVal(v: number | null, unit: string): string {
  if (v === null) return '-'
  if (unit === 'MB/s' || unit === 'x') return v.toFixed(unit === 'x' ? 2 : 1)
  if (unit === 'MiB') return v.toFixed(1)
  return Math.round(v).toLocaleString('en-US')
}
const fmtRatio = (v: number | null) => (v === null ? '-' : v.toFixed(2))
const fmtMiB = (b: number | null) => (b === null ? '-' : (b / MiB).toFixed(1))
const fmtGiB = (b: number | null) => (b === null ? '-' : (b / 2 ** 30).toFixed(2) + ' GiB')

/** A row was bounded by count and stopped at its time cap before reaching it. */
const truncated = (m: Measure | undefined) => !!m && !m.error && m.requested !== undefined && m.done < m.requested

/** Bytes of disk writes per byte of file data, and the same per replica. */
export function ampFigures(w: WriteAmp): { perByte: number | null; perReplica: number | null } {
  const perByte = w.totalBytes === null || w.fileBytes <= 0 ? null : w.totalBytes / w.fileBytes
  return { perByte, perReplica: perByte === null ? null : perByte / w.replicas }
}

/** Issue 3's targets (single-node PolyFS, ratios), then issue 5's when the cluster ran, then
 * issue 7's against the peers. */
export function targets(r: Results, rows: RowDef[], procs: ProcResults = {}): TargetLine[] {
  const out: TargetLine[] = []
  if (r.polyfs) {
    for (const row of rows) {
      if (row.kind === 'meta') {
        const x = ratio(val(r, 'polyfs', row.id), val(r, 'noop', row.id))
        out.push({ target: 'metadata >= 0.70 x no-op', row: row.id, kind: 'ratio', value: x, need: 0.7, met: x === null ? null : x >= 0.7 })
      } else if (row.id === 'seqwrite' || row.id === 'seqread' || row.id === 'randwrite') {
        const x = ratio(val(r, 'polyfs', row.id), val(r, 'bindfs', row.id))
        out.push({ target: 'within 2x of bindfs (>= 0.50)', row: row.id, kind: 'ratio', value: x, need: 0.5, met: x === null ? null : x >= 0.5 })
      }
    }
  }
  if (!r.cluster) return out
  const abs = (row: string, target: string, unit: string, need: number) => {
    if (!rows.some((x) => x.id === row)) return
    const v = val(r, 'cluster', row)
    out.push({ target, row, kind: 'absolute', value: v, unit, need, met: v === null ? null : v >= need })
  }
  abs('randwrite', '3-node >= 1,500 IOPS', 'IOPS', ISSUE5.randwriteIops)
  abs('create', '3-node >= 2,000 files/s', 'ops/s', ISSUE5.createPerSec)
  abs('seqwrite', '3-node >= 150 MiB/s (157.3 MB/s)', 'MB/s', ISSUE5.seqwriteMBs)
  abs('seqread', '3-node >= 700 MiB/s (734.0 MB/s)', 'MB/s', ISSUE5.seqreadMBs)
  const p = procs.cluster
  for (const n of p?.rss.filter((x) => x.role === 'node') ?? []) {
    const v = n.idleBytes
    out.push({ target: '3-node idle RSS < 150 MiB', row: n.name, kind: 'absolute', value: v === null ? null : v / MiB, unit: 'MiB', need: ISSUE5.idleRssBytes / MiB, met: v === null ? null : v < ISSUE5.idleRssBytes })
  }
  if (p?.writeAmp) {
    const x = ampFigures(p.writeAmp).perReplica
    out.push({ target: '3-node write amplification <= 2.5 per replica', row: 'seqwrite', kind: 'absolute', value: x, unit: 'x', need: ISSUE5.writeAmpPerReplica, met: x === null ? null : x <= ISSUE5.writeAmpPerReplica })
  }
  out.push(...peerTargets(r, rows))
  return out
}

/** Issue 7's rows where 3-node PolyFS must reach 2x the better peer (the others: ahead of both). */
const TWICE_THE_PEERS = new Set(['randwrite', 'randverify', 'create', 'rename', 'sqlite-delete', 'sqlite-wal'])

/** Issue 7, when the cluster and at least one peer ran: ahead of the better peer on every row,
 * 2x it on fsync'd writes, creates, renames and SQLite; within 2x of bindfs on sequential rows. */
function peerTargets(r: Results, rows: RowDef[]): TargetLine[] {
  const out: TargetLine[] = []
  const peers = (['gluster', 'moosefs'] as SystemId[]).filter((id) => r[id])
  if (!r.cluster || !peers.length) return out
  const names = peers.map((id) => SYSTEMS.find((s) => s.id === id)?.label ?? id).join(' and ')
  for (const row of rows) {
    const best = Math.max(...peers.map((id) => val(r, id, row.id) ?? -Infinity))
    const x = best > 0 ? ratio(val(r, 'cluster', row.id), best) : null
    const need = TWICE_THE_PEERS.has(row.id) ? 2 : 1
    out.push({ target: `3-node >= ${need === 2 ? '2x' : '1x'} the better of ${names}`, row: row.id, kind: 'ratio', value: x, need, met: x === null ? null : x >= need })
    if ((row.id === 'seqwrite' || row.id === 'seqread') && r.bindfs) {
      const b = ratio(val(r, 'cluster', row.id), val(r, 'bindfs', row.id))
      out.push({ target: '3-node within 2x of bindfs (>= 0.50)', row: row.id, kind: 'ratio', value: b, need: 0.5, met: b === null ? null : b >= 0.5 })
    }
  }
  return out
}

const RATIO_COLUMNS: { head: string; a: SystemId; b: SystemId }[] = [
  { head: 'PolyFS/bindfs', a: 'polyfs', b: 'bindfs' },
  { head: 'PolyFS/local', a: 'polyfs', b: 'local' },
  { head: 'PolyFS/no-op', a: 'polyfs', b: 'noop' },
  { head: 'PolyFS 3-node/bindfs', a: 'cluster', b: 'bindfs' },
  { head: 'PolyFS 3-node/GlusterFS', a: 'cluster', b: 'gluster' },
  { head: 'PolyFS 3-node/MooseFS', a: 'cluster', b: 'moosefs' },
]

function render(head: string[], lines: string[][], leftCols: number): string {
  const all = [head, ...lines]
  const w = head.map((_, i) => Math.max(...all.map((l) => l[i]!.length)))
  const fmt = (l: string[]) => '| ' + l.map((c, i) => (i < leftCols ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join(' | ') + ' |'
  return [fmt(head), '|' + w.map((n, i) => (i < leftCols ? ':' + '-'.repeat(n + 1) : '-'.repeat(n + 1) + ':')).join('|') + '|', ...lines.map(fmt)].join('\n')
}

/** Columns for the systems that ran; a ratio column when both of its systems ran. */
export function table(r: Results, rows: RowDef[]): string {
  const ran = SYSTEMS.filter((s) => r[s.id])
  const ratios = RATIO_COLUMNS.filter((c) => r[c.a] && r[c.b])
  const head = ['workload', 'unit', ...ran.map((s) => s.label), ...ratios.map((c) => c.head)]
  const lines: string[][] = []
  for (const row of rows) {
    lines.push([
      row.label,
      row.unit,
      ...ran.map((s) => {
        const m = r[s.id]?.[row.id]
        return fmtVal(val(r, s.id, row.id), row.unit) + (m?.error ? '*' : truncated(m) ? '~' : '')
      }),
      ...ratios.map((c) => fmtRatio(ratio(val(r, c.a, row.id), val(r, c.b, row.id)))),
    ])
  }
  return render(head, lines, 2)
}

/** One line per row that stopped at its time cap before its count (marked ~ in the table). */
export function truncatedText(r: Results, rows: RowDef[]): string {
  const out: string[] = []
  for (const s of SYSTEMS) {
    for (const row of rows) {
      const m = r[s.id]?.[row.id]
      if (!m || !truncated(m)) continue
      const what = row.kind === 'data'
        ? `${fmtMiB(m.done)} of ${fmtMiB(m.requested ?? 0)} MiB`
        : `${m.done.toLocaleString('en-US')} of ${(m.requested ?? 0).toLocaleString('en-US')} ${['mkdir', 'rename', 'rmdir'].includes(row.id) ? 'dirs' : 'files'}`
      const next = row.id === 'create' ? ' (stat, read and unlink use those files)' : row.id === 'mkdir' || row.id === 'rename' ? ' (the next directory rows use those)' : row.id === 'seqwrite' ? ' (later data rows use a file of that size)' : ''
      out.push(`~ ${s.label} ${row.id}: stopped at its time cap after ${what} in ${m.seconds.toFixed(1)} s${next}`)
    }
  }
  return out.join('\n')
}

/** Per-process RSS (idle and under load) and write amplification, for the systems that have them. */
export function procText(p: ProcResults): string {
  const out: string[] = []
  const rssLines: string[][] = []
  for (const s of SYSTEMS) {
    for (const x of p[s.id]?.rss ?? []) {
      const idleOk = x.role !== 'node' || x.idleBytes === null ? '-' : x.idleBytes < ISSUE5.idleRssBytes ? 'yes' : 'NO'
      rssLines.push([s.label, `${x.name} (pid ${x.pid})`, fmtMiB(x.idleBytes), fmtMiB(x.maxBytes), String(x.samples), idleOk])
    }
  }
  if (rssLines.length) {
    out.push('Memory (VmRSS, MiB): idle = 2 s after setup, before the first row; under load = max of samples every 200 ms during the rows')
    out.push('')
    out.push(render(['system', 'process', 'idle', 'under load', 'samples', 'idle < 150 MiB'], rssLines, 2))
  }
  const amp: string[] = []
  for (const s of SYSTEMS) {
    const w = p[s.id]?.writeAmp
    if (!w) continue
    const f = ampFigures(w)
    const each = w.perProc.map((x) => `${x.name} ${fmtGiB(x.bytes)}`).join(', ')
    amp.push(
      `  ${label(s.id)}: ${fmtGiB(w.totalBytes)} written by ${w.perProc.length === 1 ? 'the process' : `${w.perProc.length} ${s.id === 'cluster' ? 'nodes' : 'processes'}`} for ${fmtGiB(w.fileBytes)} of file data = ` +
        `${fmtVal(f.perByte, 'x')} bytes per byte, ${fmtVal(f.perReplica, 'x')} per replica (${w.replicas} ${w.replicas === 1 ? 'replica' : 'replicas'})` +
        (w.perProc.length > 1 ? `\n    ${each}` : ''),
    )
  }
  if (amp.length) {
    if (out.length) out.push('')
    out.push('Write amplification during seq write (/proc/PID/io write_bytes of the storing processes, from before fio to after its end fsync):')
    out.push(...amp)
  }
  return out.join('\n')
}

export function targetLines(t: TargetLine[]): string {
  return t
    .map((x) => {
      const v = x.kind === 'ratio' ? fmtRatio(x.value) : `${fmtVal(x.value, x.unit ?? '')}${x.unit && x.unit !== 'x' ? ' ' + x.unit : ''}`
      return `${x.met === null ? 'n/a    ' : x.met ? 'met    ' : 'NOT MET'}  ${x.row.padEnd(9)} ${x.target}: ${v}`
    })
    .join('\n')
}

export function errorsText(r: Results): string {
  const out: string[] = []
  for (const s of SYSTEMS) for (const [row, m] of Object.entries(r[s.id] ?? {})) if (m.error) out.push(`* ${s.label} ${row}: ${m.error}`)
  return out.join('\n')
}

/** What rows measured besides their figure (pgbench: initdb and pgbench -i times). */
export function notesText(r: Results): string {
  const out: string[] = []
  for (const s of SYSTEMS) for (const [row, m] of Object.entries(r[s.id] ?? {})) if (m.note) out.push(`* ${s.label} ${row}: ${m.note}`)
  return out.join('\n')
}

/**
 * One Results from several rounds: a row's value is the mean over the rounds that measured it
 * (an errored round is left out and its error kept); done and seconds are summed, a note is the
 * last round's.
 */
export function mergeRounds(rounds: Results[]): Results {
  if (rounds.length === 1) return rounds[0] ?? {}
  const out: Results = {}
  for (const s of SYSTEMS) {
    const all = rounds.map((r) => r[s.id]).filter((x): x is Record<string, Measure> => !!x)
    if (!all.length) continue
    const merged: Record<string, Measure> = {}
    const rowIds = new Set(all.flatMap((r) => Object.keys(r)))
    for (const row of rowIds) {
      const ms = all.map((r) => r[row]).filter((m): m is Measure => !!m)
      const good = ms.filter((m) => m.value !== null && !m.error)
      const bad = ms.filter((m) => m.error)
      const mean = good.length ? good.reduce((a, m) => a + (m.value as number), 0) / good.length : null
      const last = ms[ms.length - 1] as Measure
      merged[row] = {
        value: mean,
        done: ms.reduce((a, m) => a + m.done, 0),
        seconds: ms.reduce((a, m) => a + m.seconds, 0),
        ...(last.requested !== undefined ? { requested: ms.reduce((a, m) => a + (m.requested ?? 0), 0) } : {}),
        ...(bad.length ? { error: bad.map((m) => m.error).join('; ') + (good.length ? ` (in ${bad.length} of ${ms.length} rounds)` : '') } : {}),
        ...(last.note ? { note: last.note } : {}),
      }
    }
    out[s.id] = merged
  }
  return out
}

/** The per-round values of every row (when there was more than one round). */
export function roundsText(rounds: Results[], rows: RowDef[]): string {
  if (rounds.length < 2) return ''
  const ran = SYSTEMS.filter((s) => rounds.some((r) => r[s.id]))
  const head = ['workload', 'unit', ...ran.map((s) => s.label)]
  const lines = rows.map((row) => [row.label, row.unit, ...ran.map((s) => rounds.map((r) => fmtVal(r[s.id]?.[row.id]?.value ?? null, row.unit) + (r[s.id]?.[row.id]?.error ? '*' : '')).join(' / '))])
  return `Per round (${rounds.map((_, i) => i + 1).join(' / ')}):\n\n${render(head, lines, 2)}`
}

export { ROWS }
