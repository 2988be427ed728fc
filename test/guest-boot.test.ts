// The init and the agent in a real guest (qemu under TCG): the initramfs's init finds the
// root disk by serial, switches to it, hands over to the agent, which serves the channel;
// and a missing root disk ends in one FATAL line and a powered-off VM, not a hang.
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkext2 } from '../src/appliance/mkext2.js';
import { buildGuestPrograms } from '../src/guest/compile.js';
import { findKernel, type KernelInfo } from '../src/kernel/find.js';
import { buildInitrd } from '../src/appliance/initrd.js';
import { AgentClient } from '../src/agent/agent-client.js';

const tmp = mkdtempSync(join(tmpdir(), 'appliance-init-boot-'));
let kernel: KernelInfo;
const initrd = join(tmp, 'initrd');
const rootImg = join(tmp, 'root.ext2');
const diskImg = join(tmp, 'disk0.img');

/** A root with the agent, dash and a few coreutils, and the mount points the init needs. */
function makeRoot(agent: string): Promise<unknown> {
  const tree = join(tmp, 'tree');
  for (const d of ['proc', 'sys', 'dev', 'tmp', 'run', 'var/tmp', 'root', 'usr/libexec/appliance', 'bin', 'usr/bin']) {
    mkdirSync(join(tree, d), { recursive: true });
  }
  copyFileSync(agent, join(tree, 'usr/libexec/appliance/agent'));
  chmodSync(join(tree, 'usr/libexec/appliance/agent'), 0o755);
  const programs = ['/bin/sh', '/usr/bin/cat', '/usr/bin/readlink'];
  const libs = new Set<string>();
  for (const p of programs) {
    copyFileSync(p, join(tree, p));
    for (const m of execFileSync('ldd', [p], { encoding: 'utf8' }).matchAll(/(\/\S+) \(0x/g)) libs.add(m[1]!);
  }
  for (const lib of libs) {
    mkdirSync(join(tree, dirname(lib)), { recursive: true });
    copyFileSync(lib, join(tree, lib));
  }
  return mkext2(tree, rootImg);
}

interface Boot {
  console: () => string;
  exit: Promise<number | null>;
  connection: Promise<Socket>;
  server: Server;
  kill: () => void;
}

function boot(cmdline: string): Boot {
  const sock = join(tmp, `ch${Math.random().toString(36).slice(2)}.sock`);
  const server = createServer().listen(sock);
  const connection = once(server, 'connection').then(([s]) => s as Socket);
  let out = '';
  const qemu = spawn(
    'qemu-system-x86_64',
    [
      ...['-M', 'pc', '-accel', 'tcg', '-m', '256', '-nodefaults', '-display', 'none', '-serial', 'stdio', '-no-reboot'],
      ...['-kernel', kernel.path, '-initrd', initrd],
      ...['-append', `console=ttyS0 quiet panic=-1 ${cmdline}`],
      ...['-drive', `file=${rootImg},if=none,id=root,format=raw,readonly=on`, '-device', 'virtio-blk-pci,drive=root,serial=appliance-root'],
      ...['-drive', `file=${diskImg},if=none,id=d0,format=raw`, '-device', 'virtio-blk-pci,drive=d0,serial=disk0'],
      ...['-device', 'virtio-serial-pci', '-chardev', `socket,id=ch,path=${sock}`],
      ...['-device', 'virtserialport,chardev=ch,name=org.appliance.agent'],
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  qemu.stdout.on('data', (c: Buffer) => (out += c.toString('latin1')));
  qemu.stderr.on('data', (c: Buffer) => (out += c.toString('latin1')));
  // A watchdog: a guest that hangs must fail the test, not stall the suite.
  const watchdog = setTimeout(() => qemu.kill('SIGKILL'), 90_000);
  const exit = once(qemu, 'exit').then(([code]) => {
    clearTimeout(watchdog);
    server.close();
    return code as number | null;
  });
  return { console: () => out, exit, connection, server, kill: () => qemu.kill('SIGKILL') };
}

beforeAll(async () => {
  const bins = await buildGuestPrograms({ cacheDir: join(tmp, 'cache') });
  kernel = await findKernel();
  await buildInitrd({ kernel, init: bins.init, output: initrd });
  await makeRoot(bins.agent);
  writeFileSync(diskImg, Buffer.alloc(1024 * 1024));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('init and agent in qemu', () => {
  it('boots to the agent: root by serial, read-only, tmpfs, by-id links, then powers off', async () => {
    const vm = boot('appliance.root=appliance-root appliance.init=/usr/libexec/appliance/agent appliance.timing=1');
    try {
      const client = await AgentClient.connect(await vm.connection);
      expect(client.hello.pid1).toBe(true);
      expect(client.hello.initMs).toBeGreaterThan(0);
      expect(client.hello.bootMs).toBeGreaterThanOrEqual(client.hello.initMs);
      const script = [
        'for s in disk0 appliance-root; do l=$(readlink /dev/disk/by-id/virtio-$s); echo "$(cat /sys/block/${l##*/}/serial)"; done',
        'cat /proc/mounts',
        'echo written > /tmp/t && cat /tmp/t',
        'echo $$ $PATH $HOME',
      ].join('; ');
      const res = await client.exec(['sh', '-c', script]);
      expect(res.stderr.toString()).toBe('');
      const lines = res.stdout.toString().split('\n');
      expect(lines.slice(0, 2)).toEqual(['disk0', 'appliance-root']);
      const mounts = lines.filter((l) => /^\S+ \S+ \S+ /.test(l)).map((l) => l.split(' ').slice(1, 4));
      expect(mounts).toContainEqual(['/', 'ext2', expect.stringMatching(/^ro,/)]);
      for (const dir of ['/tmp', '/run', '/var/tmp', '/root', '/dev/shm']) {
        expect(mounts).toContainEqual([dir, 'tmpfs', expect.stringMatching(/^rw,/)]);
      }
      for (const [dir, type] of [
        ['/proc', 'proc'],
        ['/sys', 'sysfs'],
        ['/dev', 'devtmpfs'],
        ['/dev/pts', 'devpts'],
      ]) {
        expect(mounts).toContainEqual([dir, type, expect.any(String)]);
      }
      expect(lines).toContain('written');
      expect(lines.some((l) => /^\d+ \/usr\/sbin:\/usr\/bin:\/sbin:\/bin \/root$/.test(l))).toBe(true);
      await client.poweroff();
      expect(await vm.exit).toBe(0);
      const marks = vm
        .console()
        .split(/\r?\n/)
        .filter((l) => l.startsWith('appliance-'));
      for (const step of ['init started', 'modules loaded', 'root disk found', 'root mounted, exec', 'agent ready']) {
        expect(marks.some((l) => l.endsWith(step))).toBe(true);
      }
      expect(vm.console()).not.toMatch(/FATAL|Kernel panic/);
    } finally {
      vm.kill();
    }
  });

  it('powers off with one FATAL line naming the disks it saw when the root disk never comes', async () => {
    const vm = boot('appliance.root=no-such-serial appliance.rootwait=1');
    try {
      expect(await vm.exit).toBe(0);
      const fatal = vm
        .console()
        .split(/\r?\n/)
        .filter((l) => l.includes('FATAL'));
      expect(fatal).toHaveLength(1);
      expect(fatal[0]).toMatch(/^appliance-init: FATAL: root disk no-such-serial did not appear within 1 s; block devices seen: /);
      expect(fatal[0]).toContain('(serial appliance-root)');
      expect(fatal[0]).toContain('(serial disk0)');
      expect(vm.console()).not.toMatch(/Kernel panic/);
    } finally {
      vm.kill();
    }
  });
});
