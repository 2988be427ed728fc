// A cache entry is booted as it is: one whose files were changed after its build (by
// anyone who can write the cache) must not be used, however cheap the hit is.
import { copyFileSync, mkdtempSync, openSync, readFileSync, renameSync, rmSync, statSync, utimesSync, writeSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildAppliance, type Appliance } from '../../src/appliance/index.js';

const tmp = mkdtempSync(join(tmpdir(), 'appliance-cache-integrity-'));
const cacheDir = join(tmp, 'cache');
let first: Appliance;
let pristine: Buffer;
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
beforeAll(async () => {
  first = await buildAppliance({ cacheDir });
  pristine = readFileSync(first.root);
}, 240_000);

/** Writes `bytes` at `offset` of `path` in place, then gives it back its old mtime (ctime cannot be). */
function tamper(path: string, offset: number, bytes: string): void {
  const st = statSync(path);
  const fd = openSync(path, 'r+');
  writeSync(fd, Buffer.from(bytes), 0, bytes.length, offset);
  closeSync(fd);
  utimesSync(path, st.atime, st.mtime);
}

describe('a cache entry changed after its build', () => {
  it('is never used: the hit notices, says so, and builds it again', async () => {
    tamper(first.root, 5 << 20, 'EVIL');
    expect(statSync(first.root).size).toBe(pristine.length);
    const warnings: string[] = [];
    const again = await buildAppliance({ cacheDir, warn: (m) => warnings.push(m) });
    expect(warnings).toEqual([`cache entry ${first.dir} was changed after its build (root.ext2 does not have the content its build wrote): building it again`]);
    expect(again.cacheHit).toBe(false);
    expect(again.key).toBe(first.key);
    expect(readFileSync(again.root).equals(pristine)).toBe(true);
  }, 240_000);

  it('in its kernel or initrd likewise', async () => {
    for (const file of ['kernel', 'initrd'] as const) {
      const a = await buildAppliance({ cacheDir });
      tamper(a[file], 600, 'X');
      const warnings: string[] = [];
      const b = await buildAppliance({ cacheDir, warn: (m) => warnings.push(m) });
      expect(warnings[0]).toContain(`(${file} does not have the content its build wrote)`);
      expect(b.cacheHit).toBe(false);
    }
  }, 240_000);

  it('is still used when only copied back with the same content (a new inode: checked by hash)', async () => {
    const a = await buildAppliance({ cacheDir });
    const copy = join(tmp, 'root-copy');
    copyFileSync(a.root, copy);
    renameSync(copy, a.root); // a new inode and ctime, the same bytes
    const warnings: string[] = [];
    expect((await buildAppliance({ cacheDir, warn: (m) => warnings.push(m) })).cacheHit).toBe(true);
    expect(warnings).toEqual([]);
  }, 240_000);
});
