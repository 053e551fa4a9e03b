// The simulator over many seeds. SEEDS=N runs N seeds (default 400) from SEED_BASE (default 1);
// POLYFS_SEED=n replays exactly one seed and prints what it did.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runSimulation } from './simulator';

function seedsToRun(): number[] {
  const one = process.env['POLYFS_SEED'];
  if (one !== undefined && one !== '') return [Number(one)];
  const n = Number(process.env['SEEDS'] ?? 400);
  const base = Number(process.env['SEED_BASE'] ?? 1);
  return Array.from({ length: n }, (_, i) => base + i);
}

test('raft: the simulation keeps every safety and liveness property on every seed', (t) => {
  const seeds = seedsToRun();
  t.diagnostic(`sim: seeds ${seeds[0]}..${seeds[seeds.length - 1]} (POLYFS_SEED=<n> replays one)`);
  const failures: string[] = [];
  let ticks = 0;
  let writes = 0;
  let reads = 0;
  let crashes = 0;
  let confChanges = 0;
  let snapshots = 0;
  let maxHeal = 0;
  for (const seed of seeds) {
    if (seeds.length === 1) t.diagnostic(`sim: seed ${seed}`);
    const r = runSimulation(seed);
    ticks += r.stats.ticks;
    writes += r.stats.writes;
    reads += r.stats.reads;
    crashes += r.stats.crashes;
    confChanges += r.stats.confChanges;
    snapshots += r.stats.snapshotsSent;
    maxHeal = Math.max(maxHeal, r.stats.healTicks);
    if (seeds.length === 1) t.diagnostic(`${r.summary} stats=${JSON.stringify(r.stats)}`);
    if (r.violations.length > 0) {
      failures.push(`POLYFS_SEED=${seed} (${r.summary}):\n  ${r.violations.join('\n  ')}`);
      if (failures.length >= 5) break;
    }
  }
  t.diagnostic(
    `sim: ${seeds.length} seeds, ${ticks} ticks, ${writes} writes, ${reads} reads, ${crashes} crashes, ` +
      `${confChanges} membership changes, ${snapshots} snapshots sent, longest heal ${maxHeal} ticks`,
  );
  assert.deepEqual(failures, []);
});
