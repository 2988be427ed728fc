import { execFileSync, spawnSync } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApplianceError } from '../src/errors.js';
import { buildInitrd } from '../src/appliance/initrd.js';
import { APPLIANCE_MODULES, findKernel, resolveModules, type KernelInfo } from '../src/kernel/index.js';
import type { Entry } from '../src/formats/entry.js';

// A stand-in for the real init: loads /modules.order with finit_module as the real one
// does, checks a hard link, a symlink and a non-ASCII name the kernel unpacked, and
// powers off. What it prints is the test's oracle: the kernel's own unpacker and loader.
const TEST_INIT = String.raw`
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/syscall.h>
#include <unistd.h>
int main(void) {
  setvbuf(stdout, NULL, _IONBF, 0);
  printf("INIT-START\n");
  FILE *order = fopen("/modules.order", "r");
  char line[256];
  while (order && fgets(line, sizeof line, order)) {
    line[strcspn(line, "\n")] = 0;
    int fd = open(line, O_RDONLY | O_CLOEXEC);
    long rc = fd < 0 ? -1 : syscall(SYS_finit_module, fd, "", 0);
    printf(rc == 0 ? "LOADED %s\n" : "FAILED %s\n", line);
    if (fd >= 0) close(fd);
  }
  struct stat a, b, c;
  char target[64] = {0};
  readlink("/x/link", target, sizeof target - 1);
  if (stat("/x/h1", &a) == 0 && stat("/x/h2", &b) == 0)
    printf("HARDLINK same=%d nlink=%lu size=%ld\n", a.st_ino == b.st_ino, (unsigned long)a.st_nlink, (long)b.st_size);
  printf("SYMLINK %s\n", target);
  printf("UTF8 %d\n", stat("/x/caf\xc3\xa9", &c) == 0 && c.st_size == 1);
  printf("CONSOLE %d\n", stat("/dev/console", &c) == 0 && S_ISCHR(c.st_mode) && c.st_rdev == makedev(5, 1));
  printf("INIT-DONE\n");
  reboot(RB_POWER_OFF);
  return 1;
}
`;

