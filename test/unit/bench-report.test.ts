// bench/lib/report.ts without running a bench: rounds merge into means (an errored round left
// out, its error kept), per-round values print, and issue 7's targets against the peers.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { mergeRounds, roundsText, targets, type Results } from '../../bench/lib/report'
import { ROWS } from '../../bench/lib/workloads'

const m = (value: number | null, error?: string) => ({ value, done: 10, seconds: 1, ...(error ? { error } : {}) })

test('bench rounds: the mean of the rounds that measured, errors kept, per-round values printed', () => {
  const r1: Results = { cluster: { create: m(100), randwrite: m(50) }, gluster: { create: m(200) } }
  const r2: Results = { cluster: { create: m(300), randwrite: m(null, 'fio error 5') }, gluster: { create: m(100) } }
  const merged = mergeRounds([r1, r2])
  assert.equal(merged.cluster?.create?.value, 200)
  assert.equal(merged.cluster?.create?.done, 20)
  assert.equal(merged.cluster?.randwrite?.value, 50)
  assert.match(merged.cluster?.randwrite?.error ?? '', /fio error 5 \(in 1 of 2 rounds\)/)
  assert.equal(merged.gluster?.create?.value, 150)
  const rows = ROWS.filter((x) => x.id === 'create' || x.id === 'randwrite')
  const text = roundsText([r1, r2], rows)
  assert.match(text, /Per round \(1 \/ 2\)/)
  assert.match(text, /100 \/ 300/)
  assert.match(text, /50 \/ -\*/)
  assert.equal(roundsText([r1], rows), '', 'one round: nothing more to print')
  assert.equal(mergeRounds([r1]), r1)
})

test('bench targets: 2x the better peer on creates, ahead of it elsewhere, within 2x of bindfs sequentially', () => {
  const r: Results = {
    cluster: { create: m(500), stat: m(90), seqwrite: m(60) },
    gluster: { create: m(200), stat: m(100), seqwrite: m(100) },
    moosefs: { create: m(240), stat: m(50), seqwrite: m(50) },
    bindfs: { seqwrite: m(100) },
  }
  const rows = ROWS.filter((x) => ['create', 'stat', 'seqwrite'].includes(x.id))
  const t = targets(r, rows).filter((x) => x.target.includes('better of') || x.target.includes('3-node within'))
  const find = (row: string, what: string) => t.find((x) => x.row === row && x.target.includes(what))
  assert.equal(find('create', '2x')?.met, true, 'create 500 >= 2 x 240')
  assert.equal(find('create', '2x')?.value, 500 / 240)
  assert.equal(find('stat', '1x')?.met, false, 'stat 90 < 100')
  assert.equal(find('seqwrite', '1x')?.met, false)
  assert.equal(find('seqwrite', 'bindfs')?.met, true, '60 / 100 >= 0.5')
  assert.deepEqual(targets({ cluster: { create: m(1) } }, rows).filter((x) => x.target.includes('better of')), [], 'no peer ran: no peer targets')
})
