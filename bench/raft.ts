// Raft throughput and latency in one process: 3 nodes, each with its own classic-level store in
// a temp dir (real fsyncs), an in-memory transport, and the host loop a real node runs: handle
// every group's Ready, ONE synced batch per store, then send, apply, advance. Not a test.
//
//   node dist/bench/raft.js [--seconds 5] [--groups 1]
//
// Prints, per entry size: entries/s, MiB/s, commit latency (propose -> applied on the leader)
// p50/p99, and fsyncs per committed entry (all three stores counted).

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  LevelRaftStore,
  RaftNode,
  SeededRng,
  saveReady,
  type DurableGroupStorage,
  type Message,
  type Ready,
} from '../src/raft';

interface Args {
  seconds: number;
  groups: number;
}

function parseArgs(): Args {
  const a = process.argv.slice(2);
  const get = (name: string, def: number): number => {
    const i = a.indexOf(`--${name}`);
    return i >= 0 ? Number(a[i + 1]) : def;
  };
  return { seconds: get('seconds', 5), groups: get('groups', 1) };
}

/** Bound on proposal bytes in flight, shared by all groups: the client-side window. */
const MAX_IN_FLIGHT_BYTES = 4 << 20;
const WARMUP_MS = 1000;
const NODES = [1, 2, 3];

interface Member {
  node: RaftNode;
  storage: DurableGroupStorage;
  applied: number;
}

async function run(entryBytes: number, args: Args): Promise<string> {
  const dirs = NODES.map(() => mkdtempSync(join(tmpdir(), 'polyfs-bench-raft-')));
  const stores = await Promise.all(dirs.map((d) => LevelRaftStore.open(d)));
  const groups: Member[][] = [];
  for (let g = 1; g <= args.groups; g++) {
    const members: Member[] = [];
    for (const [i, id] of NODES.entries()) {
      const storage = await (stores[i] as LevelRaftStore).openGroup(g, NODES);
      const node = new RaftNode({
        id,
        storage,
        rng: new SeededRng(id * 1000 + g),
        electionTicks: 10,
        heartbeatTicks: 1,
        applied: 1,
        maxSizePerMsgBytes: 1 << 20,
        maxInflightMsgs: 64,
      });
      members.push({ node, storage, applied: 1 });
    }
    groups.push(members);
  }
  for (const s of stores) await s.sync();
  for (const members of groups) members[0]?.node.campaign();

  const payload = Buffer.alloc(entryBytes, 7);
  const proposedAt = new Map<string, number>(); // "group/index" -> hrtime ms
  const latencies: number[] = [];
  const inFlightBytes = new Array<number>(args.groups).fill(0);
  let committed = 0;
  let syncMs = 0;
  let iterations = 0;
  let measuring = false;
  let syncsAtStart = 0;
  let startMs = 0;
  const t0 = performance.now();
  const windowBytes = Math.max(entryBytes, Math.floor(MAX_IN_FLIGHT_BYTES / args.groups));

  for (let iter = 0; ; iter++) {
    if (!measuring && performance.now() - t0 > WARMUP_MS) {
      measuring = true;
      startMs = performance.now();
      syncsAtStart = stores.reduce((n, s) => n + s.syncCount, 0);
    }
    if (measuring && performance.now() - startMs > args.seconds * 1000) break;
    if (measuring) iterations++;
    // Clients: keep each group's window full.
    for (const [g, members] of groups.entries()) {
      const leader = members[0]?.node;
      if (leader === undefined || leader.status().role !== 'leader') continue;
      const batch: Uint8Array[] = [];
      while ((inFlightBytes[g] as number) + entryBytes * (batch.length + 1) <= windowBytes && batch.length < 256) batch.push(payload);
      if (batch.length === 0) continue;
      const r = leader.propose(batch);
      if (!r.ok) continue;
      const now = performance.now();
      for (let i = 0; i < batch.length; i++) proposedAt.set(`${g}/${r.index + i}`, now);
      inFlightBytes[g] = (inFlightBytes[g] as number) + entryBytes * batch.length;
    }
    if (iter % 20 === 0) for (const members of groups) for (const m of members) m.node.tick();
    // Every group's Ready, then one synced batch per store (group commit).
    const readys: Array<{ g: number; i: number; rd: Ready }> = [];
    for (const [g, members] of groups.entries()) {
      for (const [i, m] of members.entries()) {
        if (!m.node.hasReady()) continue;
        const rd = m.node.ready();
        saveReady(m.storage, rd);
        readys.push({ g, i, rd });
      }
    }
    const syncStart = performance.now();
    await Promise.all(stores.map((s) => s.sync()));
    const now = performance.now();
    if (measuring) syncMs += now - syncStart;
    // Messages carry no group id; like a real host's framing, the transport adds it.
    const out: Array<{ g: number; msg: Message }> = [];
    for (const { g, i, rd } of readys) {
      const m = (groups[g] as Member[])[i] as Member;
      for (const msg of rd.messages) out.push({ g, msg });
      for (const e of rd.committedEntries) {
        m.applied = e.index;
        if (i !== 0) continue;
        const at = proposedAt.get(`${g}/${e.index}`);
        if (at === undefined) continue;
        proposedAt.delete(`${g}/${e.index}`);
        inFlightBytes[g] = (inFlightBytes[g] as number) - e.data.length;
        if (measuring) {
          committed++;
          latencies.push(now - at);
        }
      }
      m.node.advance(rd);
      // Bound memory: snapshot (empty state machine) and compact every 512 entries.
      if (m.applied - m.storage.snapshot().meta.index >= 512) {
        m.storage.createSnapshot(m.applied, m.node.confState(), new Uint8Array(0));
        m.storage.compact(m.applied - 64);
      }
    }
    // The transport: an in-memory hop, delivered before the next iteration.
    for (const { g, msg } of out) (groups[g] as Member[])[msg.to - 1]?.node.step(msg);
  }
  const elapsedS = (performance.now() - startMs) / 1000;
  const syncs = stores.reduce((n, s) => n + s.syncCount, 0) - syncsAtStart;
  await Promise.all(stores.map((s) => s.close()));
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  latencies.sort((a, b) => a - b);
  const pct = (p: number): number => latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))] ?? NaN;
  const mib = (committed * entryBytes) / elapsedS / (1 << 20);
  return (
    `| ${entryBytes >= 1024 ? `${entryBytes / 1024} KiB` : `${entryBytes} B`} | ${args.groups} | ${Math.round(committed / elapsedS)} | ` +
    `${mib.toFixed(1)} | ${pct(0.5).toFixed(2)} | ${pct(0.99).toFixed(2)} | ${(syncs / Math.max(1, committed)).toFixed(4)} | ` +
    `${((100 * syncMs) / (elapsedS * 1000)).toFixed(0)}% | ${iterations} |`
  );
}

