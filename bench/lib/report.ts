// The table, the ratios and the targets of issue 3.
import { Measure, ROWS, RowDef } from './workloads'
import { SYSTEMS, SystemId } from './systems'

export type Results = Partial<Record<SystemId, Record<string, Measure>>>

export interface TargetLine { target: string; row: string; ratio: number | null; need: number; met: boolean | null }

const val = (r: Results, s: SystemId, row: string): number | null => r[s]?.[row]?.value ?? null
const ratio = (a: number | null, b: number | null): number | null => (a !== null && b !== null && b > 0 ? a / b : null)

function fmtVal(v: number | null, unit: string): string {
  if (v === null) return '-'
  if (unit === 'MB/s') return v.toFixed(1)
  return Math.round(v).toLocaleString('en-US')
}
const fmtRatio = (v: number | null) => (v === null ? '-' : v.toFixed(2))

/** Issue 3's targets, one line per row they cover. */
export function targets(r: Results, rows: RowDef[]): TargetLine[] {
  const out: TargetLine[] = []
  for (const row of rows) {
    if (row.kind === 'meta') {
      const x = ratio(val(r, 'polyfs', row.id), val(r, 'noop', row.id))
      out.push({ target: 'metadata >= 0.70 x no-op', row: row.id, ratio: x, need: 0.7, met: x === null ? null : x >= 0.7 })
    } else if (row.id === 'seqwrite' || row.id === 'seqread' || row.id === 'randwrite') {
      const x = ratio(val(r, 'polyfs', row.id), val(r, 'bindfs', row.id))
      out.push({ target: 'within 2x of bindfs (>= 0.50)', row: row.id, ratio: x, need: 0.5, met: x === null ? null : x >= 0.5 })
    }
  }
  return out
}

export function table(r: Results, rows: RowDef[]): string {
  const head = ['workload', 'unit', ...SYSTEMS.map((s) => s.label), 'PolyFS/bindfs', 'PolyFS/local', 'PolyFS/no-op']
  const lines: string[][] = [head]
  for (const row of rows) {
    const p = val(r, 'polyfs', row.id)
    lines.push([
      row.label,
      row.unit,
      ...SYSTEMS.map((s) => fmtVal(val(r, s.id, row.id), row.unit) + (r[s.id]?.[row.id]?.error ? '*' : '')),
      fmtRatio(ratio(p, val(r, 'bindfs', row.id))),
      fmtRatio(ratio(p, val(r, 'local', row.id))),
      fmtRatio(ratio(p, val(r, 'noop', row.id))),
    ])
  }
  const w = head.map((_, i) => Math.max(...lines.map((l) => l[i]!.length)))
  const fmt = (l: string[]) => '| ' + l.map((c, i) => (i < 2 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join(' | ') + ' |'
  return [fmt(head), '|' + w.map((n, i) => (i < 2 ? ':' + '-'.repeat(n + 1) : '-'.repeat(n + 1) + ':')).join('|') + '|', ...lines.slice(1).map(fmt)].join('\n')
}

export function targetLines(t: TargetLine[]): string {
  return t
    .map((x) => `${x.met === null ? 'n/a    ' : x.met ? 'met    ' : 'NOT MET'}  ${x.row.padEnd(9)} ${x.target}: ${fmtRatio(x.ratio)}`)
    .join('\n')
}

export function errorsText(r: Results): string {
  const out: string[] = []
  for (const s of SYSTEMS) for (const [row, m] of Object.entries(r[s.id] ?? {})) if (m.error) out.push(`* ${s.label} ${row}: ${m.error}`)
  return out.join('\n')
}

export { ROWS }
