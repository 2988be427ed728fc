// Progress of a copy-out and a walk: the library's onProgress, and the bar the CLI draws on
// stderr when it is a terminal (run under a pseudo-terminal by script(1)), never otherwise.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inspect, type CopyOutProgress, type WalkProgress } from '../src/inspect/index.js';
import { SHARED_CACHE } from './helpers/shared-cache.js';

const CLI = resolve('dist/src/bin.cjs');
const BIG = 96 << 20;
let work: string;
let image: string;

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'appliance-progress-'));
  const tree = join(work, 'tree');
  mkdirSync(join(tree, 'data/small'), { recursive: true });
  for (let i = 0; i < 40; i++) writeFileSync(join(tree, `data/small/f${i}`), randomBytes(3000 + i));
  writeFileSync(join(tree, 'data/big'), randomBytes(BIG)); // incompressible, no holes: read apart (deferred)
  image = join(work, 'disk.img');
  execFileSync('mkfs.ext4', ['-q', '-d', tree, image, '160M']);
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('progress', () => {
  it('copyOut calls onProgress as it goes: totals never go back and end at the result; walk counts its entries', async () => {
    await using img = await inspect([image], { cacheDir: SHARED_CACHE });
    const { fs, path } = await img.locate('/data');
    const seen: CopyOutProgress[] = [];
    const dest = join(work, 'lib');
    mkdirSync(dest);
    const result = await fs.copyOut(path, dest, { onProgress: (p) => seen.push(p) });
    expect(result).toMatchObject({ files: 41, dirs: 2, bytes: BIG + 40 * 3000 + (39 * 40) / 2, skipped: [] });
    expect(seen.length).toBeGreaterThan(41);
    for (const [i, p] of seen.entries()) {
      if (i) for (const k of ['files', 'dirs', 'bytes'] as const) expect(p[k]).toBeGreaterThanOrEqual(seen[i - 1]![k]);
      expect(String(p.path)).toMatch(/^\/data(\/|$)/);
    }
    expect(seen.at(-1)).toMatchObject({ files: result.files, dirs: result.dirs, bytes: result.bytes, path: '/data/big' });

    const walked: WalkProgress[] = [];
    let entries = 0;
    for await (const _ of fs.walk('/data', { onProgress: (p) => walked.push(p) })) entries++;
    expect(entries).toBe(43);
    expect(walked.map((p) => p.entries)).toEqual(Array.from({ length: 43 }, (_, i) => i + 1));
  });

  it('`appliance copy-out` draws a bar on a terminal (the whole copy as its 100%), and nothing on a pipe', () => {
    const dest = (name: string) => {
      const d = join(work, name);
      mkdirSync(d);
      return d;
    };
    const args = [CLI, 'copy-out', '--cache-dir', SHARED_CACHE, image, '/data'];
    const quoted = (a: string[]) => a.map((s) => `'${s}'`).join(' ');
    const tty = spawnSync('script', ['-qefc', `${quoted([process.execPath, ...args, dest('tty')])}`, '/dev/null'], {
      encoding: 'utf8',
      env: { ...process.env, COLUMNS: '200' },
    });
    expect(tty.status, tty.stdout).toBe(0);
    const bars = tty.stdout.split('\r\x1b[K').filter((l) => l.startsWith('['));
    expect(bars.length).toBeGreaterThan(0);
    const percents = bars.map((b) => Number(/\] +(\d+)% /.exec(b)![1]));
    expect(percents).toEqual([...percents].sort((a, b) => a - b));
    expect(bars.at(-1)).toMatch(/ of 96\.\d MiB, \d+ files {2}\/data/);
    expect(tty.stdout.endsWith('\r\x1b[K')).toBe(true); // cleared when done

    const piped = spawnSync(process.execPath, [...args, dest('pipe')], { encoding: 'utf8' });
    expect([piped.status, piped.stdout, piped.stderr]).toEqual([0, '', '']);
  });
});

// Reads cut short on the same image: the rest of the inspection goes on at once, and each
// error names the user's call and path, never the helper's command line.
describe('reads cut short', () => {
  it('readFile over maxBytes rejects (ETOOBIG) without holding the other calls; a signal and close() name the path or the inspection', async () => {
    const img = await inspect([image], { cacheDir: SHARED_CACHE });
    const fs = await img.mount();
    const t0 = performance.now();
    const [tooBig, stat] = await Promise.all([fs.readFile('/data/big', { maxBytes: 1000 }).catch((e: Error) => e), fs.stat('/data/small/f1')]);
    expect(tooBig).toMatchObject({ code: 'ETOOBIG' });
    expect(stat.size).toBe(3001);
    // Before, the stream left unread held the channel until the kill's 5 s grace ran out.
    expect(performance.now() - t0).toBeLessThan(3000);
    const aborted = new AbortController();
    const reading = fs.readFile('/data/big', { signal: aborted.signal }).catch((e: Error) => e);
    setTimeout(() => aborted.abort(), 20);
    expect(await reading).toMatchObject({ code: 'EABORTED', message: expect.stringMatching(/^reading \/data\/big was aborted/) });
    const walked = (async () => {
      for await (const e of fs.walk('/', { signal: AbortSignal.abort() })) void e;
    })().catch((e: Error) => e);
    expect(await walked).toMatchObject({ code: 'EABORTED', message: 'walking / was aborted before it started' });
    const cut = fs.readFile('/data/big').catch((e: Error) => e);
    setTimeout(() => void img.close(), 30);
    const closed = await cut;
    expect(closed).toMatchObject({ code: 'ECLOSED', message: expect.stringContaining(`the inspection of ${image} is closed`) });
    for (const e of [tooBig, closed] as Error[]) expect(e.message).not.toMatch(/libexec|\/run\/appliance/);
  });
});
