#!/usr/bin/env node
// Runs after `npm install` / `npm ci`: applies our patch to fuse-native (patches/, see
// docs/fuse-native.md) and rebuilds its addon from source against the libfuse 2.9 headers that
// fuse-shared-library ships. node-gyp-build then loads build/Release ahead of the prebuilds, so
// the fixed addon is the one in use. Fails loudly: a mount with the unpatched addon would lose
// times, inode numbers and ownership silently.
'use strict'
const { execFileSync } = require('node:child_process')
const path = require('node:path')
const fs = require('node:fs')

const root = path.resolve(__dirname, '..')
const fuseDir = path.join(root, 'node_modules', 'fuse-native')
if (!fs.existsSync(fuseDir)) process.exit(0) // installed without dependencies: nothing to build

const run = (cmd, args, cwd) => execFileSync(cmd, args, { cwd, stdio: 'inherit' })

run(process.execPath, [require.resolve('patch-package/index.js', { paths: [root] }), '--error-on-fail'], root)
const nodeGyp = require.resolve('node-gyp/bin/node-gyp.js', { paths: [root] })
run(process.execPath, [nodeGyp, 'rebuild', '--silent'], fuseDir)