/** The disk's ceiling for comparison: three stores each writing synced 1 MiB batches of
 * entries, in parallel, as the three nodes do. */
async function baseline(seconds: number): Promise<string> {
  const dirs = NODES.map(() => mkdtempSync(join(tmpdir(), 'polyfs-bench-level-')));
  const stores = await Promise.all(dirs.map((d) => LevelRaftStore.open(d)));
  const groups = await Promise.all(stores.map((s) => s.openGroup(1, NODES)));
  const payload = Buffer.alloc(4096, 7);
  let index = 2;
  let bytes = 0;
  const start = performance.now();
  while (performance.now() - start < seconds * 1000) {
    const ents = Array.from({ length: 256 }, (_, i) => ({ index: index + i, term: 2, type: 'normal' as const, data: payload }));
    index += ents.length;
    for (const g of groups) g.append(ents);
    await Promise.all(stores.map((s) => s.sync()));
    bytes += ents.length * payload.length;
    for (const g of groups) {
      g.createSnapshot(index - 1, { voters: NODES, learners: [] }, new Uint8Array(0));
      g.compact(index - 1);
    }
  }
  const s = (performance.now() - start) / 1000;
  await Promise.all(stores.map((st) => st.close()));
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  return `disk ceiling: 3 stores writing synced 1 MiB batches in parallel: ${(bytes / s / (1 << 20)).toFixed(1)} MiB/s per store`;
}

async function main(): Promise<void> {
  const args = parseArgs();
  console.log(`raft bench: 3 nodes, classic-level with sync, in-memory transport, ${args.seconds}s per size, ${args.groups} group(s)`);
  console.log('| entry | groups | entries/s | MiB/s | p50 ms | p99 ms | fsyncs/entry | time in fsync | loop iterations |');
  console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- |');
  for (const size of [4096, 128 * 1024]) console.log(await run(size, args));
  console.log(await baseline(Math.min(3, args.seconds)));
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