let kernel: KernelInfo;
let dir: string;
let init: string;
beforeAll(async () => {
  kernel = await findKernel({ env: {} });
  dir = await mkdtemp(join(tmpdir(), 'appliance-initrd-test-'));
  await writeFile(join(dir, 'init.c'), TEST_INIT);
  init = join(dir, 'init');
  execFileSync('musl-gcc', ['-static', '-Os', '-o', init, join(dir, 'init.c')]);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** GNU cpio's listing: "mode nlink uid gid size-or-dev name". */
function cpioList(archive: string): string[] {
  const out = execFileSync('cpio', ['-tvn', '--quiet'], { input: execFileSync('cat', [archive]), encoding: 'utf8' });
  return out
    .trimEnd()
    .split('\n')
    .map((l) => l.replace(/\s+/g, ' ').replace(/ [A-Z][a-z]{2} \d+ \d{4} /, ' '));
}

function cpioExtract(archive: string, path: string): Buffer {
  return execFileSync('cpio', ['-i', '--quiet', '--to-stdout', path], { input: execFileSync('cat', [archive]), maxBuffer: 1 << 26 });
}

/**
 * A copy of the appliance modules, each compressed a different way, with a modules.dep
 * that names them so: the host side must decompress them all.
 */
let compressed: Promise<string> | undefined;
const compressedModulesDir = () => (compressed ??= makeCompressedModulesDir());
async function makeCompressedModulesDir(): Promise<string> {
  const modulesDir = join(dir, 'compressed', kernel.version);
  const modules = await resolveModules(kernel.modulesDir, APPLIANCE_MODULES);
  const rename = new Map<string, string>();
  const ways = [
    { ext: '.xz', cmd: ['xz', '-c', '--check=crc32'] },
    { ext: '.zst', cmd: ['zstd', '-q', '-c'] },
    { ext: '.gz', cmd: ['gzip', '-n', '-c'] },
  ];
  for (const [i, m] of modules.entries()) {
    const way = ways[i % ways.length]!;
    rename.set(m.relPath, m.relPath + way.ext);
    const dest = join(modulesDir, m.relPath + way.ext);
    await mkdir(dirname(dest), { recursive: true });
    await writeFile(dest, execFileSync(way.cmd[0]!, [...way.cmd.slice(1), m.hostPath], { maxBuffer: 1 << 26 }));
  }
  const dep = (await readFile(join(kernel.modulesDir, 'modules.dep'), 'utf8'))
    .split('\n')
    .filter((line) => rename.has(line.split(':')[0]!))
    .map((line) => line.replace(/\S+\.ko/g, (p) => rename.get(p) ?? p));
  await writeFile(join(modulesDir, 'modules.dep'), dep.join('\n') + '\n');
  await copyFile(join(kernel.modulesDir, 'modules.builtin'), join(modulesDir, 'modules.builtin'));
  return modulesDir;
}

describe('buildInitrd', () => {
  it('lays out /init, the mount points, /dev/console, the modules in load order and /modules.order', async () => {
    const output = join(dir, 'layout.img');
    const result = await buildInitrd({ kernel, init, output });
    expect(result.path).toBe(output);
    expect(result.modules).toEqual(await resolveModules(kernel.modulesDir, APPLIANCE_MODULES));
    const names = result.modules.map((m) => basename(m.relPath));
    const list = cpioList(output);
    expect(list.slice(0, 8)).toEqual([
      'drwxr-xr-x 2 0 0 0 dev',
      'drwxr-xr-x 2 0 0 0 proc',
      'drwxr-xr-x 2 0 0 0 sys',
      'drwxr-xr-x 2 0 0 0 newroot',
      'drwxr-xr-x 2 0 0 0 lib',
      'drwxr-xr-x 2 0 0 0 lib/modules',
      'crw------- 1 0 0 5, 1 dev/console',
      expect.stringMatching(/^-rwxr-xr-x 1 0 0 \d+ init$/),
    ]);
    expect(list.slice(8).map((l) => l.split(' ').pop())).toEqual([...names.map((n) => `lib/modules/${n}`), 'modules.order']);
    expect(cpioExtract(output, 'modules.order').toString()).toBe(names.map((n) => `/lib/modules/${n}\n`).join(''));
    expect(cpioExtract(output, 'init')).toEqual(await readFile(init));
    expect(cpioExtract(output, 'lib/modules/virtio_blk.ko')).toEqual(await readFile(join(kernel.modulesDir, 'kernel/drivers/block/virtio_blk.ko')));
    expect(result.size).toBe((await readFile(output)).length);

    // Reproducible: a second build is the same bytes.
    await buildInitrd({ kernel, init, output: join(dir, 'again.img') });
    expect((await readFile(join(dir, 'again.img'))).equals(await readFile(output))).toBe(true);
  });

  it('rejects a missing init and an unknown module without writing anything', async () => {
    const output = join(dir, 'never.img');
    const noInit = await buildInitrd({ kernel, init: join(dir, 'nope'), output }).catch((e: unknown) => e);
    expect((noInit as ApplianceError).code).toBe('ENOINIT');
    const unknown = await buildInitrd({ kernel, init, output, modules: ['virtio_blk', 'bogus'] }).catch((e: unknown) => e);
    expect((unknown as ApplianceError).code).toBe('EUNKNOWNMODULE');
    expect(spawnSync('test', ['-e', output]).status).toBe(1);
  });

  it('boots: the kernel unpacks it and loads every module, decompressed from .xz, .zst and .gz on the host', async () => {
    const modulesDir = await compressedModulesDir();
    const x = { uid: 0, gid: 0, mtime: 0 };
    const extra: Entry[] = [
      { ...x, path: 'x', type: 'dir', mode: 0o755 },
      { ...x, path: 'x/h1', type: 'file', mode: 0o644, size: 5, source: { kind: 'bytes', data: Buffer.from('hello') }, hardlinkKey: 'h' },
      { ...x, path: 'x/h2', type: 'file', mode: 0o644, size: 5, source: { kind: 'bytes', data: Buffer.from('hello') }, hardlinkKey: 'h' },
      { ...x, path: 'x/link', type: 'symlink', mode: 0o777, target: '/x/h1' },
      { ...x, path: 'x/café', type: 'file', mode: 0o644, size: 1, source: { kind: 'bytes', data: Buffer.from('c') } },
    ];
    const output = join(dir, 'boot.img');
    const result = await buildInitrd({ kernel: { ...kernel, modulesDir }, init, output, extra });
    expect(new Set(result.modules.map((m) => m.compression))).toEqual(new Set(['xz', 'zst', 'gz']));
    const plain = await resolveModules(kernel.modulesDir, APPLIANCE_MODULES);
    for (const m of plain) {
      expect(cpioExtract(output, `lib/modules/${basename(m.relPath)}`).equals(await readFile(m.hostPath))).toBe(true);
    }

    // Under TCG on a busy host the guest's PIT calibration of the TSC can fail, and the
    // kernel then hangs with its clock stopped; giving it the host's TSC rate avoids that.
    const mhz = /^cpu MHz\s*:\s*([\d.]+)/m.exec(await readFile('/proc/cpuinfo', 'utf8'))?.[1];
    const tsc = mhz ? ` tsc_early_khz=${Math.round(Number(mhz) * 1000)}` : '';
    const qemu = spawnSync(
      'qemu-system-x86_64',
      [
        '-accel',
        'tcg',
        '-M',
        'microvm',
        '-m',
        '256',
        '-nodefaults',
        '-no-user-config',
        '-nographic',
        '-serial',
        'stdio',
        '-no-reboot',
        '-kernel',
        kernel.path,
        '-initrd',
        output,
        '-append',
        `console=ttyS0 panic=-1 quiet${tsc}`,
      ],
      { encoding: 'utf8', timeout: 60_000 },
    );
    const lines = qemu.stdout.split(/\r?\n/).filter((l) => /^[A-Z0-9-]+( |$)/.test(l));
    expect(lines, qemu.stdout.slice(-3000)).toEqual([
      'INIT-START',
      ...plain.map((m) => `LOADED /lib/modules/${basename(m.relPath)}`),
      'HARDLINK same=1 nlink=2 size=5',
      'SYMLINK /x/h1',
      'UTF8 1',
      'CONSOLE 1',
      'INIT-DONE',
    ]);
  });

  it('says which package to install when a decompressor is missing', async () => {
    const kernelWithXz = { ...kernel, modulesDir: await compressedModulesDir() };
    const path = process.env.PATH;
    process.env.PATH = '/nonexistent';
    try {
      const err = await buildInitrd({ kernel: kernelWithXz, init, output: join(dir, 'no-xz.img') }).catch((e: unknown) => e);
      expect((err as ApplianceError).code).toBe('ENOTOOL');
      expect((err as Error).message).toMatch(/^xz is needed to decompress .*virtio_ring\.ko\.xz but is not installed: install the xz-utils/);
    } finally {
      process.env.PATH = path;
    }
  });
});

describe('appliance mkinitrd', () => {
  const cli = (...args: string[]) => spawnSync(process.execPath, [resolve('dist/src/bin.cjs'), 'mkinitrd', ...args], { encoding: 'utf8' });

  it('writes the initrd and reports it as JSON', () => {
    const output = join(dir, 'cli.img');
    const r = cli(output, '--init', init, '--modules', 'virtio-blk', '--kernel', kernel.path, '--json');
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const size = (execFileSync('stat', ['-c', '%s', output], { encoding: 'utf8' }) as string).trim();
    expect(JSON.parse(r.stdout)).toEqual({
      path: output,
      size: Number(size),
      kernel: { path: kernel.path, version: kernel.version },
      modules: ['virtio_ring', 'virtio', 'virtio_blk'],
    });
  });

  it('says what is wrong in one line for an unknown module or a kernel that is not one', () => {
    const bogus = cli(join(dir, 'x.img'), '--init', init, '--modules', 'virtio_blk,bogus_mod');
    expect(bogus.status).toBe(1);
    expect(bogus.stderr).toMatch(/^appliance: unknown kernel module "bogus_mod": .*modinfo.*\n$/);
    const notKernel = cli(join(dir, 'x.img'), '--init', init, '--kernel', init);
    expect(notKernel.status).toBe(1);
    expect(notKernel.stderr).toMatch(/^appliance: .* is not an x86 bzImage kernel .*--kernel.*\n$/);
  });
});
