// The README's code runs as written. Every ```ts and ```js block that uses the package is
// taken out of README.md: the vitest config and global setup blocks become a project's
// files (named by their first-line comment), the test block a test file, the other
// TypeScript blocks each a test's body, and the plain-JavaScript ones .mjs scripts run by
// node. The project is a folder inside this package, so `import … from 'appliance'`
// resolves to the built package itself (its "exports"), and a child vitest runs it with the
// README's own config: its global setup (prepare()), its timeout. `appliance` on the PATH
// is the built command.
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SHARED_CACHE } from './helpers/shared-cache.js';

const REPO = resolve('.');
let dir: string;

interface Block {
  lang: 'ts' | 'js';
  code: string;
}

/** The README's TypeScript and JavaScript blocks that use the package, in order. */
function readmeBlocks(): Block[] {
  const text = readFileSync(join(REPO, 'README.md'), 'utf8');
  return [...text.matchAll(/^```(ts|js)\n([\s\S]*?)^```$/gm)]
    .map((m) => ({ lang: m[1] as 'ts' | 'js', code: m[2]! }))
    .filter((b) => /from 'appliance'|vitest\/config/.test(b.code));
}

function sh(cmd: string, args: string[], cwd = dir): void {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr}`);
}

beforeAll(() => {
  // Inside the package (see above); its name starts with a dot: not the package's own source.
  dir = mkdtempSync(join(REPO, '.readme-run-'));
  // What the blocks read: a disk, a tree for mkext2, two images for the diff.
  sh('mkfs.ext4', ['-q', join(dir, 'disk.img'), '16M']);
  mkdirSync(join(dir, 'tree/etc'), { recursive: true });
  mkdirSync(join(dir, 'tree/bin'));
  writeFileSync(join(dir, 'tree/etc/app.conf'), 'port=8080\n');
  writeFileSync(join(dir, 'tree/bin/app'), '#!/bin/sh\n');
  chmodSync(join(dir, 'tree/bin/app'), 0o755);
  mkdirSync(join(dir, 'data'));
  writeFileSync(join(dir, 'data/motd'), 'before\n');
  sh('mkfs.ext4', ['-q', '-d', join(dir, 'data'), join(dir, 'a.raw'), '16M']);
  copyFileSync(join(dir, 'a.raw'), join(dir, 'b.raw'));
  writeFileSync(join(dir, 'motd'), 'after!\n');
  sh('debugfs', ['-w', '-R', 'rm /motd', join(dir, 'b.raw')]);
  sh('debugfs', ['-w', '-R', `write ${join(dir, 'motd')} /motd`, join(dir, 'b.raw')]);
  sh('qemu-img', ['convert', '-O', 'qcow2', 'a.raw', 'before.qcow2']);
  sh('qemu-img', ['convert', '-O', 'qcow2', 'b.raw', 'after.qcow2']);
  // `appliance` as the README's test calls it: the built command.
  mkdirSync(join(dir, 'bin'));
  writeFileSync(join(dir, 'bin/appliance'), `#!/bin/sh\nexec "${process.execPath}" "${join(REPO, 'dist/src/bin.cjs')}" "$@"\n`, { mode: 0o755 });
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const env = () => ({ ...process.env, APPLIANCE_CACHE_DIR: SHARED_CACHE, PATH: `${join(dir, 'bin')}:${process.env.PATH}` });

describe("the README's code", () => {
  it('has the blocks this test knows how to run', () => {
    const blocks = readmeBlocks();
    expect(blocks.filter((b) => b.lang === 'js')).toHaveLength(1);
    expect(blocks.map((b) => b.code.split('\n')[0])).toContain('// vitest.config.ts');
    expect(blocks.map((b) => b.code.split('\n')[0])).toContain('// appliance-setup.ts');
    expect(blocks.filter((b) => /\btest\(/.test(b.code))).toHaveLength(1);
    expect(blocks.length).toBeGreaterThanOrEqual(5);
  });

  it('the TypeScript blocks, under the README’s own vitest config and global setup, pass', () => {
    let n = 0;
    for (const b of readmeBlocks().filter((x) => x.lang === 'ts')) {
      const first = b.code.split('\n')[0]!;
      const named = /^\/\/ ([\w.-]+\.ts)$/.exec(first)?.[1];
      if (named) writeFileSync(join(dir, named), b.code);
      else if (/\btest\(/.test(b.code)) writeFileSync(join(dir, `block${++n}.test.ts`), b.code);
      else {
        // A block of statements: its imports stay on top, the rest is a test's body.
        const lines = b.code.split('\n');
        const imports = lines.filter((l) => l.startsWith('import '));
        const body = lines.filter((l) => !l.startsWith('import '));
        writeFileSync(
          join(dir, `block${++n}.test.ts`),
          [...imports, "import { test } from 'vitest';", `test('README block ${n}', async () => {`, ...body, '});', ''].join('\n'),
        );
      }
    }
    const r = spawnSync(process.execPath, [join(REPO, 'node_modules/vitest/vitest.mjs'), 'run', '--root', dir, '--config', join(dir, 'vitest.config.ts')], {
      cwd: dir,
      env: env(),
      encoding: 'utf8',
      timeout: 300_000,
    });
    expect(r.status, `${r.stdout}\n${r.stderr}`).toBe(0);
    expect(r.stdout.replace(/\x1b\[[0-9;]*m/g, '')).toMatch(new RegExp(`Tests +${n} passed \\(${n}\\)`));
  }, 300_000);

  it('the plain JavaScript block runs with node as it is', () => {
    const [b] = readmeBlocks().filter((x) => x.lang === 'js');
    writeFileSync(join(dir, 'block.mjs'), b!.code);
    const r = spawnSync(process.execPath, ['block.mjs'], { cwd: dir, env: env(), encoding: 'utf8', timeout: 120_000 });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^0 /);
  }, 120_000);
});
