import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { buildGuestPrograms, INIT_SOURCE_DIR } from '../src/guest/compile.js';

const tmp = mkdtempSync(join(tmpdir(), 'appliance-init-c-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** A musl-gcc on PATH that logs each run, to see whether a build ran the compiler. */
function loggingCompiler(): { dir: string; log: string } {
  const dir = join(tmp, 'bin');
  const log = join(tmp, 'cc.log');
  execFileSync('mkdir', ['-p', dir]);
  writeFileSync(join(dir, 'musl-gcc'), `#!/bin/sh\necho "$*" >> ${log}\nexec /usr/bin/musl-gcc "$@"\n`);
  chmodSync(join(dir, 'musl-gcc'), 0o755);
  return { dir, log };
}

describe('buildGuestPrograms', () => {
  it('finds the C sources from the package root', () => {
    expect(INIT_SOURCE_DIR.endsWith(join('src', 'guest', 'c'))).toBe(true);
    expect(existsSync(join(INIT_SOURCE_DIR, 'init.c'))).toBe(true);
    expect(existsSync(join(INIT_SOURCE_DIR, 'protocol.h'))).toBe(true);
  });

  it('builds static binaries, and a second call is a cache hit that runs no compiler', async () => {
    const { dir, log } = loggingCompiler();
    const oldPath = process.env.PATH;
    process.env.PATH = `${dir}:${oldPath}`;
    try {
      const cacheDir = join(tmp, 'cache-a');
      const first = await buildGuestPrograms({ cacheDir });
      expect(first.compiler).toBe(join(dir, 'musl-gcc'));
      expect(first.init).toBe(join(cacheDir, 'init', first.hash, 'init'));
      for (const bin of [first.init, first.agent, first.inspect]) {
        const what = execFileSync('file', ['-b', bin], { encoding: 'utf8' });
        expect(what).toMatch(/statically linked/);
        expect(what).toMatch(/ELF 64-bit/);
        expect(statSync(bin).mode & 0o111).not.toBe(0);
      }
      const runs = readFileSync(log, 'utf8').trim().split('\n');
      // Each program from its own sources: the init from init.c, each daemon from its folder's files.
      expect(runs.filter((l) => / init\.c$/.test(l))).toHaveLength(1);
      expect(runs.some((l) => l.includes(' agent/main.c') && l.includes(' agent/exec.c') && !l.includes('inspect/'))).toBe(true);
      expect(runs.some((l) => l.includes(' inspect/main.c') && l.includes(' inspect/walk.c') && !l.includes('agent/'))).toBe(true);

      const mtime = statSync(first.init).mtimeMs;
      writeFileSync(log, '');
      // The hit runs no compiler (the log stays empty); bench/build.ts measures how fast it is.
      const second = await buildGuestPrograms({ cacheDir });
      expect(second).toEqual(first);
      expect(readFileSync(log, 'utf8')).toBe('');
      expect(statSync(first.init).mtimeMs).toBe(mtime);
    } finally {
      process.env.PATH = oldPath;
    }
  });

  it('is reproducible: two builds give the same bytes', async () => {
    const a = await buildGuestPrograms({ cacheDir: join(tmp, 'cache-b') });
    const b = await buildGuestPrograms({ cacheDir: join(tmp, 'cache-c') });
    expect(b.hash).toBe(a.hash);
    expect(a.init).not.toBe(b.init);
    expect(readFileSync(b.init).equals(readFileSync(a.init))).toBe(true);
    expect(readFileSync(b.agent).equals(readFileSync(a.agent))).toBe(true);
    expect(readFileSync(b.inspect).equals(readFileSync(a.inspect))).toBe(true);
  });

  it('the init refuses to run when it is not PID 1', async () => {
    const { init } = await buildGuestPrograms({ cacheDir: join(tmp, 'cache-b') });
    const res = spawnSync(init, [], { encoding: 'utf8' });
    expect(res.status).toBe(1);
    expect(res.stderr).toBe("appliance-init: must run as PID 1 (the kernel's init)\n");
  });

  it('names the Debian package to install when no C compiler is found', async () => {
    const saved = process.env.PATH;
    process.env.PATH = join(tmp, 'empty-path');
    try {
      await expect(buildGuestPrograms({ cacheDir: join(tmp, 'no-cc-cache') })).rejects.toMatchObject({
        code: 'ENOCOMPILER',
        message: expect.stringContaining('apt-get install musl-tools'),
      });
    } finally {
      process.env.PATH = saved;
    }
  });
});
