// boot() and the `appliance boot` CLI against real qemu: the default appliance built
// into a fresh cache, booted once with --accel auto (on a host whose KVM hangs, as the
// reference machine's does, that must end on TCG with no help), and reused by most tests.
import { execFileSync, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkext2 } from '../src/appliance/mkext2.js';
import { INSPECT_PATH } from '../src/guest/contract.js';
import type { ExecOptions, ExecResult } from '../src/agent/index.js';
import { Helper } from '../src/inspect/helper.js';
import { boot, type Vm } from '../src/vm/vm.js';
import { alive } from './helpers/proc.js';

const tmp = mkdtempSync(join(tmpdir(), 'appliance-vm-test-'));
const cacheDir = join(tmp, 'cache');
const CLI = resolve('dist/src/bin.cjs');
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
let vm: Vm;
let disk: string;
let diskHash: string;

beforeAll(async () => {
  const tree = join(tmp, 'disk-tree');
  mkdirSync(join(tree, 'etc'), { recursive: true });
  writeFileSync(join(tree, 'etc/motd'), 'hello from a user disk\n');
  writeFileSync(join(tree, 'blob'), randomBytes(200_000));
  disk = join(tmp, 'user.img');
  await mkext2(tree, disk);
  diskHash = sha(readFileSync(disk));
  // A path alone is { path }: raw, its header naming no other format.
  vm = await boot({ cacheDir, accel: 'auto', disks: [disk] });
}, 240_000);

afterAll(async () => {
  await vm?.close();
  rmSync(tmp, { recursive: true, force: true });
});

