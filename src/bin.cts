#!/usr/bin/env node
/**
 * The `appliance` command: runs the CLI's bundle (cli.cjs, made by scripts/bundle.mjs
 * from cli.ts) with V8's code cache. Node 20 has no compile cache of its own, and compiling
 * the ~400 KB bundle was a fifth of a no-op `appliance build`: with the cache, V8
 * deserializes the functions the last run compiled instead (~30 ms less a call here).
 *
 * The cache lives in the appliance cache folder's `code/` (cache/layout.ts), only when that
 * folder is ours and writable by nobody else (as ensureCacheRoot requires): V8 runs the
 * bytecode it finds there, so a file another user could write would be code they run as
 * us. Its name hashes the bundle and Node's version: V8 itself only checks the source's
 * length. CommonJS and not an ES module: loading through the ESM loader cost ~8 ms more.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import Module from 'node:module';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { Script } from 'node:vm';

const bundle = join(__dirname, 'cli.cjs');
// Read as Latin-1: the bundle is ASCII (esbuild escapes the rest), and a one-byte string needs no decoding.
const source = readFileSync(bundle, 'latin1').replace(/^#!.*/, '');

/** The code cache folder, when the cache root is safe to take bytecode from; undefined otherwise. */
function codeDir(env: NodeJS.ProcessEnv): string | undefined {
  const root = env.APPLIANCE_CACHE_DIR
    ? resolve(env.APPLIANCE_CACHE_DIR)
    : env.XDG_CACHE_HOME
      ? resolve(env.XDG_CACHE_HOME, 'appliance')
      : join(homedir(), '.cache', 'appliance');
  const safe = (path: string) => {
    try {
      const st = statSync(path);
      return st.uid === process.getuid?.() && (st.mode & 0o022) === 0;
    } catch {
      return false; // not there, or not ours to look at
    }
  };
  return safe(root) ? join(root, 'code') : undefined;
}

const dir = codeDir(process.env);
const name = `cli-${createHash('sha256').update(source).update(process.version).digest('hex').slice(0, 24)}.v8`;
const file = dir && join(dir, name);
let cachedData: Buffer | undefined;
try {
  const st = file ? statSync(file) : undefined;
  if (st && st.uid === process.getuid?.() && (st.mode & 0o022) === 0 && statSync(dir!).uid === process.getuid?.()) cachedData = readFileSync(file!);
} catch {
  // no cache yet: compiled as usual, and saved at exit
}

const script = new Script(Module.wrap(source), { filename: bundle, cachedData });
// Functions restored from a code cache have no import() of their own in Node 20: the bundle
// imports execa through this one (src/external.ts).
(globalThis as Record<symbol, unknown>)[Symbol.for('appliance.import')] = (specifier: string) => import(specifier);

if (file && (!cachedData || script.cachedDataRejected)) {
  // At exit: the cache then holds every function this run compiled, not only the top level.
  process.once('exit', () => {
    try {
      mkdirSync(dir!, { recursive: true, mode: 0o700 });
      for (const old of readdirSync(dir!)) if (old.startsWith('cli-') && old !== name) rmSync(join(dir!, old), { force: true });
      const tmp = `${file}.${process.pid}`;
      writeFileSync(tmp, script.createCachedData(), { mode: 0o600 });
      renameSync(tmp, file);
    } catch {
      // A cache that cannot be written costs the next run its compile, nothing else.
    }
  });
}

const cjs = { exports: {} };
script.runInThisContext()(cjs.exports, Module.createRequire(bundle), cjs, bundle, __dirname);
