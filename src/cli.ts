#!/usr/bin/env node
// The CLI is a thin layer: each command module parses its options and calls the library.
// Command modules import their implementation lazily so `appliance build` on a cache hit
// does not run the writers' modules. `npm run build` bundles this file (scripts/bundle.mjs).
import { Command } from 'commander';
import { register as registerMkinitrd } from './cli/mkinitrd.js';
import { register as registerMkext2 } from './cli/mkext2.js';
import { register as registerBuild } from './cli/build.js';
import { register as registerCache } from './cli/cache.js';
import { register as registerBoot } from './cli/boot.js';
import { register as registerInspect } from './cli/inspect/index.js';
import { register as registerPrepare } from './cli/prepare.js';
import { oneLineUsageErrors, run, watchStdout } from './cli/common.js';
import { packageVersion } from './appliance/version.js';

const program = new Command('appliance').description("Build a tiny Linux appliance from the host's own files and boot it in qemu").version(packageVersion());

registerMkinitrd(program);
registerMkext2(program);
registerBuild(program);
registerCache(program);
registerBoot(program);
registerPrepare(program);
registerInspect(program);

oneLineUsageErrors(program);
watchStdout();
// Not awaited at the top level: the bundle is CommonJS (scripts/bundle.mjs).
void run(program, process.argv);
