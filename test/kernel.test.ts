import { execFileSync, spawnSync } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApplianceError } from '../src/errors.js';
import { compareVersions, findKernel, readKernelVersion } from '../src/kernel/index.js';

/** A bzImage setup header with just what the boot protocol says locates the version string. */
function fakeBzImage(version: string): Buffer {
  const b = Buffer.alloc(0x600);
  b.writeUInt16LE(0xaa55, 0x1fe);
  b.write('HdrS', 0x202, 'latin1');
  b.writeUInt16LE(0x020f, 0x206);
  b.writeUInt16LE(0x300, 0x20e);
  b.write(`${version} (test@example.org) #1 SMP\0`, 0x500, 'latin1');
  return b;
}

/** `file`'s own reading of the header: an independent oracle for the version. */
function fileVersion(path: string): string {
  const out = execFileSync('file', ['-b', path], { encoding: 'utf8' });
  return /version (\S+)/.exec(out)![1]!;
}

async function expectError(p: Promise<unknown>, code: string, ...phrases: RegExp[]): Promise<ApplianceError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ApplianceError);
  expect((err as ApplianceError).code).toBe(code);
  for (const re of phrases) expect((err as Error).message).toMatch(re);
  return err as ApplianceError;
}

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'appliance-kernel-test-'));
  await chmod(dir, 0o755); // the unprivileged runs below must reach it
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A fake root: kernels (name -> header version) under boot/ or lib/modules/<v>/, and modules.dep where asked. */
async function fakeRoot(name: string, kernels: { path: string; version: string; mode?: number }[], withModules: string[]): Promise<string> {
  const root = join(dir, name);
  await mkdir(root);
  for (const v of withModules) {
    await mkdir(join(root, 'lib/modules', v), { recursive: true });
    await writeFile(join(root, 'lib/modules', v, 'modules.dep'), '');
  }
  for (const k of kernels) {
    await mkdir(join(root, k.path, '..'), { recursive: true });
    await writeFile(join(root, k.path), fakeBzImage(k.version), { mode: k.mode ?? 0o644 });
  }
  await chmod(root, 0o755);
  return root;
}

describe('readKernelVersion', () => {
  it('reads the installed kernel release from its header, matching file(1) and /lib/modules', async () => {
    const kernels = (await readdir('/boot')).filter((n) => n.startsWith('vmlinuz-'));
    expect(kernels.length).toBeGreaterThan(0);
    const modules = await readdir('/lib/modules');
    for (const name of kernels) {
      const version = await readKernelVersion(join('/boot', name));
      expect(version).toBe(fileVersion(join('/boot', name)));
      expect(modules).toContain(version);
    }
  });

  it('reads the header, not the file name', async () => {
    const root = await fakeRoot('renamed', [{ path: 'boot/vmlinuz-9.9.9', version: '5.10.0-7-amd64' }], []);
    const path = join(root, 'boot/vmlinuz-9.9.9');
    expect(fileVersion(path)).toBe('5.10.0-7-amd64');
    expect(await readKernelVersion(path)).toBe('5.10.0-7-amd64');
  });

  it('rejects a file that is not a bzImage, and a directory, with one clear line', async () => {
    const path = join(dir, 'not-a-kernel');
    await writeFile(path, Buffer.alloc(4096, 0x41));
    await expectError(readKernelVersion(path), 'EKERNELFORMAT', /not an x86 bzImage/, /--kernel/);
    await expectError(readKernelVersion(dir), 'EKERNEL', /cannot read kernel/);
    await expectError(readKernelVersion(join(dir, 'nope')), 'ENOKERNEL', /does not exist/, /--kernel/);
  });
});

