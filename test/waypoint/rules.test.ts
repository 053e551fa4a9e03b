// The waypoint's rules under a hand-moved clock: registration, expiry, and the bootstrap claim.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { RpcError, type ClaimRequest, type SetMasterRequest } from '../../src/rpc'
import { CLAIM_TTL_DEFAULT_MS, CLAIM_TTL_MAX_MS, CLAIM_TTL_MIN_MS, WaypointRules } from '../../src/waypoint'
import { rng, testSeed } from '../helpers/mount'

const HOLD_MS = 3000
const EXPIRY_MS = 30_000
const rules = () => new WaypointRules({ holdMs: HOLD_MS, masterExpiryMs: EXPIRY_MS, startedAtMs: 0 })
const leader = (nodeId: number) => ({ nodeId, address: `127.0.0.1:${7000 + nodeId}` })
const set = (clusterId: string, term: number, nodeId = 1): SetMasterRequest => ({ clusterId, leader: leader(nodeId), term, members: [leader(nodeId), leader(9)] })
/** Claimants are 8 to 128 printable characters: 'a' stands for 'claimant-a'. */
const id = (c: string): string => (c ? `claimant-${c}` : '')
const claim = (claimant: string, extra: Partial<ClaimRequest> = {}): ClaimRequest => ({ claimant: id(claimant), address: `host-${claimant || 'x'}:1`, ttlMs: 5000, release: false, ...extra })

test('waypoint rules: nothing registered is known=false; a registration is returned until it expires', () => {
  const w = rules()
  assert.deepEqual(w.getMaster(0), { known: false, clusterId: '', term: 0, members: [] })
  assert.deepEqual(w.setMaster(set('c1', 4), 1000), {})
  assert.deepEqual(w.getMaster(1000 + EXPIRY_MS), { known: true, clusterId: 'c1', leader: leader(1), term: 4, members: [leader(1), leader(9)] })
  assert.equal(w.getMaster(1000 + EXPIRY_MS + 1).known, false)
  // A re-registration (every second in practice) keeps it alive.
  w.setMaster(set('c1', 4), 20_000)
  assert.equal(w.getMaster(1000 + EXPIRY_MS + 1).known, true)
})

test('waypoint rules: another cluster is refused with CLUSTER_MISMATCH while the registration is current', () => {
  const w = rules()
  w.setMaster(set('c1', 1), 0)
  const r = w.setMaster(set('c2', 50, 5), 10)
  assert.equal(r.error?.code, 'CLUSTER_MISMATCH')
  assert.deepEqual(r.error?.leader, leader(1))
  assert.equal(w.getMaster(10).clusterId, 'c1')
  // Once c1's registration expired (c1 is gone), c2 may take the waypoint.
  assert.deepEqual(w.setMaster(set('c2', 50, 5), EXPIRY_MS + 1), {})
  assert.equal(w.getMaster(EXPIRY_MS + 1).clusterId, 'c2')
})

test('waypoint rules: an older term is refused with NOT_LEADER naming the registered leader; same or newer is taken', () => {
  const w = rules()
  w.setMaster(set('c1', 5, 1), 0)
  const old = w.setMaster(set('c1', 4, 2), 10)
  assert.equal(old.error?.code, 'NOT_LEADER')
  assert.deepEqual(old.error?.leader, leader(1))
  assert.equal(w.getMaster(10).leader?.nodeId, 1)
  // Even after expiry: terms only grow within a cluster.
  assert.equal(w.setMaster(set('c1', 4, 2), EXPIRY_MS + 100).error?.code, 'NOT_LEADER')
  assert.deepEqual(w.setMaster(set('c1', 5, 1), 20), {})
  assert.deepEqual(w.setMaster(set('c1', 6, 3), 30), {})
  assert.equal(w.getMaster(30).leader?.nodeId, 3)
  assert.equal(w.getMaster(30).term, 6)
})

test('waypoint rules: SetMaster without a cluster id or a leader is INVALID', () => {
  const w = rules()
  assert.equal(w.setMaster({ ...set('c1', 1), clusterId: '' }, 0).error?.code, 'INVALID')
  assert.equal(w.setMaster({ clusterId: 'c1', term: 1, members: [] }, 0).error?.code, 'INVALID')
  assert.equal(w.setMaster({ ...set('c1', 1), leader: { nodeId: 0, address: 'x:1' } }, 0).error?.code, 'INVALID')
  assert.equal(w.setMaster({ ...set('c1', 1), leader: { nodeId: 1, address: 'not an address' } }, 0).error?.code, 'INVALID')
  assert.equal(w.getMaster(0).known, false)
})

test('waypoint rules: no claim is granted during the hold period after start', () => {
  const w = rules()
  assert.deepEqual(w.claim(claim('a'), 0), { granted: false, holder: '', masterKnown: false })
  assert.equal(w.claim(claim('a'), HOLD_MS - 1).granted, false)
  assert.deepEqual(w.claim(claim('a'), HOLD_MS), { granted: true, holder: id('a'), masterKnown: false })
})