describe('one booted appliance', () => {
  it('came up under --accel auto with no user action, and says which accelerator ran', () => {
    expect(['kvm', 'tcg']).toContain(vm.accel);
    expect(vm.attempts.at(-1)).toMatchObject({ outcome: 'ready', accel: { accel: vm.accel } });
    expect(vm.timings.readyMs).toBeGreaterThan(0);
    // A fresh cache: this boot saved the snapshot of its shape, then resumed it.
    expect(vm.timings).toMatchObject({ snapshot: 'created', kernelMs: 0, restoreMs: expect.any(Number) });
    expect(vm.timings.initMs).toBeGreaterThan(0);
  });

  it('returns exit codes 0, 1, 7 and 255', async () => {
    for (const code of [0, 1, 7, 255]) {
      const r = await vm.exec(['sh', '-c', `exit ${code}`]);
      expect(r).toMatchObject({ exitCode: code, signal: null });
    }
  });

  it('reports death by a signal', async () => {
    const r = await vm.exec(['sh', '-c', 'kill -TERM $$']);
    expect(r).toMatchObject({ exitCode: null, signal: 'SIGTERM' });
    const k = await vm.exec(['sh', '-c', 'kill -9 $$']);
    expect(k.signal).toBe('SIGKILL');
  });

  it('brings 10 MB of stdout and 1 MB of stderr back intact and separate', async () => {
    const script = 'head -c 10485760 /dev/urandom > /tmp/out; head -c 1048576 /dev/urandom > /tmp/err; ' + '{ cat /tmp/out & cat /tmp/err >&2; wait; }';
    const r = await vm.exec(['sh', '-c', script]);
    expect(r.exitCode).toBe(0);
    expect(r.stdout.length).toBe(10485760);
    expect(r.stderr.length).toBe(1048576);
    const sums = (await vm.exec(['sha256sum', '/tmp/out', '/tmp/err'])).stdout.toString().split('\n');
    expect(sums[0]!.split(' ')[0]).toBe(sha(r.stdout));
    expect(sums[1]!.split(' ')[0]).toBe(sha(r.stderr));
  });

  it('passes stdin to the command', async () => {
    const input = randomBytes(3 << 20);
    const r = await vm.exec(['sha256sum'], { input });
    expect(r.stdout.toString().split(' ')[0]).toBe(sha(input));
  });

  it('runs 20 commands in a row and several at once', async () => {
    for (let i = 0; i < 20; i++) {
      const r = await vm.exec(['echo', `n${i}`]);
      expect(r.stdout.toString()).toBe(`n${i}\n`);
    }
    const all = await Promise.all(Array.from({ length: 6 }, (_, i) => vm.exec(['sh', '-c', `sleep 0.3; echo c${i}; echo e${i} >&2`])));
    all.forEach((r, i) => {
      expect(r.stdout.toString()).toBe(`c${i}\n`);
      expect(r.stderr.toString()).toBe(`e${i}\n`);
    });
  });

  it('moves files in and out', async () => {
    const data = randomBytes(1 << 20);
    await vm.writeFile('/tmp/in.bin', data, 0o600);
    expect((await vm.exec(['stat', '-c', '%s %a', '/tmp/in.bin'])).stdout.toString()).toBe(`${data.length} 600\n`);
    expect(sha(await vm.readFile('/tmp/in.bin'))).toBe(sha(data));
    await expect(vm.readFile('/no/such/file')).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('reports a missing program as 127, like a shell', async () => {
    const r = await vm.exec(['no-such-program']);
    expect(r.exitCode).toBe(127);
    expect(r.stderr.toString()).toContain('no-such-program');
  });

  it('refuses a command that is not a list of strings (what JavaScript can pass) by saying how to write it', async () => {
    for (const argv of ['ls -l', [1], ['ls', null], undefined]) {
      await expect(vm.exec(argv as never)).rejects.toMatchObject({
        code: 'EINVAL',
        message: "exec takes the command as a list of strings (or Buffers): ['ls', '-l'], or ['sh', '-c', 'a | b'] for a shell line",
      });
    }
    const s = vm.execStream('ls' as never);
    await expect(s.result).rejects.toMatchObject({ code: 'EINVAL' });
    expect((await vm.exec(['true'])).exitCode).toBe(0);
  });

  it('execStream: a stdout destroyed before its end is a closed pipe (SIGPIPE); a result never awaited does not end the process', async () => {
    const s = vm.execStream(['sh', '-c', 'while :; do echo yyyyyyyyyyyyyyyy; done']);
    s.stderr.resume();
    await new Promise((r) => s.stdout.once('data', r));
    s.stdout.destroy();
    await expect(s.result).resolves.toMatchObject({ exitCode: null, signal: 'SIGPIPE' });
    // A script that closes its VM with a stream still running and never awaits its result.
    const script = join(tmp, 'unawaited.mjs');
    const lib = resolve('dist/src/appliance.js');
    writeFileSync(
      script,
      `import { boot } from '${lib}';\nconst vm = await boot({ cacheDir: ${JSON.stringify(cacheDir)} });\n` +
        `const s = vm.execStream(['sleep', '30']);\ns.stdout.resume();\ns.stderr.resume();\nawait vm.close();\n` +
        `await new Promise((r) => setTimeout(r, 300));\nconsole.log('still here');\n`,
    );
    const out = execFileSync(process.execPath, [script], { encoding: 'utf8', timeout: 120_000 });
    expect(out).toBe('still here\n');
  });

  it('execStream: an output nobody reads yet holds up its command only; other commands and reads answer meanwhile', async () => {
    await vm.writeFile('/tmp/beside', 'beside');
    const held = vm.execStream(['sh', '-c', 'head -c 16000000 /dev/urandom >/tmp/held; sha256sum </tmp/held >&2; cat /tmp/held']);
    await new Promise((r) => setTimeout(r, 500));
    const t0 = performance.now();
    expect((await vm.exec(['echo', 'beside'])).stdout.toString()).toBe('beside\n');
    expect((await vm.readFile('/tmp/beside')).toString()).toBe('beside');
    expect(performance.now() - t0).toBeLessThan(20_000);
    const chunks: Buffer[] = [];
    const err: Buffer[] = [];
    held.stderr.on('data', (c: Buffer) => err.push(c));
    for await (const c of held.stdout) chunks.push(c as Buffer);
    expect((await held.result).exitCode).toBe(0);
    const got = Buffer.concat(chunks);
    expect(got.length).toBe(16_000_000);
    expect(`${sha(got)}  -\n`).toBe(Buffer.concat(err).toString());
  });

  it('refuses wrong options from JavaScript with EINVAL naming each, before anything is built or opened', async () => {
    const empty = join(tmp, 'never-built');
    for (const [opts, message] of [
      [{ machine: 'zzz' }, `machine "zzz": give one of 'auto', 'microvm', 'q35', 'pc'`],
      [{ accel: 'hvf' }, `accel "hvf": give one of 'auto', 'kvm', 'tcg'`],
      [{ timeoutMs: -5 }, 'timeoutMs -5: give a number from 1 to 2147483647'],
      [{ timeoutMs: 0 }, 'timeoutMs 0: give a number from 1 to 2147483647'],
      [{ bootTimeoutMs: -1 }, 'bootTimeoutMs -1: give a number from 1 to 3600000'],
      [{ memoryMb: '512' }, 'memoryMb "512": give a whole number from 128 to 1048576'],
      [{ signal: 'x' }, "signal: give an AbortSignal (an AbortController's .signal)"],
    ] as const)
      await expect(boot({ cacheDir: empty, ...(opts as object) })).rejects.toMatchObject({ code: 'EINVAL', message });
    expect(() => readdirSync(empty)).toThrow(/ENOENT/);
    for (const mode of [-1, 0o10000, 1.5, '644'])
      await expect(vm.writeFile('/tmp/m', 'z', mode as number)).rejects.toMatchObject({
        code: 'EINVAL',
        message: expect.stringMatching(/^mode .*: give permission bits from 0 to 0o7777/),
      });
    await expect(vm.writeFile('/tmp/n', 42 as never)).rejects.toMatchObject({
      code: 'EINVAL',
      message: expect.stringContaining('give a string, a Buffer or a readable stream'),
    });
  });

  it('kills a command at its timeout', async () => {
    await expect(vm.exec(['sleep', '30'], { timeoutMs: 500 })).rejects.toMatchObject({ code: 'ETIMEDOUT' });
    expect((await vm.exec(['true'])).exitCode).toBe(0);
  });

  it("loads its modules by name and alias, and names a module it does not hold instead of kmod's 'Unknown symbol'", async () => {
    const ok = await vm.exec(['sh', '-c', 'modprobe xts && modprobe crypto-ecb && grep -E "^(xts|ecb) " /proc/modules | cut -d" " -f1 | sort']);
    expect({ exitCode: ok.exitCode, stderr: ok.stderr.toString() }).toEqual({ exitCode: 0, stderr: '' });
    expect(ok.stdout.toString()).toBe('ecb\nxts\n');
    // nbd is in the kernel's modules.dep but not in the appliance
    expect(readFileSync(`/lib/modules/${vm.appliance.kernelVersion}/modules.dep`, 'utf8')).toMatch(/\/nbd\.ko/);
    const missing = await vm.exec(['modprobe', 'nbd']);
    expect(missing.exitCode).toBe(1);
    expect(missing.stderr.toString()).toMatch(/Module nbd not found in directory \/lib\/modules\//);
  });

  it('loads the modules it is asked to before the snapshot point, and leaves out (and says) those its root does not hold', async () => {
    const console: string[] = [];
    const log: string[] = [];
    // nbd: in the kernel, not in the appliance; f2fs: not in Debian's cloud kernel at all (in others, a module the appliance holds).
    const holdsF2fs = vm.appliance.manifest.root.modules.includes('f2fs');
    await using other = await boot({ cacheDir, modules: ['xfs', 'nbd', 'f2fs', 'squashfs'], onConsole: (l) => console.push(l), log: (m) => log.push(m) });
    // A shape of its own: its snapshot was made with these modules loaded, and no modprobe failed there.
    expect(other.timings.snapshot).toBe('created');
    expect(console.filter((l) => /modprobe|preloading/.test(l))).toEqual([]);
    expect(log).toContain(`modules not loaded before the snapshot point: nbd${holdsF2fs ? '' : ' f2fs'} (built into the kernel, or not in it)`);
    const loaded = (await other.exec(['cut', '-d', ' ', '-f1', '/proc/modules'])).stdout.toString().split('\n');
    expect(loaded).toEqual(expect.arrayContaining(['xfs', 'squashfs']));
    expect(loaded).not.toContain('nbd');
  });

  it('shows the user disk read-only under its stable name and never writes it', async () => {
    expect(vm.disks).toEqual([{ path: disk, serial: 'disk0', guestPath: '/dev/disk/by-id/virtio-disk0' }]);
    const r = await vm.exec([
      'sh',
      '-c',
      'mkdir -p /tmp/m && mount -o ro /dev/disk/by-id/virtio-disk0 /tmp/m && cat /tmp/m/etc/motd && sha256sum /tmp/m/blob | cut -c1-64',
    ]);
    expect(r.stderr.toString()).toBe('');
    const [motd, blobHash] = r.stdout.toString().split('\n');
    expect(motd).toBe('hello from a user disk');
    expect(blobHash).toBe(sha(readFileSync(join(tmp, 'disk-tree/blob'))));
    const w = await vm.exec(['sh', '-c', 'dd if=/dev/zero of=/dev/disk/by-id/virtio-disk0 bs=4096 count=1 conv=fsync']);
    expect(w.exitCode).not.toBe(0);
    expect(w.stderr.toString()).toMatch(/Read-only|Operation not permitted/);
    await vm.exec(['umount', '/tmp/m']);
    expect(sha(readFileSync(disk))).toBe(diskHash);
  });

  it('close() keeps what the guest wrote to read-write disks and never synced: a file on a mounted filesystem, and blocks of a qcow2', async () => {
    const raw = join(tmp, 'rw.img');
    const qcow2 = join(tmp, 'rw.qcow2');
    mkdirSync(join(tmp, 'rw-tree'));
    await mkext2(join(tmp, 'rw-tree'), raw, { size: 8 << 20 });
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', qcow2, '8M']);
    const payload = randomBytes(3000).toString('hex'); // 6000 bytes: two qcow2 clusters' worth of sectors, and a file's blocks
    const rw = await boot({
      cacheDir,
      disks: [
        { path: raw, format: 'raw', readonly: false },
        { path: qcow2, format: 'qcow2', readonly: false },
      ],
    });
    let r: ExecResult;
    try {
      // No sync, no umount, no conv=fsync: what is written sits in the guest's page cache when close() is called.
      r = await rw.exec([
        'sh',
        '-c',
        `mkdir -p /tmp/m && mount ${rw.disks[0].guestPath} /tmp/m && printf %s "$1" > /tmp/m/kept && printf %s "$1" | dd of=${rw.disks[1].guestPath} bs=512 seek=300 2>/dev/null`,
        'sh',
        payload,
      ]);
    } finally {
      await rw.close();
    }
    expect(r).toMatchObject({ exitCode: 0 });
    expect(execFileSync('debugfs', ['-R', 'cat /kept', raw], { stdio: ['ignore', 'pipe', 'ignore'] }).toString()).toBe(payload);
    // qemu flushed its qcow2 metadata as it exited: the image checks clean and holds the blocks.
    execFileSync('qemu-img', ['check', '-q', qcow2]);
    execFileSync('qemu-img', ['convert', '-f', 'qcow2', '-O', 'raw', qcow2, join(tmp, 'rw-qcow2.raw')]);
    expect(
      readFileSync(join(tmp, 'rw-qcow2.raw'))
        .subarray(300 * 512, 300 * 512 + payload.length)
        .toString(),
    ).toBe(payload);
  });
});

describe("the inspect helper's commands, run by the server the agent keeps in the snapshot", () => {
  // Any env makes the agent fork and exec the helper instead: the reference behaviour.
  const FORKED = { env: { APPLIANCE_TEST_FORK: '1' } };
  const vms: Vm[] = [];
  const fresh = async () => {
    const v = await boot({ cacheDir, disks: [{ path: disk, format: 'raw' }] });
    vms.push(v);
    return v;
  };
  afterAll(async () => {
    for (const v of vms) await v.close();
  });
  /** The pid of `inspect serve` in `v`, if it runs. */
  const serverPid = async (v: Vm) =>
    (
      await v.exec(['sh', '-c', `for p in /proc/[0-9]*; do [ "$(tr '\\0' ' ' < $p/cmdline)" = "${INSPECT_PATH} serve " ] && echo \${p#/proc/}; done; true`])
    ).stdout
      .toString()
      .trim();
  /** The pid of the process that ran a helper command: it reads its own /proc/self/stat. */
  const runnerPid = async (v: Vm, opts?: ExecOptions, extra: string[] = []) => {
    const r = await v.exec([INSPECT_PATH, 'read', '/proc/self/stat', '0', '64', ...extra], opts);
    expect(r.exitCode).toBe(0);
    return r.stdout.subarray(4).toString().split(' ')[0]!;
  };
  const outcome = (r: ExecResult) => ({ exitCode: r.exitCode, signal: r.signal, stdout: r.stdout.toString('hex'), stderr: r.stderr.toString() });

  it('says exactly what a forked helper says, errors included, and keeps no descriptor of theirs', async () => {
    const v = await fresh();
    const server = await serverPid(v);
    expect(server).toMatch(/^\d+$/);
    expect(await runnerPid(v)).toBe(server);
    expect(await runnerPid(v, FORKED)).not.toBe(server);
    const cases = [
      ['devices'],
      ['read', '/dev/vdb', '0', '4096', '/dev/vdb', '1000', '24', '/no/such/device', '0', '10'],
      ['statfs', '/', '/no/such/folder'],
      ['walk', '/', '/etc', 'xh', '1'],
      ['cat', '/', '/etc/passwd'],
      ['cat', '/', '/no/such/file'],
      ['cat', '/', '/etc'],
      ['read-files', '100', '/', '2', '/etc/passwd', '/nope'],
      ['no-such-command'],
    ];
    for (const args of cases) {
      const [served, forked] = [await v.exec([INSPECT_PATH, ...args]), await v.exec([INSPECT_PATH, ...args], FORKED)];
      expect(outcome(served), args.join(' ')).toEqual(outcome(forked));
    }
    expect(await serverPid(v)).toBe(server);
    const fds = await v.exec(['ls', `/proc/${server}/fd`]);
    expect(fds.stdout.toString().trim().split('\n').sort()).toEqual(['0', '1', '2', '3']);
    // stat reads its one record to its end: neither a found nor a missing path ends the server.
    const helper = new Helper(v);
    expect((await helper.stat('/', '/etc')).type).toBe('dir');
    await expect(helper.stat('/', '/no/such')).rejects.toMatchObject({ code: 'ENOENT' });
    expect((await helper.stat('/', INSPECT_PATH, { hash: true })).sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(await serverPid(v)).toBe(server);
    // A command line of 10,500 arguments (~56 KB) is served whole.
    const many = await v.exec([
      INSPECT_PATH,
      'read',
      ...Array.from({ length: 3500 }, (_, i) => ['/dev/vdb', String(i), '1']).flat(),
      '/proc/self/stat',
      '0',
      '64',
    ]);
    expect(many.stdout.length).toBe(3500 * 5 + 4 + 64);
    expect(
      many.stdout
        .subarray(3500 * 5 + 4)
        .toString()
        .split(' ')[0],
    ).toBe(server);
  }, 120_000);

  it('runs commands several at once (one in the server, the others forked) and each says its own', async () => {
    const v = await fresh();
    const results = await Promise.all(Array.from({ length: 8 }, (_, i) => v.exec([INSPECT_PATH, 'read', '/dev/vdb', String(i * 512), '512'])));
    const device = await v.exec(['dd', 'if=/dev/vdb', 'bs=512', 'count=8', 'status=none']);
    results.forEach((r, i) => {
      expect(r.exitCode).toBe(0);
      expect(r.stdout.readUInt32LE(0)).toBe(512);
      expect(r.stdout.subarray(4)).toEqual(device.stdout.subarray(i * 512, (i + 1) * 512));
    });
  }, 120_000);

  it('ends with a command that exits or is killed, like the command would; later commands fork', async () => {
    for (const end of ['exit', 'kill'] as const) {
      const v = await fresh();
      const server = await serverPid(v);
      if (end === 'exit') {
        // fatal() in the helper: the status a forked helper has, and the server is gone.
        const args = [INSPECT_PATH, 'walk', '/', '/'];
        expect(outcome(await v.exec(args))).toEqual(outcome(await v.exec(args, FORKED)));
        expect((await v.exec(args)).exitCode).toBe(1);
      } else {
        // Killed in the middle of a 64 MiB cat (after its first MiB).
        await v.exec(['dd', 'if=/dev/zero', 'of=/tmp/big', 'bs=1M', 'count=64', 'status=none']);
        const s = v.execStream([INSPECT_PATH, 'cat', '/', '/tmp/big']);
        let got = 0;
        s.stdout.on('data', (c: Buffer) => {
          if (got < 1 << 20 && (got += c.length) >= 1 << 20) s.kill('SIGKILL');
        });
        expect(await s.result).toMatchObject({ exitCode: null, signal: 'SIGKILL' });
      }
      expect(await serverPid(v)).toBe('');
      expect(await runnerPid(v)).not.toBe(server);
      expect((await v.exec([INSPECT_PATH, 'devices'])).exitCode).toBe(0);
    }
  }, 120_000);
});

describe('the CLI', () => {
  const env = { ...process.env, APPLIANCE_CACHE_DIR: cacheDir };
  const cli = (args: string[], input?: string) => {
    try {
      return {
        status: 0,
        stdout: execFileSync(process.execPath, [CLI, ...args], { env, input, encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] }),
        stderr: '',
      };
    } catch (err) {
      const e = err as { status: number; stdout: string; stderr: string };
      return { status: e.status, stdout: e.stdout, stderr: e.stderr };
    }
  };

  it('streams output, exits with the command status, 128+N for a signal, and reads stdin with -i', () => {
    const r = cli(['boot', '--', 'sh', '-c', 'echo out; echo err >&2; exit 7']);
    expect(r).toMatchObject({ status: 7, stdout: 'out\n' });
    expect(r.stderr).toBe('err\n');
    expect(cli(['boot', '--', 'sh', '-c', 'kill -9 $$']).status).toBe(137);
    expect(cli(['boot', '-i', '--', 'tr', 'a-z', 'A-Z'], 'piped in\n')).toMatchObject({ status: 0, stdout: 'PIPED IN\n' });
  });

  it('prints JSON with --json, and a boot failure has its own exit code and a one-line reason', () => {
    const j = JSON.parse(cli(['boot', '--json', '--', 'uname', '-r']).stdout);
    expect(j).toMatchObject({ exitCode: 0, signal: null, stderr: '', boot: { accel: expect.any(String) } });
    // The guest runs the appliance's kernel (not necessarily the one this host runs).
    expect(j.stdout).toBe(`${vm.appliance.kernelVersion}\n`);
    const bad = cli(['boot', '--qemu', '/bin/false', '--', 'true']);
    expect(bad.status).toBe(125);
    expect(bad.stderr.trim().split('\n')).toHaveLength(1);
    expect(bad.stderr).toMatch(/^appliance: .*\/bin\/false/);
    const missing = cli(['boot', '--disk', join(tmp, 'missing.img'), '--', 'true']);
    expect(missing.status).toBe(125);
    expect(missing.stderr).toContain('missing.img');
  });

  it('gives a shell on a terminal without a command, and exits with its status', () => {
    // `script` gives the CLI a real pseudo-terminal; lines are typed after the boot.
    const typed = "sleep 5; printf 'echo got $((6*7)); test -t 0 && echo on-a-tty\\n'; sleep 1; printf 'exit 3\\n'; sleep 2";
    const out = execFileSync('sh', ['-c', `(${typed}) | script -qfec "${process.execPath} ${CLI} boot" /dev/null; echo "status=$?"`], {
      env,
      encoding: 'utf8',
      timeout: 60_000,
    }).replace(/\r/g, '');
    expect(out).toContain('got 42\n');
    expect(out).toContain('\non-a-tty\n');
    expect(out.trim().split('\n').at(-1)).toBe('status=3');
  });

  it('ends a command whose output nobody reads any more (`| head -1`) with SIGPIPE, not an EPIPE stack trace', () => {
    const out = execFileSync('bash', ['-c', `${process.execPath} ${CLI} boot -- sh -c 'while :; do echo y; done' | head -1; echo "status=\${PIPESTATUS[0]}"`], {
      env,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 60_000,
    });
    expect(out).toBe('y\nstatus=141\n');
  });

  it('caps --json, which holds the output in memory, with one clear line; without --json any size streams', () => {
    const big = cli(['boot', '--json', '--', 'head', '-c', '70000000', '/dev/zero']);
    expect(big.status).toBe(1);
    expect(big.stdout).toBe('');
    expect(big.stderr.trim().split('\n')).toHaveLength(1);
    expect(big.stderr).toMatch(/more than 67108864 bytes to stdout .*--json holds the output in memory; without --json it streams/);
    const streamed = execFileSync('sh', ['-c', `${process.execPath} ${CLI} boot -- head -c 70000000 /dev/zero | wc -c`], { env, encoding: 'utf8' });
    expect(streamed.trim()).toBe('70000000');
  });

  it('stops reading stdin once the command is done', () => {
    const t = Date.now();
    const out = execFileSync('sh', ['-c', `${process.execPath} ${CLI} boot -i -- head -c 0 < /dev/zero; echo "status=$?"`], {
      env,
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(out.trim()).toBe('status=0');
    expect(Date.now() - t).toBeLessThan(30_000);
  });

  it('leaves no qemu behind when the Node process is killed', async () => {
    const child = spawn(process.execPath, [CLI, 'boot', '--', 'sleep', '60'], { env, stdio: 'ignore' });
    const qemuPid = await waitFor(() => childQemu(child.pid!), 60_000);
    // Let the guest come up so the kill lands on a running appliance.
    await new Promise((r) => setTimeout(r, 3000));
    child.kill('SIGKILL');
    await waitFor(() => (alive(qemuPid) ? undefined : true), 3000);
  });

  it('leaves no socket folder behind, not even when killed in the middle of a boot', async () => {
    const own = mkdtempSync(join(tmp, 'tmpdir-'));
    const withTmp = { ...env, TMPDIR: own };
    // Killed while it boots: its folder of sockets stays, named by its pid…
    const child = spawn(process.execPath, [CLI, 'boot', '--no-snapshot', '--', 'true'], { env: withTmp, stdio: 'ignore' });
    // Its qemu booting (not the accelerator's probe, which runs before the folder is made).
    await waitFor(() => (readdirSync(own).length > 0 ? childQemu(child.pid!) : undefined), 60_000);
    const reaped = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await reaped;
    expect(readdirSync(own)).toEqual([expect.stringMatching(new RegExp(`^appliance-vm-${child.pid}-`))]);
    // …until the next launch sweeps it; a booted VM keeps none while it runs.
    execFileSync(process.execPath, [CLI, 'boot', '--', 'sh', '-c', `ls ${own} 2>/dev/null; true`], { env: withTmp });
    expect(readdirSync(own)).toEqual([]);
  });
});

function childQemu(ppid: number): number | undefined {
  for (const pid of execFileSync('ps', ['-o', 'pid=', '--ppid', String(ppid)], { encoding: 'utf8' })
    .trim()
    .split(/\s+/)
    .filter(Boolean)) {
    const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    if (cmd.includes('qemu-system')) return Number(pid);
  }
  return undefined;
}

async function waitFor<T>(probe: () => T | undefined, ms: number): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    let v: T | undefined;
    try {
      v = probe();
    } catch {
      v = undefined;
    }
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`condition not met within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