describe('findKernel', () => {
  it('finds the installed kernel with its modules dir', async () => {
    const k = await findKernel({ env: {} });
    expect(k.path).toMatch(/^\/boot\/vmlinuz-|^\/lib\/modules\/[^/]+\/vmlinuz$/);
    expect(k.version).toBe(fileVersion(k.path));
    expect(k.modulesDir).toBe(`/lib/modules/${k.version}`);
    expect(await readdir(k.modulesDir)).toContain('modules.dep');
  });

  it('picks the newest release (numerically) that has modules.dep, from /boot and /lib/modules/<v>/vmlinuz', async () => {
    const root = await fakeRoot(
      'several',
      [
        { path: 'boot/vmlinuz-a', version: '6.1.9-1-amd64' },
        { path: 'boot/vmlinuz-b', version: '6.1.10-1-amd64' },
        { path: 'boot/vmlinuz-c', version: '6.2.0-1-amd64' }, // newest, but no modules
        { path: 'lib/modules/6.1.11-1-amd64/vmlinuz', version: '6.1.11-1-amd64' },
      ],
      ['6.1.9-1-amd64', '6.1.10-1-amd64', '6.1.11-1-amd64'],
    );
    expect(await findKernel({ root, env: {} })).toEqual({
      path: join(root, 'lib/modules/6.1.11-1-amd64/vmlinuz'),
      version: '6.1.11-1-amd64',
      modulesDir: join(root, 'lib/modules/6.1.11-1-amd64'),
    });
    await rm(join(root, 'lib/modules/6.1.11-1-amd64/vmlinuz'));
    expect((await findKernel({ root, env: {} })).path).toBe(join(root, 'boot/vmlinuz-b'));
  });

  it('takes --kernel over APPLIANCE_KERNEL over discovery', async () => {
    const root = await fakeRoot(
      'explicit',
      [
        { path: 'boot/vmlinuz-new', version: '6.5.0' },
        { path: 'k1', version: '6.1.0' },
        { path: 'k2', version: '6.2.0' },
      ],
      ['6.5.0', '6.1.0', '6.2.0'],
    );
    const env = { APPLIANCE_KERNEL: join(root, 'k2') };
    expect((await findKernel({ root, env })).version).toBe('6.2.0');
    expect((await findKernel({ root, env, kernel: join(root, 'k1') })).version).toBe('6.1.0');
    expect((await findKernel({ root, env: {} })).version).toBe('6.5.0');
  });

  it('says what to install when there is no kernel, or no modules for it', async () => {
    const empty = await fakeRoot('empty', [], []);
    await expectError(findKernel({ root: empty, env: {} }), 'ENOKERNEL', /no kernel found/, /apt-get install linux-image/, /--kernel/);
    const bare = await fakeRoot('bare', [{ path: 'boot/vmlinuz-6.1.0', version: '6.1.0' }], []);
    await expectError(findKernel({ root: bare, env: {} }), 'ENOMODULES', /6\.1\.0\/modules\.dep does not exist/, /depmod/);
    await expectError(findKernel({ root: bare, kernel: join(bare, 'boot/vmlinuz-6.1.0') }), 'ENOMODULES', /modules\.dep/);
  });
});

describe('an unreadable kernel, as an unprivileged user', () => {
  // Root reads anything, so the check runs as nobody (or as ourselves when not root).
  const asUser = (args: string[]) => {
    const argv = process.getuid?.() === 0 ? ['setpriv', '--reuid=nobody', '--regid=nogroup', '--clear-groups', ...args] : args;
    return spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', cwd: dir });
  };

  it('mkinitrd --kernel on a mode-000 kernel prints one line that says to chmod or use --kernel', async () => {
    const root = await fakeRoot('perm-cli', [{ path: 'vmlinuz', version: '6.1.0', mode: 0o000 }], ['6.1.0']);
    const r = asUser([
      process.execPath,
      resolve('dist/src/bin.cjs'),
      'mkinitrd',
      join(dir, 'out.img'),
      '--init',
      '/bin/true',
      '--kernel',
      join(root, 'vmlinuz'),
    ]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^appliance: kernel .*vmlinuz is not readable by you .*chmod 0644 .*--kernel PATH or APPLIANCE_KERNEL\)\n$/);
    expect(r.stderr).not.toMatch(/internal error|\n\s+at /);
  });

  it('discovery of only mode-0600 kernels (as Ubuntu ships them) names them and the fix', async () => {
    const root = await fakeRoot('perm-find', [{ path: 'boot/vmlinuz-6.1.0', version: '6.1.0', mode: 0o600 }], ['6.1.0']);
    const script =
      `import { findKernel } from ${JSON.stringify(resolve('dist/src/kernel/index.js'))};` +
      `findKernel({ root: ${JSON.stringify(root)}, env: {} }).then(k => console.log(JSON.stringify(k)), e => { console.log(e.code + ': ' + e.message); });`;
    const r = asUser([process.execPath, '--input-type=module', '-e', script]);
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/^EKERNELPERM: no readable kernel: .*boot\/vmlinuz-6\.1\.0 is not readable by you .*sudo chmod 0644 .*--kernel PATH/);
  });
});

describe('compareVersions', () => {
  it('orders releases like sort -V', () => {
    const versions = ['6.1.10-1-amd64', '6.1.9-1-amd64', '5.19.0', '6.1.10-2-amd64', '6.10.0', '6.1.10-1-amd64+debug'];
    const expected = execFileSync('sort', ['-V'], { input: versions.join('\n') + '\n', encoding: 'utf8' })
      .trim()
      .split('\n');
    expect([...versions].sort(compareVersions)).toEqual(expected);
  });
});
