// src/plugin: the Docker managed volume plugin's own part: the VolumeDriver API on the
// plugin socket, volumes as directories of the filesystem with one record each, and the
// process that runs a node, its waypoint and the FUSE mount under the propagated mount.
// This file is the folder's only public entry. docs/plugin.md is the user's side of it.
//   names.ts    volume names and `-o` options, validated
//   volumes.ts  VolumeStore: create, remove, mount, unmount, get, list over KV + FileSystem
//   api.ts      the VolumeDriver HTTP protocol with express
//   plugin.ts   startPlugin (supervisor: socket, mount, volumes as a cluster client) and
//               startPluginNode (worker: the node and its waypoint)
// The command is src/cli/plugin.ts (`polyfs plugin`).
export { startPlugin, startPluginNode } from './plugin'
export type { PluginOptions, PluginNodeOptions, RunningPlugin } from './plugin'
export { VolumeStore, VolumeError, VOLUMES_DIR } from './volumes'
export { nameProblem, parseOptions, VOLUME_OPTIONS } from './names'
