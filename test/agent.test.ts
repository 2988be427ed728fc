// The guest agent, run on the host with --connect against a unix socket: the same
// binary and protocol as in the VM, without the VM.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import {
  closeSync,
  constants,
  existsSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { buildGuestPrograms } from '../src/guest/compile.js';
import { AgentClient, AgentError, type ExecOptions } from '../src/agent/agent-client.js';
import { OUTPUT_WINDOW, PROTOCOL_VERSION } from '../src/guest/contract.js';
import { alive } from './helpers/proc.js';
import { within } from './hostile/fake-agent.js';

const tmp = mkdtempSync(join(tmpdir(), 'appliance-agent-'));
let agentBin: string;
let n = 0;
const started: { proc: ChildProcess; server: Server; client: AgentClient }[] = [];

beforeAll(async () => {
  agentBin = (await buildGuestPrograms({ cacheDir: join(tmp, 'cache') })).agent;
});
afterEach(() => {
  for (const s of started.splice(0)) {
    s.client.close();
    s.proc.kill('SIGKILL');
    s.server.close();
  }
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

async function startAgent(): Promise<{ client: AgentClient; proc: ChildProcess; server: Server }> {
  const path = join(tmp, `agent${n++}.sock`);
  const server = createServer();
  server.listen(path);
  await once(server, 'listening');
  const connection = once(server, 'connection') as Promise<[Socket]>;
  const proc = spawn(agentBin, ['--connect', path], { stdio: ['ignore', 'inherit', 'inherit'] });
  const [socket] = await connection;
  const client = await AgentClient.connect(socket);
  const s = { client, proc, server };
  started.push(s);
  return s;
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

async function exited(proc: ChildProcess, ms: number): Promise<number | null> {
  if (proc.exitCode !== null) return proc.exitCode;
  const res = await Promise.race([once(proc, 'exit'), sleep(ms).then(() => 'timeout' as const)]);
  if (res === 'timeout') throw new Error(`agent still running after ${ms} ms`);
  return res[0] as number | null;
}

describe('guest agent over a unix socket', () => {
  it('says hello with its version and times', async () => {
    const { client } = await startAgent();
    expect(client.hello.version).toBe(PROTOCOL_VERSION);
    expect(client.hello.pid1).toBe(false);
    expect(client.hello.bootMs).toBeGreaterThan(0);
  });

  it('reports exit codes and deaths by signal', async () => {
    const { client } = await startAgent();
    for (const code of [0, 1, 7, 255]) {
      const res = await client.exec(['sh', '-c', `exit ${code}`]);
      expect(res).toMatchObject({ exitCode: code, signal: null });
    }
    const killed = await client.exec(['sh', '-c', 'kill -9 $$']);
    expect(killed).toMatchObject({ exitCode: null, signal: 'SIGKILL' });
    const term = await client.exec(['sh', '-c', 'kill -TERM $$']);
    expect(term.signal).toBe('SIGTERM');
  });

  it('passes env and cwd, over a base PATH, HOME and TERM', async () => {
    const { client } = await startAgent();
    const res = await client.exec(['sh', '-c', 'echo "$FOO|$PATH|$HOME|$TERM"; pwd'], {
      env: { FOO: 'bar baz', HOME: '/tmp' },
      cwd: tmp,
    });
    expect(res.stdout.toString()).toBe(`bar baz|/usr/sbin:/usr/bin:/sbin:/bin|/tmp|${process.env.TERM || 'linux'}\n${tmp}\n`);
  });

  it('keeps 10 MB of stdout and 1 MB of stderr intact and apart', async () => {
    const { client } = await startAgent();
    const big = randomBytes(10 * 1024 * 1024);
    const small = randomBytes(1024 * 1024);
    writeFileSync(join(tmp, 'big'), big);
    writeFileSync(join(tmp, 'small'), small);
    // Both streams at once, and the command exits as soon as it has written them.
    const res = await client.exec(['sh', '-c', 'cat small >&2 & cat big; wait'], { cwd: tmp });
    expect(res.exitCode).toBe(0);
    expect(res.stdout.length).toBe(big.length);
    expect(sha(res.stdout)).toBe(sha(big));
    expect(sha(res.stderr)).toBe(sha(small));
  });

  it('feeds stdin: 5 MB through sha256sum', async () => {
    const { client } = await startAgent();
    const input = randomBytes(5 * 1024 * 1024);
    const res = await client.exec(['sha256sum'], { input });
    expect(res.stdout.toString()).toBe(`${sha(input)}  -\n`);
    // A stream input, and a string one.
    const streamed = await client.exec(['sha256sum'], { input: Readable.from([input.subarray(0, 3), input.subarray(3)]) });
    expect(streamed.stdout.toString()).toBe(`${sha(input)}  -\n`);
    expect((await client.exec(['cat'], { input: 'héllo' })).stdout.toString()).toBe('héllo');
  });

  it('finishes a command that ignores its large stdin', async () => {
    const { client } = await startAgent();
    const res = await client.exec(['true'], { input: randomBytes(4 * 1024 * 1024) });
    expect(res.exitCode).toBe(0);
    const head = await client.exec(['head', '-c', '5'], { input: Buffer.alloc(3 * 1024 * 1024, 'x') });
    expect(head.stdout.toString()).toBe('xxxxx');
  });

  it('runs 20 commands in a row', async () => {
    const { client } = await startAgent();
    for (let i = 0; i < 20; i++) {
      const res = await client.exec(['echo', `run ${i}`]);
      expect(res.stdout.toString()).toBe(`run ${i}\n`);
    }
  });

  it('runs 5 commands at once, each with its own output', async () => {
    const { client } = await startAgent();
    const dir = mkdtempSync(join(tmp, 'barrier-'));
    // Each command waits until all five have started: they only finish if they run together.
    const script = (i: number) =>
      `touch ${i}; while [ $(ls | wc -l) -lt 5 ]; do sleep 0.01; done; head -c 300000 /dev/zero | tr '\\0' '${i}'; echo err${i} >&2`;
    const results = await Promise.all([0, 1, 2, 3, 4].map((i) => client.exec(['sh', '-c', script(i)], { cwd: dir, timeoutMs: 20_000 })));
    results.forEach((res, i) => {
      expect(res.exitCode).toBe(0);
      expect(res.stdout.equals(Buffer.alloc(300000, String(i)))).toBe(true);
      expect(res.stderr.toString()).toBe(`err${i}\n`);
    });
  });

  it('reports a missing program as a shell would, with a structured error', async () => {
    const { client } = await startAgent();
    const res = await client.exec(['no-such-program-appliance']);
    expect(res.exitCode).toBe(127);
    expect(res.stderr.toString()).toBe('no-such-program-appliance: command not found\n');
    expect(res.spawnError).toMatchObject({ code: 'ENOENT', errno: 2 });
    const notExec = await client.exec([join(tmp, 'small')]);
    expect(notExec.exitCode).toBe(126);
    expect(notExec.spawnError?.code).toBe('EACCES');
    const badCwd = await client.exec(['true'], { cwd: join(tmp, 'missing-dir') });
    expect(badCwd.exitCode).toBe(126);
    expect(badCwd.stderr.toString()).toMatch(/cannot change directory to .*missing-dir: No such file or directory/);
  });

  it('writes and reads files, binary-safe', async () => {
    const { client } = await startAgent();
    const data = randomBytes(3 * 1024 * 1024 + 17);
    const path = join(tmp, 'written.bin');
    await client.writeFile(path, data, 0o640);
    expect(sha(readFileSync(path))).toBe(sha(data));
    expect(statSync(path).mode & 0o777).toBe(0o640);
    expect(sha(await client.readFile(path))).toBe(sha(data));
    // Streams both ways, and an empty file.
    await client.writeFile(path, Readable.from([data.subarray(0, 100), data.subarray(100)]));
    expect(statSync(path).mode & 0o777).toBe(0o644);
    const chunks: Buffer[] = [];
    for await (const c of client.readFileStream(path)) chunks.push(c as Buffer);
    expect(sha(Buffer.concat(chunks))).toBe(sha(data));
    await client.writeFile(path, Buffer.alloc(0));
    expect((await client.readFile(path)).length).toBe(0);
  });

  it('reports file errors with the guest errno', async () => {
    const { client } = await startAgent();
    await expect(client.readFile(join(tmp, 'nope'))).rejects.toMatchObject({ code: 'ENOENT', errno: 2 });
    await expect(client.readFile(tmp)).rejects.toMatchObject({ code: 'EISDIR' });
    // Opens, then fails on the first read.
    await expect(client.readFile('/proc/self/mem')).rejects.toMatchObject({ code: 'EIO' });
    await expect(client.writeFile(join(tmp, 'no-dir', 'f'), Buffer.from('x'))).rejects.toMatchObject({ code: 'ENOENT' });
    // A failing input stream aborts the write and removes the file.
    const path = join(tmp, 'aborted');
    const failing = new Readable({
      read() {
        this.push(Buffer.alloc(1000));
        this.destroy(new Error('disk on fire'));
      },
    });
    await expect(client.writeFile(path, failing)).rejects.toMatchObject({ code: 'EINPUT' });
    expect(() => statSync(path)).toThrow();
    // The channel still works.
    expect((await client.exec(['echo', 'ok'])).stdout.toString()).toBe('ok\n');
  });

  it('rejects bad commands and options instead of throwing, and the channel goes on', async () => {
    const { client } = await startAgent();
    const bad: [string[], ExecOptions, string][] = [
      [[], {}, 'EINVAL'],
      [['a\0b'], {}, 'EINVAL'],
      [['env'], { env: { 'A=B': 'x' } }, 'EINVAL'],
      [['env'], { env: { '': 'x' } }, 'EINVAL'],
      [['env'], { env: { A: 'x\0' } }, 'EINVAL'],
      [['true'], { cwd: '/\0' }, 'EINVAL'],
      [['echo', 'x'.repeat(70_000)], {}, 'E2BIG'],
      [['true'], { pty: { rows: 70_000, cols: 80 } }, 'EINVAL'],
      ...[0, -5, NaN, Infinity, 2 ** 31].map((timeoutMs): [string[], ExecOptions, string] => [['true'], { timeoutMs }, 'EINVAL']),
      ...[0, -1, NaN].map((maxBuffer): [string[], ExecOptions, string] => [['true'], { maxBuffer }, 'EINVAL']),
    ];
    for (const [argv, opts, code] of bad) {
      let run: Promise<unknown> | undefined;
      expect(() => (run = client.exec(argv, opts)), `${code} ${JSON.stringify(opts)}`).not.toThrow();
      await expect(run).rejects.toMatchObject({ code });
      let stream: ReturnType<AgentClient['execStream']> | undefined;
      expect(() => (stream = client.execStream(argv, opts))).not.toThrow();
      await expect(stream!.result).rejects.toMatchObject({ code });
      await Promise.all([stream!.stdout.toArray(), stream!.stderr.toArray()]);
    }
    expect((await client.exec(['echo', 'ok'])).stdout.toString()).toBe('ok\n');
  });

  it('writes regular files only: a FIFO, a device or a symlink is refused at once, and the agent goes on', async () => {
    const { client } = await startAgent();
    const fifo = join(tmp, 'write.fifo');
    execFileSync('mkfifo', [fifo]);
    const refused = (path: string) => within(3000, client.writeFile(path, 'x'), `writeFile(${path})`);
    // No reader (an open that would wait for one), then a reader (writes that would block).
    await expect(refused(fifo)).rejects.toMatchObject({ code: 'EINVAL', message: expect.stringMatching(/not a regular file/) });
    const reader = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
    try {
      await expect(refused(fifo)).rejects.toMatchObject({ code: 'EINVAL' });
    } finally {
      closeSync(reader);
    }
    await expect(refused('/dev/null')).rejects.toMatchObject({ code: 'EINVAL' });
    const link = join(tmp, 'write.link');
    symlinkSync(join(tmp, 'write.target'), link);
    await expect(refused(link)).rejects.toMatchObject({ code: 'ELOOP', message: expect.stringMatching(/symbolic link/) });
    expect(existsSync(join(tmp, 'write.target'))).toBe(false);
    expect((await client.exec(['echo', 'ok'])).stdout.toString()).toBe('ok\n');
  });

  it('reads a FIFO without blocking the agent, and a cancelled read closes it', async () => {
    const { client, proc } = await startAgent();
    const fifo = join(tmp, 'read.fifo');
    execFileSync('mkfifo', [fifo]);
    const reading = client.readFile(fifo);
    expect((await client.exec(['echo', 'meanwhile'])).stdout.toString()).toBe('meanwhile\n');
    await client.exec(['sh', '-c', `echo written > ${fifo}`]);
    expect((await reading).toString()).toBe('written\n');
    const agentHas = () =>
      readdirSync(`/proc/${proc.pid}/fd`).some((fd) => {
        try {
          return readlinkSync(`/proc/${proc.pid}/fd/${fd}`) === fifo;
        } catch {
          return false; // closed since the listing
        }
      });
    const ac = new AbortController();
    const abandoned = client.readFile(fifo, { signal: ac.signal });
    await client.exec(['true']); // the agent has opened it by now
    expect(agentHas()).toBe(true);
    ac.abort();
    await expect(within(5000, abandoned)).rejects.toMatchObject({ code: 'EABORTED' });
    await client.exec(['true']); // the cancel has been handled by now
    expect(agentHas()).toBe(false);
  });

  it('kills a command that runs past its timeout', async () => {
    const { client } = await startAgent();
    const t0 = Date.now();
    const err = (await client.exec(['sh', '-c', 'echo $$; exec sleep 30'], { timeoutMs: 300 }).catch((e) => e)) as AgentError;
    expect(err).toBeInstanceOf(AgentError);
    expect(err.code).toBe('ETIMEDOUT');
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(err.result?.signal).toBe('SIGKILL');
    const pid = Number(err.result?.stdout.toString());
    expect(pid).toBeGreaterThan(1);
    expect(alive(pid)).toBe(false);
  });

  it('aborts a command on an AbortSignal, and streams output as it comes', async () => {
    const { client } = await startAgent();
    const ac = new AbortController();
    const run = client.execStream(['sh', '-c', 'echo first; exec sleep 30'], { signal: ac.signal });
    const [first] = (await once(run.stdout, 'data')) as [Buffer];
    expect(first.toString()).toBe('first\n');
    ac.abort();
    await expect(run.result).rejects.toMatchObject({ code: 'EABORTED' });
  });

  it('holds output back while the reader is slow, without loss or unbounded memory', async () => {
    const { client, proc } = await startAgent();
    const data = randomBytes(32 * 1024 * 1024);
    writeFileSync(join(tmp, 'huge'), data);
    const run = client.execStream(['cat', join(tmp, 'huge')]);
    await sleep(1000); // nobody reads: the agent must stop reading cat's pipe
    const status = readFileSync(`/proc/${proc.pid}/status`, 'utf8');
    const hwmKb = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1]);
    expect(hwmKb).toBeLessThan(8 * 1024);
    const chunks: Buffer[] = [];
    run.stderr.resume();
    for await (const c of run.stdout) chunks.push(c as Buffer);
    expect((await run.result).exitCode).toBe(0);
    expect(sha(Buffer.concat(chunks))).toBe(sha(data));
  });

  it('a stream whose reader is behind holds up its own command only: other commands, reads and streams go on', async () => {
    const { client } = await startAgent();
    const data = randomBytes(8 * OUTPUT_WINDOW);
    writeFileSync(join(tmp, 'held'), data);
    // Nobody reads these yet: each stops once the host's room for it is full.
    const held = client.execStream(['cat', join(tmp, 'held')]);
    const heldFile = client.readFileStream(join(tmp, 'held'));
    const heldErr = client.execStream(['sh', '-c', `cat ${join(tmp, 'held')} >&2`]);
    heldErr.stdout.resume();
    await sleep(300);
    // Meanwhile every other call answers (the whole channel used to wait for those readers).
    const other = await within(5000, client.exec(['sh', '-c', 'echo other; echo err >&2']), 'a command beside held streams');
    expect(other.stdout.toString()).toBe('other\n');
    expect(sha(await within(5000, client.readFile(join(tmp, 'held')), 'a read beside held streams'))).toBe(sha(data));
    const streamed = client.execStream(['head', '-c', String(3 * OUTPUT_WINDOW), join(tmp, 'held')]);
    streamed.stderr.resume();
    const chunks: Buffer[] = [];
    for await (const c of streamed.stdout) chunks.push(c as Buffer);
    expect(sha(Buffer.concat(chunks))).toBe(sha(data.subarray(0, 3 * OUTPUT_WINDOW)));
    // The held ones, read now, are whole.
    const all = async (r: Readable) => {
      const got: Buffer[] = [];
      for await (const c of r) got.push(c as Buffer);
      return Buffer.concat(got);
    };
    held.stderr.resume();
    expect(sha(await all(held.stdout))).toBe(sha(data));
    expect(sha(await all(heldFile))).toBe(sha(data));
    expect(sha(await all(heldErr.stderr))).toBe(sha(data));
    expect((await held.result).exitCode).toBe(0);
    expect((await heldErr.result).exitCode).toBe(0);
  });

  it('runs a command on a pseudo-terminal of the given size', async () => {
    const { client } = await startAgent();
    const res = await client.exec(['sh', '-c', 'tty; stty size'], { pty: { rows: 30, cols: 100 } });
    expect(res.exitCode).toBe(0);
    expect(res.stdout.toString()).toMatch(/^\/dev\/pts\/\d+\r\n30 100\r\n$/);
    // Input is typed in (and echoed); its end is an EOF character, so cat ends.
    const cat = await client.exec(['cat'], { pty: true, input: 'line\n', timeoutMs: 10_000 });
    expect(cat.stdout.toString()).toBe('line\r\nline\r\n');
  });

  it('fails pending commands with EAGENTGONE when the agent dies', async () => {
    const { client, proc } = await startAgent();
    const run = client.exec(['sleep', '30']);
    await sleep(100);
    proc.kill('SIGKILL');
    await expect(run).rejects.toMatchObject({ code: 'EAGENTGONE' });
    await expect(client.exec(['true'])).rejects.toMatchObject({ code: 'EAGENTGONE' });
  });

  it('exits when the host closes the channel, killing what still runs', async () => {
    const { client, proc } = await startAgent();
    const run = client.execStream(['sh', '-c', 'echo $$; exec sleep 30']);
    const [line] = (await once(run.stdout, 'data')) as [Buffer];
    const pid = Number(line.toString());
    run.result.catch(() => {});
    client.close();
    expect(await exited(proc, 5000)).toBe(0);
    await sleep(50);
    expect(alive(pid)).toBe(false);
    await expect(run.result).rejects.toMatchObject({ code: 'EAGENTGONE' });
  });

  it('exits on poweroff', async () => {
    const { client, proc } = await startAgent();
    await client.poweroff();
    expect(await exited(proc, 5000)).toBe(0);
    await client.closed;
  });
});
