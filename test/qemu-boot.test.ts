// The launcher against real qemu: boots of the host kernel with a tiny initrd (see
// qemu-fixture.ts) on microvm and q35 under TCG, the boot deadline, the KVM→TCG verdict,
// and qemu dying with its owner.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeAccel, kvmUsable } from '../src/launcher/accel.js';
import { STRETCH_MAX } from '../src/launcher/deadline.js';
import { BootError, launch, type LaunchOptions } from '../src/launcher/launch.js';
import { buildTestInitrd, hostKernel } from './qemu-fixture.js';
import { alive } from './helpers/proc.js';

const tmp = mkdtempSync(join(tmpdir(), 'qemu-boot-'));
const kernel = hostKernel();
let initrd: string;
const root = join(tmp, 'root.img');
const qcow = join(tmp, 'user.qcow2');

beforeAll(() => {
  initrd = buildTestInitrd(tmp, kernel);
  writeFileSync(root, Buffer.alloc(1 << 20));
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', qcow, '8M']);
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

interface Hello {
  line: string;
  socket: Socket;
}

/** Ready when the guest's first line arrives on the channel: the test init's HELLO and the disk serials it sees. */
async function hello({ channel }: { channel: Promise<Socket> }): Promise<Hello> {
  const socket = await channel;
  return new Promise((resolve, reject) => {
    let text = '';
    socket.on('data', (c: Buffer) => {
      text += c.toString();
      if (text.includes('\n')) resolve({ line: text.trim(), socket });
    });
    socket.once('close', () => reject(new Error('channel closed before HELLO')));
  });
}

function options(extra: Partial<LaunchOptions<Hello>> = {}): LaunchOptions<Hello> {
  return {
    kernel: kernel.path,
    initrd,
    root,
    disks: [{ path: qcow, format: 'auto' }],
    cacheDir: join(tmp, 'cache'),
    accel: 'tcg',
    ready: hello,
    ...extra,
  };
}

describe('boots under TCG', () => {
  for (const machine of ['microvm', 'q35'] as const) {
    it(`boots ${machine}, sees the root and user disks, talks on the channel, powers off`, async () => {
      const console: string[] = [];
      const vm = await launch(options({ machine, onConsole: (l) => console.push(l) }));
      expect(vm.machine).toBe(machine);
      expect(vm.accel).toBe('tcg');
      expect(vm.attempts.map((a) => a.outcome)).toEqual(['ready']);
      expect(vm.ready.line.split(' ').sort()).toEqual(['HELLO', 'appliance-root', 'disk0']);
      expect(existsSync(join(tmp, `${machine}.sock`))).toBe(false);
      vm.ready.socket.write('x');
      expect(await vm.exited).toEqual({ code: 0, signal: null });
      expect(console).toContain('test-init: poweroff');
      expect(vm.consoleTail()).toContain('test-init: poweroff');
    });
  }
});

it('catches a boot that never becomes ready, retries it once, and reports the console', async () => {
  const deadline = 3000;
  const t0 = Date.now();
  const err = await launch(options({ machine: 'microvm', cmdline: ['test_hang=1'], bootDeadlineMs: deadline })).catch((e: unknown) => e);
  const elapsed = Date.now() - t0;
  expect(err).toBeInstanceOf(BootError);
  expect(err).toMatchObject({ code: 'EBOOTTIMEOUT' });
  const boot = err as BootError;
  expect(boot.attempts.map((a) => `${a.machine}:${a.outcome}`)).toEqual(['microvm:timeout', 'microvm:timeout']);
  expect(boot.consoleTail).toContain('test-init: start');
  expect(boot.message).toContain('test-init: start');
  // The deadline counts the CPU qemu could have had: a paused guest on a host busy with other workers stretches it.
  expect(elapsed).toBeLessThan(2 * STRETCH_MAX * deadline + 2000);
});

it('a host too busy for a boot to finish within its deadline in wall time: slower, and still ready', async () => {
  const opts = options({ machine: 'microvm', disks: [] });
  await (await launch(opts)).kill(); // the kernel prepared once, as for every later boot
  const t0 = performance.now();
  await (await launch(opts)).kill();
  const alone = performance.now() - t0;
  // Every core busy twice over, each in a session of its own as each qemu is (the scheduler
  // shares the CPUs between sessions): qemu gets about a third of a CPU, and needs about 3 times as long.
  const load = Array.from({ length: 2 * cpus().length }, () => spawn(process.execPath, ['-e', 'for (;;) {}'], { stdio: 'ignore', detached: true }));
  try {
    // Twice the boot alone: the loaded boot takes ~3 times as long (past it in wall time), and
    // the stretch (up to STRETCH_MAX) covers it even while another test worker loads the host
    // too (at 1.5 times, a CI run's busy moment once needed more than STRETCH_MAX allows).
    const deadline = Math.round(2 * alone);
    const t1 = performance.now();
    const vm = await launch({ ...opts, bootDeadlineMs: deadline });
    const loaded = performance.now() - t1;
    await vm.kill();
    expect(vm.attempts.map((a) => a.outcome)).toEqual(['ready']);
    expect(loaded).toBeGreaterThan(deadline); // past the deadline in wall time: without deadline.ts, EBOOTTIMEOUT
  } finally {
    for (const c of load) c.kill('SIGKILL');
  }
});

describe.skipIf(!kvmUsable())('accelerator auto', () => {
  it('settles on what works on this host and goes straight to it the next time', async () => {
    const cacheDir = join(tmp, 'auto-cache');
    const first = await launch(options({ accel: 'auto', cacheDir }));
    first.ready.socket.write('x');
    await first.exited;
    // Whatever the host: the last attempt booted, and any before it were KVM giving up.
    expect(first.attempts.at(-1)!.outcome).toBe('ready');
    for (const a of first.attempts.slice(0, -1)) expect(a.accel.accel).toBe('kvm');

    const second = await launch(options({ accel: 'auto', cacheDir }));
    second.ready.socket.write('x');
    await second.exited;
    expect(second.attempts).toHaveLength(1);
    expect(second.accel).toBe(first.accel);
  });
});

// Every host, KVM or not: a qemu that stays silent under -accel kvm (as a nested KVM that
// hangs after the real-mode stage does), with a stand-in KVM device that opens read-write.
it('falls back from a KVM that shows no sign of life to TCG, and goes straight to TCG the next time', async () => {
  const realQemu = execFileSync('sh', ['-c', 'command -v qemu-system-x86_64'], { encoding: 'utf8' }).trim();
  const qemu = join(tmp, 'qemu-silent-kvm');
  // The silent qemu is `sleep` under a name of this test's own, so that the check below
  // sees only what this test started (not another program's sleep on the same host).
  const silent = join(tmp, 'silent-kvm-qemu');
  symlinkSync(execFileSync('sh', ['-c', 'command -v sleep'], { encoding: 'utf8' }).trim(), silent);
  writeFileSync(qemu, `#!/bin/sh\ncase " $* " in *" -accel kvm "*) exec ${silent} 600;; esac\nexec ${realQemu} "$@"\n`, { mode: 0o755 });
  const kvmDevice = join(tmp, 'kvm');
  writeFileSync(kvmDevice, '');
  const o = () => options({ accel: 'auto', qemu, kvmDevice, signOfLifeMs: 1500, cacheDir: join(tmp, 'silent-kvm-cache') });
  const first = await launch(o());
  first.ready.socket.write('x');
  await first.exited;
  expect(first.attempts.map((a) => `${describeAccel(a.accel)}:${a.outcome}`)).toEqual([
    'kvm (-cpu host):no-sign-of-life',
    'kvm:no-sign-of-life',
    'tcg (-cpu max):ready',
  ]);
  expect(first.accel).toBe('tcg');
  // The silent qemus were killed, not left behind.
  expect(execFileSync('ps', ['-eo', 'args'], { encoding: 'utf8' })).not.toContain(silent);

  const second = await launch(o());
  second.ready.socket.write('x');
  await second.exited;
  expect(second.attempts.map((a) => `${a.accel.accel}:${a.outcome}`)).toEqual(['tcg:ready']);
});

it('a --qemu wrapper that runs qemu as its child (no exec): a boot given up on, or killed, ends at once and leaves no qemu', async () => {
  const realQemu = execFileSync('sh', ['-c', 'command -v qemu-system-x86_64'], { encoding: 'utf8' }).trim();
  const qemu = join(tmp, 'qemu-forking-wrapper');
  writeFileSync(qemu, `#!/bin/sh\n${realQemu} "$@"\necho wrapper done\n`, { mode: 0o755 });
  const qemusOfThisTest = () =>
    execFileSync('ps', ['-eo', 'args'], { encoding: 'utf8' })
      .split('\n')
      .filter((l) => l.includes(initrd) && !l.startsWith('/bin/sh'));

  const t0 = Date.now();
  const err = await launch(options({ qemu, machine: 'microvm', cmdline: ['test_hang=1'], bootDeadlineMs: 3000 })).catch((e: unknown) => e);
  expect(err).toMatchObject({ code: 'EBOOTTIMEOUT' });
  expect(Date.now() - t0).toBeLessThan(2 * STRETCH_MAX * 3000 + 4000);
  expect(qemusOfThisTest()).toEqual([]);

  const vm = await launch(options({ qemu, machine: 'microvm' }));
  expect(vm.attempts.map((a) => a.outcome)).toEqual(['ready']);
  const t1 = Date.now();
  await vm.kill();
  expect(Date.now() - t1).toBeLessThan(2000);
  expect(qemusOfThisTest()).toEqual([]);
});

// accel 'kvm' asked for where KVM cannot run the guest: qemu aborting on an MSR (as with
// -cpu host on a nested KVM), then hanging: the error says how each attempt ended and
// what to use instead, not only that the boot timed out.
it("a KVM that aborts, then hangs: the error says each attempt's end and to use accel 'auto' or 'tcg'", async () => {
  const realQemu = execFileSync('sh', ['-c', 'command -v qemu-system-x86_64'], { encoding: 'utf8' }).trim();
  const qemu = join(tmp, 'qemu-bad-kvm');
  const silent = join(tmp, 'bad-kvm-qemu');
  symlinkSync(execFileSync('sh', ['-c', 'command -v sleep'], { encoding: 'utf8' }).trim(), silent);
  writeFileSync(
    qemu,
    `#!/bin/sh\ncase " $* " in\n  *" -cpu host "*) echo "qemu-system-x86_64: error: failed to set MSR 0x10a to 0x69" >&2; kill -ABRT $$;;\n` +
      `  *" -accel kvm "*) exec ${silent} 600;;\nesac\nexec ${realQemu} "$@"\n`,
    { mode: 0o755 },
  );
  const kvmDevice = join(tmp, 'kvm-bad');
  writeFileSync(kvmDevice, '');
  const err = await launch(options({ accel: 'kvm', qemu, kvmDevice, snapshot: false, bootDeadlineMs: 1500, cacheDir: join(tmp, 'bad-kvm-cache') })).catch(
    (e: Error) => e,
  );
  expect(err).toMatchObject({ code: 'EBOOTTIMEOUT' });
  expect((err as BootError).reason).toMatch(
    /^the appliance did not become ready within 1500 ms of qemu's time \(tried kvm \(-cpu host\)\/\w+: exited \(signal SIGABRT: qemu-system-x86_64: error: failed to set MSR 0x10a to 0x69\)/,
  );
  expect((err as BootError).reason).toMatch(
    /kvm\/\w+: timeout\): KVM did not run the guest here \(nested KVM can hang one\): use accel 'auto' or 'tcg' \(--accel on the command line\), or allow more time \(bootTimeoutMs\)$/,
  );
  expect(execFileSync('ps', ['-eo', 'args'], { encoding: 'utf8' })).not.toContain(silent);
});

it('qemu dies within 2 s when the Node process that launched it is SIGKILLed', async () => {
  const script = join(tmp, 'owner.ts');
  writeFileSync(
    script,
    `import { launch } from ${JSON.stringify(fileURLToPath(new URL('../src/launcher/launch.ts', import.meta.url)))};
const vm = await launch({
  kernel: ${JSON.stringify(kernel.path)}, initrd: ${JSON.stringify(initrd)}, root: ${JSON.stringify(root)},
  cacheDir: ${JSON.stringify(join(tmp, 'cache'))},
  accel: 'tcg', cmdline: ['test_hang=1'], bootDeadlineMs: 60000,
  ready: async ({ channel }) => { await channel; },
});
console.log(JSON.stringify({ node: process.pid, qemu: vm.pid }));
setInterval(() => {}, 1000);
`,
  );
  const owner = spawn(fileURLToPath(new URL('../node_modules/.bin/vite-node', import.meta.url)), [script], { stdio: ['ignore', 'pipe', 'inherit'] });
  const pids = await new Promise<{ node: number; qemu: number }>((ok, fail) => {
    let out = '';
    owner.stdout.on('data', (c: Buffer) => {
      out += c.toString();
      const m = /\{"node":\d+,"qemu":\d+\}/.exec(out);
      if (m) ok(JSON.parse(m[0]) as { node: number; qemu: number });
    });
    owner.once('exit', (code) => fail(new Error(`owner exited (${code}) before launching: ${out}`)));
  });
  expect(pids.node).toBe(owner.pid);
  expect(readFileSync(`/proc/${pids.qemu}/cmdline`, 'latin1')).toContain('qemu-system-x86_64');

  process.kill(pids.node, 'SIGKILL');
  const t0 = Date.now();
  while (alive(pids.qemu) && Date.now() - t0 < 2000) await new Promise((r) => setTimeout(r, 20));
  const survived = alive(pids.qemu);
  if (survived) process.kill(pids.qemu, 'SIGKILL');
  expect(survived).toBe(false);
});
