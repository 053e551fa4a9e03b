// What recording a metric costs on the hot paths: the cells of src/observe/metrics.ts (what a
// FUSE operation records: two clock reads, one histogram cell, one counter cell) beside
// prom-client's own labelled inc() and observe(), in one run. Not a test.
//
//   node dist/bench/metrics.js [--n 1000000]
import client from 'prom-client'
import { counterCell, histogramCell, metrics } from '../src/observe/metrics'

const arg = process.argv.indexOf('--n')
const N = arg > 0 ? Number(process.argv[arg + 1]) : 1_000_000

/** Mean ns per call over N calls, after a warm-up. */
function time(f: (i: number) => void): number {
  for (let i = 0; i < 100_000; i++) f(i)
  const t0 = process.hrtime.bigint()
  for (let i = 0; i < N; i++) f(i)
  return Number(process.hrtime.bigint() - t0) / N
}

const ok = counterCell(metrics.fuseOps, { op: 'bench', result: 'ok' })
const secs = histogramCell(metrics.fuseSeconds, { op: 'bench' })
const cells = time(() => {
  const t0 = performance.now()
  secs.observe((performance.now() - t0) / 1000)
  ok.inc()
})
const clocks = time(() => {
  performance.now()
  performance.now()
})
const r = new client.Registry()
const c = new client.Counter({ name: 'bench_total', help: 'h', labelNames: ['op', 'result'], registers: [r] })
const h = new client.Histogram({ name: 'bench_seconds', help: 'h', labelNames: ['op'], registers: [r] })
const prom = time((i) => {
  const t0 = performance.now()
  h.observe({ op: 'write' }, (performance.now() - t0 + (i % 1000)) / 1e6)
  c.inc({ op: 'write', result: 'ok' })
})
const promInc = time(() => c.inc({ op: 'write', result: 'ok' }))
const promObserve = time((i) => h.observe({ op: 'write' }, (i % 1000) / 1e6))
console.log(`${N.toLocaleString('en-US')} iterations each, ns per call:`)
console.log(`  FUSE op with cells          ${cells.toFixed(0).padStart(5)}  (two performance.now(): ${clocks.toFixed(0)})`)
console.log(`  FUSE op through prom-client ${prom.toFixed(0).padStart(5)}  (labelled inc ${promInc.toFixed(0)}, observe ${promObserve.toFixed(0)})`)
console.log(`  ratio prom-client / cells   ${(prom / cells).toFixed(1)}x`)
