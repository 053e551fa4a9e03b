#!/usr/bin/env node
// Runs after `npm install` / `npm ci`: applies our patches (patches/: fuse-native, see
// docs/fuse-native.md; grpc-js, see docs/protocol.md, "Framing in place") and rebuilds
// fuse-native's addon from source against the libfuse 2.9 headers that fuse-shared-library
// ships (linking the system's libfuse.so.2). node-gyp-build then loads build/Release ahead of
// the prebuilds, so the fixed addon is the one in use. Fails loudly: a mount with the
// unpatched addon would lose times, inode numbers and ownership silently.
'use strict'
const { execFileSync } = require('node:child_process')
const path = require('node:path')
const fs = require('node:fs')

// Bump together with polyfs_patch_version in the patched fuse-native.c.
const PATCH_VERSION = 3

const root = path.resolve(__dirname, '..')
const fuseDir = path.join(root, 'node_modules', 'fuse-native')
if (!fs.existsSync(fuseDir)) process.exit(0) // installed without dependencies: nothing to build

const run = (cmd, args, cwd) => execFileSync(cmd, args, { cwd, stdio: 'inherit' })

run(process.execPath, [require.resolve('patch-package/index.js', { paths: [root] }), '--error-on-fail'], root)

const nodeGyp = require.resolve('node-gyp/bin/node-gyp.js', { paths: [root] })
const gypArgs = ['rebuild', '--silent']
// Without a configured nodedir node-gyp downloads Node's headers; use the ones installed next to
// this node binary when they match (offline machines), else leave it to node-gyp / npm config.
if (!process.env.npm_config_nodedir) {
  const prefix = path.resolve(path.dirname(process.execPath), '..')
  const versionH = path.join(prefix, 'include', 'node', 'node_version.h')
  if (fs.existsSync(versionH)) {
    const h = fs.readFileSync(versionH, 'utf8')
    const v = ['MAJOR', 'MINOR', 'PATCH'].map(k => (h.match(new RegExp(`#define NODE_${k}_VERSION (\\d+)`)) || [])[1]).join('.')
    if ('v' + v === process.version) gypArgs.push('--nodedir=' + prefix)
  }
}
run(process.execPath, [nodeGyp, ...gypArgs], fuseDir)

// The addon that node-gyp-build will load must be the patched build.
const addon = require(path.join(fuseDir, 'build', 'Release', 'fuse.node'))
if (addon.polyfs_patch_version !== PATCH_VERSION) {
  console.error(`build-fuse: fuse-native addon has patch version ${addon.polyfs_patch_version}, expected ${PATCH_VERSION}`)
  process.exit(1)
}
