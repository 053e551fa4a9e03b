// src/waypoint: the waypoint role, a small memory-only service that tells a starting node who
// leads the master group, and arbitrates who may bootstrap a new cluster. This file is the
// folder's only public entry. Semantics: docs/protocol.md ("Waypoints").
//
// Map of the folder:
//   rules.ts   WaypointRules: registration, expiry, the bootstrap claim; pure (time passed in)
//   server.ts  startWaypoint: the rules behind an RpcServer; the log lines
// The command is src/cli/waypoint.ts (`polyfs waypoint`).

export { startWaypoint, DEFAULT_HOLD_MS, DEFAULT_MASTER_EXPIRY_MS } from './server'
export type { WaypointOptions, RunningWaypoint } from './server'
export { WaypointRules, CLAIM_TTL_MIN_MS, CLAIM_TTL_MAX_MS, CLAIM_TTL_DEFAULT_MS } from './rules'
export type { WaypointRulesOptions, WaypointEvent } from './rules'
