// `appliance mkext2` as a user runs it (from dist/, built by pretest).
import { execFile } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { expectClean, readImageTree } from './helpers/ext2-oracle.js';

const CLI = join(import.meta.dirname, '..', 'dist', 'src', 'bin.cjs');
let work: string;

function cli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { env: { ...process.env, ...env } }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? -1) : 0, stdout, stderr });
    });
  });
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'ext2-cli-'));
  mkdirSync(join(work, 'src/etc'), { recursive: true });
  writeFileSync(join(work, 'src/etc/hostname'), 'appliance\n');
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

test('--help lists the options', async () => {
  const { code, stdout } = await cli(['mkext2', '--help']);
  expect(code).toBe(0);
  for (const option of ['--size', '--extra', '--block-size', '--uuid', '--label', '--squash-owner', '--json', 'SOURCE_DATE_EPOCH'])
    expect(stdout).toContain(option);
});

test('writes an image and reports it as JSON', async () => {
  const out = join(work, 'root.img');
  const { code, stdout, stderr } = await cli(['mkext2', join(work, 'src'), out, '--json', '--squash-owner', '--label', 'root', '--block-size', '1024'], {
    SOURCE_DATE_EPOCH: '1234567890',
  });
  expect(stderr).toBe('');
  expect(code).toBe(0);
  const result = JSON.parse(stdout) as Record<string, unknown>;
  expect(result).toMatchObject({ path: out, blockSize: 1024 });
  expect(result.sizeBytes).toBe((result.blocksTotal as number) * 1024);
  const fsck = await expectClean(out);
  expect(fsck.blocksUsed).toBe((result.blocksTotal as number) - (result.blocksFree as number));
  const { paths, inodes } = await readImageTree(out);
  const hostname = inodes.get(paths.get('etc/hostname')!)!;
  expect([hostname.uid, hostname.mtime]).toEqual([0, 1234567890]);
  // Only the image: the temporary file was renamed.
  expect((await readdir(work)).sort()).toEqual(['root.img', 'src']);
});

test('usage errors exit 2, failures exit 1, each with one line naming the cause', async () => {
  const bad = await cli(['mkext2', join(work, 'src'), join(work, 'x.img'), '--block-size', '512']);
  expect(bad.code).toBe(2);
  expect(bad.stderr).toBe('appliance: --block-size 512: use 1024, 2048 or 4096\n');
  const missing = await cli(['mkext2', join(work, 'nope'), join(work, 'x.img')]);
  expect(missing.code).toBe(1);
  expect(missing.stderr).toMatch(/^appliance: cannot read .*nope: ENOENT.*: give an existing folder\n$/);
  const small = await cli(['mkext2', join(work, 'src'), join(work, 'x.img'), '--size', '16k']);
  expect(small.code).toBe(1);
  expect(small.stderr).toMatch(/^appliance: an ext2 image of 16384 bytes is too small .* needs at least \d+ bytes/);
  expect(await readdir(work)).not.toContain('x.img');
});
