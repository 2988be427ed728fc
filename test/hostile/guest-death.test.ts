// A guest that dies under its caller, in real qemu (TCG) on microvm and q35: a kernel
// panic (sysrq c), a reboot (sysrq b), a power-off (sysrq o), and a panic forced by the
// kernel's own ext4 driver on a crafted user image (errors=panic, one bad directory entry).
// Each must end the pending request within seconds with EGUESTDIED and the console lines
// that tell what happened, leave no qemu behind, and leave the user's image unchanged; a
// guest that dies while booting (resumed from a snapshot) must end the boot as quickly.
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildAppliance } from '../../src/appliance/index.js';
import { AgentClient } from '../../src/agent/agent-client.js';
import { param, ROOT_SERIAL } from '../../src/guest/contract.js';
import { launch } from '../../src/launcher/launch.js';
import { boot } from '../../src/vm/vm.js';
import { alive, processesNaming } from '../helpers/proc.js';
import { SHARED_CACHE } from '../helpers/shared-cache.js';

const tmp = mkdtempSync(join(tmpdir(), 'appliance-death-'));
const image = join(tmp, 'errors-panic.ext4');
const CLI = resolve('dist/src/bin.cjs');
const sha256 = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');
let imageHash: string;

/** A small ext4 whose superblock says errors=panic, and whose directory /d starts with an entry of length 0. */
function craftImage(): void {
  const tree = join(tmp, 'tree');
  mkdirSync(join(tree, 'd'), { recursive: true });
  for (const name of ['a', 'b', 'c']) writeFileSync(join(tree, 'd', name), `${name}\n`);
  // Without metadata_csum the kernel reads the block and finds the bad entry itself.
  execFileSync('mkfs.ext4', ['-q', '-F', '-b', '1024', '-O', '^metadata_csum', '-d', tree, image, '4M']);
  execFileSync('tune2fs', ['-e', 'panic', image], { stdio: 'ignore' });
  const block = Number(execFileSync('debugfs', ['-R', 'bmap /d 0', image], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim());
  expect(block).toBeGreaterThan(0);
  const bytes = readFileSync(image);
  bytes.writeUInt16LE(0, block * 1024 + 4); // the first entry's rec_len
  writeFileSync(image, bytes);
}

beforeAll(() => {
  craftImage();
  imageHash = sha256(image);
});

afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const MOUNT_AND_LIST = 'mkdir -p /tmp/m && mount -o ro -t ext4 /dev/disk/by-id/virtio-disk0 /tmp/m && ls /tmp/m/d';

/** How each death is provoked, and the kernel's line that must reach the caller. */
const DEATHS = [
  { what: 'a kernel panic (sysrq c)', command: 'echo c > /proc/sysrq-trigger', says: /Kernel panic - not syncing: sysrq triggered crash/ },
  { what: 'a reboot (sysrq b)', command: 'echo b > /proc/sysrq-trigger', says: /sysrq: Resetting/ },
  // sysrq o queues the power-off: the command waits for it, or it could finish first.
  { what: 'a power-off (sysrq o)', command: 'echo o > /proc/sysrq-trigger; sleep 30', says: /sysrq: Power Off/ },
  {
    what: 'an ext4 error on a filesystem mounted with errors=panic',
    command: MOUNT_AND_LIST,
    says: /Kernel panic - not syncing: EXT4-fs \(device vd.\): panic forced after error/,
  },
];

describe.each(['microvm', 'q35'] as const)('on %s', (machine) => {
  it.each(DEATHS)(
    '$what ends the running command with EGUESTDIED and the console lines',
    async ({ command, says }) => {
      const vm = await boot({ cacheDir: SHARED_CACHE, machine, disks: [{ path: image, format: 'raw' }] });
      try {
        const t0 = performance.now();
        const err = await vm.exec(['sh', '-c', command]).then(
          () => new Error('the command finished') as Error & { consoleTail?: string[] },
          (e: unknown) => e as Error & { consoleTail?: string[] },
        );
        const ms = performance.now() - t0;
        expect(err).toMatchObject({ code: 'EGUESTDIED' });
        expect(err.consoleTail?.length).toBeGreaterThan(0);
        // The line that says how it died is in the message, however long the panic's trace.
        expect(err.message).toMatch(says);
        // Seconds, not the boot deadline (20 s) nor forever; generous for a busy host.
        expect(ms).toBeLessThan(15_000);
        expect(alive(vm.pid)).toBe(false);
        // The VM stays dead for later requests, and says so at once.
        await expect(vm.exec(['true'])).rejects.toMatchObject({ code: 'EGUESTDIED' });
        await expect(vm.readFile('/etc/hostname')).rejects.toMatchObject({ code: 'EGUESTDIED' });
      } finally {
        await vm.close();
      }
      expect(sha256(image)).toBe(imageHash);
    },
    40_000,
  );

  it('a guest that dies while booting ends the boot with its console lines', async () => {
    const appliance = await buildAppliance({ cacheDir: SHARED_CACHE });
    const t0 = performance.now();
    // PID 1 exits at once after the snapshot point: "Attempted to kill init", in a resumed guest.
    const err = await launch({
      kernel: appliance.kernel,
      kernelSha256: appliance.manifest.kernel.sha256,
      initrd: appliance.initrd,
      root: appliance.root,
      machine,
      cacheDir: SHARED_CACHE,
      cmdline: [param('root', ROOT_SERIAL), param('init', '/bin/true')],
      snapshot: true,
      ready: async (ctx) => AgentClient.connect(await ctx.channel),
    }).then(
      () => new Error('the boot came up') as Error & { consoleTail?: string[] },
      (e: unknown) => e as Error & { consoleTail?: string[] },
    );
    expect(err).toMatchObject({ code: 'EBOOTFAILED' });
    // The kernel's last words name why, however long the trace after them that fills the console tail.
    expect(err.message.split('\n')[0]).toMatch(/before it was ready .*: Kernel panic - not syncing: Attempted to kill init/);
    // Not the boot deadline (20 s), nor its retry; the first use of this shape saves its snapshot first.
    expect(performance.now() - t0).toBeLessThan(15_000);
  }, 60_000);

  it('the CLI exits 125 with one line when the guest panics, and leaves no qemu', async () => {
    // The VM's work folder (its sockets are on qemu's command line) goes under our own TMPDIR.
    const own = mkdtempSync(join(tmp, 'cli-'));
    const child = spawn(process.execPath, [CLI, 'boot', '--cache-dir', SHARED_CACHE, '--machine', machine, '--disk', image, '--', 'sh', '-c', MOUNT_AND_LIST], {
      env: { ...process.env, TMPDIR: own },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    // A hung CLI fails the test instead of outliving it (its qemu dies with it: pdeathsig).
    const hung = setTimeout(() => child.kill('SIGKILL'), 30_000);
    const status = await new Promise<number | null>((done) => child.once('close', (code) => done(code)));
    clearTimeout(hung);
    expect(stderr.trim().split('\n')).toHaveLength(1);
    expect(stderr).toMatch(/^appliance: .*died/);
    expect(status).toBe(125);
    expect(processesNaming(own)).toEqual([]);
    expect(sha256(image)).toBe(imageHash);
  }, 40_000);
});
