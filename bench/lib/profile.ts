// Summaries of V8 .cpuprofile files (node --cpu-prof): self time per function, heaviest first,
// and the same grouped by source file. Used by `node dist/bench/run.js --summarize FILE...`.
import { readFileSync } from 'node:fs'
import * as path from 'node:path'

interface CallFrame { functionName: string; url: string; lineNumber: number }
interface ProfNode { id: number; callFrame: CallFrame; children?: number[] }
interface CpuProfile { nodes: ProfNode[]; startTime: number; endTime: number; samples: number[]; timeDeltas: number[] }

export interface Entry { name: string; ms: number; pct: number }

function where(cf: CallFrame, repo: string): string {
  let u = cf.url.replace(/^file:\/\//, '')
  if (u.startsWith(repo + '/')) u = u.slice(repo.length + 1)
  u = u.replace(/^.*node_modules\//, 'node_modules/')
  return u ? `${u}:${cf.lineNumber + 1}` : ''
}

export function summarize(file: string, top = 25): { totalMs: number; idleMs: number; byFunction: Entry[]; byFile: Entry[] } {
  const prof = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile
  const repo = path.resolve(__dirname, '..', '..', '..')
  const byId = new Map(prof.nodes.map((n) => [n.id, n]))
  const self = new Map<number, number>()
  for (let i = 0; i < prof.samples.length; i++) {
    const id = prof.samples[i]!
    self.set(id, (self.get(id) ?? 0) + (prof.timeDeltas[i] ?? 0))
  }
  const fn = new Map<string, number>()
  const files = new Map<string, number>()
  let total = 0
  let idle = 0
  for (const [id, us] of self) {
    const n = byId.get(id)
    if (!n) continue
    total += us
    const cf = n.callFrame
    if (cf.functionName === '(idle)') idle += us
    const w = where(cf, repo)
    const key = `${cf.functionName || '(anonymous)'}${w ? ' ' + w : ''}`
    fn.set(key, (fn.get(key) ?? 0) + us)
    const fk = w ? w.replace(/:\d+$/, '') : cf.functionName
    files.set(fk, (files.get(fk) ?? 0) + us)
  }
  const busy = total - idle
  const list = (m: Map<string, number>) =>
    [...m]
      .filter(([k]) => k !== '(idle)')
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([name, us]) => ({ name, ms: us / 1000, pct: busy > 0 ? (100 * us) / busy : 0 }))
  return { totalMs: total / 1000, idleMs: idle / 1000, byFunction: list(fn), byFile: list(files) }
}

export function summaryText(file: string, top = 25): string {
  const s = summarize(file, top)
  const lines = [`${file}: ${s.totalMs.toFixed(0)} ms sampled, ${s.idleMs.toFixed(0)} ms idle, busy ${(s.totalMs - s.idleMs).toFixed(0)} ms`]
  lines.push('  self time by function (% of busy):')
  for (const e of s.byFunction) lines.push(`    ${e.pct.toFixed(1).padStart(5)}%  ${e.ms.toFixed(0).padStart(7)} ms  ${e.name}`)
  lines.push('  self time by file:')
  for (const e of s.byFile.slice(0, 15)) lines.push(`    ${e.pct.toFixed(1).padStart(5)}%  ${e.ms.toFixed(0).padStart(7)} ms  ${e.name}`)
  return lines.join('\n')
}
