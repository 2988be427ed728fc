// The `appliance` command (src/bin.cts) runs the CLI's bundle with V8's code cache, kept in
// the cache folder's code/. V8 runs the bytecode it finds there, so the cache is a way in:
// a file that is not ours alone, or in a folder others may write, must never be read.
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { layout } from '../src/cache/layout.js';

const BIN = resolve('dist/src/bin.cjs');
const tmp = mkdtempSync(join(tmpdir(), 'appliance-bin-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** `appliance cache ls` with this cache folder (it makes the folder when there is none). */
function run(root: string): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, 'cache', 'ls'], { env: { ...process.env, APPLIANCE_CACHE_DIR: root }, encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}
const cacheFile = (root: string) => {
  const names = readdirSync(layout.code(root)).filter((n) => n.endsWith('.v8'));
  expect(names).toHaveLength(1);
  return join(layout.code(root), names[0]!);
};

describe('the code cache of the appliance command', () => {
  it('is written at the first run (ours alone), then used as it is', () => {
    const root = join(tmp, 'a');
    const first = run(root);
    expect(first.status, first.stderr).toBe(0);
    // The first run had no cache folder to check when it started: it keeps no code cache.
    expect(() => readdirSync(layout.code(root))).toThrow();
    expect(run(root).status).toBe(0);
    const file = cacheFile(root);
    const st = statSync(file);
    expect(st.mode & 0o777).toBe(0o600);
    expect(run(root)).toMatchObject({ status: 0, stdout: first.stdout, stderr: '' });
    const again = statSync(file);
    expect([again.ino, again.mtimeMs]).toEqual([st.ino, st.mtimeMs]); // read, not written again
  });

  it('a cache V8 rejects (garbage) costs a compile and is written anew', () => {
    const root = join(tmp, 'b');
    run(root);
    run(root);
    const file = cacheFile(root);
    writeFileSync(file, Buffer.alloc(4096, 0x41), { mode: 0o600 });
    expect(run(root)).toMatchObject({ status: 0, stderr: '' });
    expect(statSync(cacheFile(root)).size).toBeGreaterThan(64 << 10);
  });

  it('a cache file others may write, or a cache folder others may write, is never read', () => {
    const root = join(tmp, 'c');
    run(root);
    run(root);
    const file = cacheFile(root);
    chmodSync(file, 0o666);
    const before = statSync(file);
    expect(run(root).status).toBe(0);
    const after = statSync(cacheFile(root));
    expect(after.ino).not.toBe(before.ino); // not trusted: compiled, and replaced by one of ours
    expect(after.mode & 0o777).toBe(0o600);
    writeFileSync(cacheFile(root), Buffer.alloc(16, 0x42));
    chmodSync(root, 0o777);
    // Not even looked at: the root is not safe (and the CLI refuses it, as ensureCacheRoot does).
    expect(run(root)).toMatchObject({ status: 1, stderr: expect.stringContaining('is writable by others') });
    expect(statSync(cacheFile(root)).size).toBe(16);
  });
});
