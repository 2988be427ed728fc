// Host memory and the agent's loop against a guest that never stops talking or a command
// that never gets going, in one booted appliance (real qemu, TCG): readFile has a size
// limit and an AbortSignal and a cancelled read stops the agent reading; exec stops
// collecting at maxBuffer; a command stuck before its exec does not stall the agent.
import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentError } from '../../src/agent/agent-client.js';
import { boot, type Vm } from '../../src/vm/vm.js';
import { outcome, within } from './fake-agent.js';

const tmp = mkdtempSync(join(tmpdir(), 'appliance-limits-'));
let vm: Vm;

// Holds every exec of one file (fanotify permission event) until it exits.
const HOLD_EXEC_C = String.raw`
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/fanotify.h>
#include <unistd.h>
int main(int argc, char **argv) {
  int fd = fanotify_init(FAN_CLASS_CONTENT | FAN_CLOEXEC, O_RDONLY);
  if (argc != 3 || fd < 0 || fanotify_mark(fd, FAN_MARK_ADD, FAN_OPEN_EXEC_PERM, AT_FDCWD, argv[1]) < 0) {
    perror("fanotify");
    return 1;
  }
  printf("holding\n");
  fflush(stdout);
  sleep(atoi(argv[2]));
  return 0;
}
`;

beforeAll(async () => {
  writeFileSync(join(tmp, 'hold.c'), HOLD_EXEC_C);
  execFileSync('musl-gcc', ['-static', '-Os', '-o', join(tmp, 'hold'), join(tmp, 'hold.c')]);
  vm = await boot({ cacheDir: join(tmp, 'cache') });
}, 300_000);
afterAll(async () => {
  await vm?.close();
  rmSync(tmp, { recursive: true, force: true });
});

/** Bytes the agent (the guest's PID 1) has read so far. */
async function agentRead(): Promise<number> {
  const io = (await vm.exec(['cat', '/proc/1/io'])).stdout.toString();
  return Number(/^rchar: (\d+)$/m.exec(io)?.[1]);
}

/** The agent reads next to nothing for half a second: whatever it was reading, it stopped. */
async function expectAgentIdle(): Promise<void> {
  await sleep(300); // what was already queued drains
  const before = await agentRead();
  await sleep(500);
  expect((await agentRead()) - before).toBeLessThan(64 * 1024);
}

describe('readFile', () => {
  it('stops at maxBytes with ETOOBIG, for a file and for /dev/zero, and the agent stops reading', async () => {
    await vm.exec(['sh', '-c', `head -c ${16 << 20} /dev/zero > /tmp/big`]);
    const big = await within(30_000, outcome(vm.readFile('/tmp/big', { maxBytes: 4 << 20 })));
    expect(big).toMatchObject({ ok: false, code: 'ETOOBIG' });
    expect((big as { message: string }).message).toMatch(/\/tmp\/big .*4194304/);
    expect((await vm.readFile('/tmp/big', { maxBytes: 16 << 20 })).length).toBe(16 << 20);
    const zero = await within(30_000, outcome(vm.readFile('/dev/zero', { maxBytes: 4 << 20 })));
    expect(zero).toMatchObject({ ok: false, code: 'ETOOBIG' });
    expect((zero as { error: unknown }).error).toBeInstanceOf(AgentError);
    await expectAgentIdle();
  });

  it('gives up on an AbortSignal, as does readFileStream, and the agent stops reading', async () => {
    const ac = new AbortController();
    const stream = vm.readFileStream('/dev/zero', { signal: ac.signal });
    await once(stream, 'readable');
    const failed = new Promise((resolve) => stream.once('error', resolve));
    ac.abort();
    expect(await within(5000, failed)).toMatchObject({ code: 'EABORTED' });
    await expectAgentIdle();

    const ac2 = new AbortController();
    const whole = vm.readFile('/dev/zero', { signal: ac2.signal });
    setTimeout(() => ac2.abort(), 200);
    await expect(within(10_000, whole)).rejects.toMatchObject({ code: 'EABORTED' });
    await expect(vm.readFile('/tmp/big', { signal: AbortSignal.abort() })).rejects.toMatchObject({ code: 'EABORTED' });
    await expectAgentIdle();
  });

  it('stops the agent reading when the reader destroys the stream', async () => {
    const stream: Readable = vm.readFileStream('/dev/zero');
    for await (const _ of stream) break; // destroys it
    await expectAgentIdle();
  });
});

describe('exec', () => {
  it('kills a command whose output passes maxBuffer, keeps what fit, and says ETOOBIG', async () => {
    const t0 = Date.now();
    const r = await within(30_000, outcome(vm.exec(['sh', '-c', `head -c ${8 << 20} /dev/zero; echo done >&2; sleep 60`], { maxBuffer: 2 << 20 })));
    expect(r).toMatchObject({ ok: false, code: 'ETOOBIG' });
    const err = (r as { error: AgentError }).error;
    expect(err.message).toMatch(/more than 2097152 bytes to stdout/);
    expect(err.result?.signal).toBe('SIGKILL');
    expect(err.result?.stdout.length).toBe(2 << 20);
    expect(Date.now() - t0).toBeLessThan(30_000);
    // The default is 64 MiB a stream.
    const over = await within(60_000, outcome(vm.exec(['head', '-c', String((64 << 20) + 1), '/dev/zero'])));
    expect(over).toMatchObject({ ok: false, code: 'ETOOBIG' });
  });

  it('goes on serving while a command is stuck before its exec', async () => {
    await vm.writeFile('/tmp/hold', readFileSync(join(tmp, 'hold')), 0o755);
    await vm.exec(['cp', '/bin/true', '/tmp/held']);
    const holder = vm.execStream(['/tmp/hold', '/tmp/held', '10']);
    holder.result.catch(() => {}); // awaited at the end
    holder.stderr.resume();
    const [line] = (await within(10_000, once(holder.stdout, 'data'))) as [Buffer];
    expect(line.toString()).toBe('holding\n');
    const held = outcome(vm.exec(['/tmp/held']));
    await sleep(500); // the child is in its execve now, waiting for the holder
    const t0 = Date.now();
    expect((await within(5000, vm.exec(['echo', 'served']), 'a command beside the stuck one')).stdout.toString()).toBe('served\n');
    expect(Date.now() - t0).toBeLessThan(5000);
    holder.kill('SIGKILL');
    expect(await within(10_000, held)).toMatchObject({ ok: true, value: { exitCode: 0 } });
    await outcome(holder.result);
  });
});