test('waypoint rules: a claim is exclusive until it expires; its holder may renew it', () => {
  const w = rules()
  const t0 = HOLD_MS
  assert.equal(w.claim(claim('a', { ttlMs: 1000 }), t0).granted, true)
  assert.deepEqual(w.claim(claim('b'), t0 + 500), { granted: false, holder: id('a'), masterKnown: false })
  assert.equal(w.claim(claim('a', { ttlMs: 1000 }), t0 + 900).granted, true, 'renewal')
  assert.equal(w.claim(claim('b'), t0 + 1800).holder, id('a'), 'the renewal moved the expiry')
  assert.equal(w.claim(claim('b'), t0 + 1900).granted, true, 'expired: another claimant may take it')
})

test('waypoint rules: release drops only the claimant own claim', () => {
  const w = rules()
  const t0 = HOLD_MS
  w.claim(claim('a'), t0)
  assert.deepEqual(w.claim(claim('b', { release: true }), t0 + 1), { granted: false, holder: id('a'), masterKnown: false })
  assert.equal(w.claim(claim('b'), t0 + 2).granted, false)
  assert.deepEqual(w.claim(claim('a', { release: true }), t0 + 3), { granted: false, holder: '', masterKnown: false })
  assert.equal(w.claim(claim('b'), t0 + 4).granted, true)
})

test('waypoint rules: a registered master refuses every claim and clears the one held', () => {
  const w = rules()
  const t0 = HOLD_MS
  w.claim(claim('a', { ttlMs: 60_000 }), t0)
  w.setMaster(set('c1', 1), t0 + 10)
  assert.deepEqual(w.claim(claim('a'), t0 + 20), { granted: false, holder: '', masterKnown: true })
  assert.deepEqual(w.claim(claim('b'), t0 + 20), { granted: false, holder: '', masterKnown: true })
  // After the master's registration expired, the old claim is gone too: b may claim at once.
  assert.equal(w.claim(claim('b'), t0 + 10 + EXPIRY_MS + 1).granted, true)
})

test('waypoint rules: a claim lives ttlMs clamped to [100 ms, 60 s]; 0 asks for the default', () => {
  for (const [ttlMs, lives] of [
    [1, CLAIM_TTL_MIN_MS],
    [10_000_000, CLAIM_TTL_MAX_MS],
    [0, CLAIM_TTL_DEFAULT_MS],
    [2500, 2500],
  ]) {
    const w = rules()
    w.claim(claim('a', { ttlMs }), HOLD_MS)
    assert.equal(w.claim(claim('b'), HOLD_MS + lives - 1).granted, false, `ttl ${ttlMs} still held`)
    assert.equal(w.claim(claim('b'), HOLD_MS + lives).granted, true, `ttl ${ttlMs} expired`)
  }
})

test('waypoint rules: a claim without a proper claimant or address is refused as INVALID_ARGUMENT', () => {
  const invalid = (err: unknown) => err instanceof RpcError && err.code === 'INVALID_ARGUMENT'
  assert.throws(() => rules().claim(claim(''), HOLD_MS), invalid)
  assert.throws(() => rules().claim({ ...claim('a'), claimant: 'short' }, HOLD_MS), invalid)
  assert.throws(() => rules().claim({ ...claim('a'), claimant: 'bad\u0000claimant' }, HOLD_MS), invalid)
  assert.throws(() => rules().claim({ ...claim('a'), address: 'no-port' }, HOLD_MS), invalid)
  assert.throws(() => rules().claim({ ...claim('a'), address: '' }, HOLD_MS), invalid)
  // Giving a claim up needs no address.
  assert.equal(rules().claim({ ...claim('a'), address: '', release: true }, HOLD_MS).granted, false)
})

test('waypoint rules: claimants racing over 3 waypoints in any order never both win a majority', () => {
  const seed = testSeed()
  const rand = rng(seed)
  for (let round = 0; round < 200; round++) {
    const waypoints = [rules(), rules(), rules()]
    const claimants = Array.from({ length: 2 + Math.floor(rand() * 4) }, (_, i) => `n${i}`)
    // Every (claimant, waypoint) request, shuffled: any interleaving the network could produce.
    const asks = claimants.flatMap((c) => waypoints.map((_, w) => ({ c, w })))
    for (let i = asks.length - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1))
      const swap = asks[i]
      asks[i] = asks[j]
      asks[j] = swap
    }
    const grants = new Map<string, number>()
    for (const { c, w } of asks) if (waypoints[w].claim(claim(c), HOLD_MS + 1).granted) grants.set(c, (grants.get(c) ?? 0) + 1)
    const winners = [...grants].filter(([, n]) => n >= 2)
    assert.ok(winners.length <= 1, `seed ${seed} round ${round}: winners ${JSON.stringify(winners)}`)
  }
})
