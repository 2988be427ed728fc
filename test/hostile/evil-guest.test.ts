// A compromised guest in real qemu (TCG): the root's PID 1 is not our agent but a small
// static program that opens the agent's port, says hello (or not quite) and answers the
// host's first request with a crafted frame (the scenario comes on the kernel command
// line). The host must fail with EPROTO and one line, survive, and leave no qemu behind.
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { mkext2 } from '../../src/appliance/mkext2.js';
import { buildInitrd } from '../../src/appliance/initrd.js';
import { AgentClient, AgentError } from '../../src/agent/agent-client.js';
import { buildGuestPrograms } from '../../src/guest/compile.js';
import { contractHeader } from '../../src/guest/contract-header.js';
import { param, ROOT_SERIAL } from '../../src/guest/contract.js';
import { findKernel } from '../../src/kernel/find.js';
import { launch } from '../../src/launcher/launch.js';
import { alive, processesNaming } from '../helpers/proc.js';
import { outcome, within } from './fake-agent.js';

const tmp = mkdtempSync(join(tmpdir(), 'appliance-evil-'));
const rootImg = join(tmp, 'root.ext2');
const initrd = join(tmp, 'initrd');
const escaped: unknown[] = [];
const onUncaught = (err: unknown) => escaped.push(err);

// Built against the real contract.h, so it speaks our numbers, only wrongly.
const EVIL_C = String.raw`
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "protocol.h"

static int con = 2;
static void say(const char *s) { (void)!write(con, s, strlen(s)); }

static int open_port(void) {
  for (int tries = 0; tries < 500; tries++) {
    DIR *d = opendir("/sys/class/virtio-ports");
    struct dirent *e;
    while (d && (e = readdir(d))) {
      char path[300], name[64] = "";
      snprintf(path, sizeof path, "/sys/class/virtio-ports/%s/name", e->d_name);
      int fd = open(path, O_RDONLY);
      if (fd < 0) continue;
      ssize_t n = read(fd, name, sizeof name - 1);
      close(fd);
      if (n > 0) name[strcspn(name, "\n")] = 0;
      if (strcmp(name, APPL_PORT_NAME)) continue;
      snprintf(path, sizeof path, "/dev/%s", e->d_name);
      closedir(d);
      return open(path, O_RDWR);
    }
    if (d) closedir(d);
    usleep(20000);
  }
  return -1;
}

static void put(int fd, uint32_t len, uint8_t type, uint32_t id, const void *p, size_t n) {
  unsigned char h[APPL_HEADER_SIZE];
  appl_put_header(h, len, type, 0, id);
  (void)!write(fd, h, sizeof h);
  if (n) (void)!write(fd, p, n);
}

static void get(int fd, unsigned char *buf, size_t n) {
  for (size_t done = 0; done < n;) {
    ssize_t r = read(fd, buf + done, n - done);
    if (r > 0) done += (size_t)r;
    else usleep(1000);
  }
}

int main(void) {
  int c = open("/dev/console", O_WRONLY);
  if (c >= 0) con = c;
  char cmdline[4096] = "";
  int f = open("/proc/cmdline", O_RDONLY);
  if (f >= 0) { (void)!read(f, cmdline, sizeof cmdline - 1); close(f); }
  char *s = strstr(cmdline, "evil=");
  const char *scenario = s ? s + 5 : "";
  int port = open_port();
  if (port < 0) { say("evil: no port\n"); for (;;) pause(); }
  unsigned char hello[APPL_PAYLOAD_HELLO] = {0};
  appl_put32(hello, APPL_VERSION);
  appl_put32(hello + 12, APPL_HELLO_PID1);
  if (!strncmp(scenario, "short-hello", 11)) {
    put(port, 8, APPL_T_HELLO, 0, hello, 8);
  } else {
    put(port, sizeof hello, APPL_T_HELLO, 0, hello, sizeof hello);
    /* The host's first request: its id is the one to answer wrongly. */
    static unsigned char req[APPL_HEADER_SIZE + APPL_MAX_PAYLOAD];
    get(port, req, APPL_HEADER_SIZE);
    uint32_t len = appl_get32(req), id = appl_get32(req + 8);
    get(port, req + APPL_HEADER_SIZE, len);
    unsigned char junk[64] = {0};
    if (!strncmp(scenario, "short-exit", 10)) put(port, 5, APPL_T_EXIT, id, junk, 5);
    else if (!strncmp(scenario, "huge", 4)) put(port, 0xfffffff0u, APPL_T_STDOUT, id, junk, 64);
    else if (!strncmp(scenario, "ack", 3)) { appl_put32(junk, 0x7fffffffu); put(port, 4, APPL_T_STDIN_ACK, id, junk, 4); }
  }
  say("evil: done\n");
  for (;;) pause();
}
`;

beforeAll(async () => {
  process.on('uncaughtException', onUncaught);
  const tree = join(tmp, 'tree');
  for (const d of ['proc', 'sys', 'dev', 'tmp', 'run', 'var/tmp', 'root']) mkdirSync(join(tree, d), { recursive: true });
  writeFileSync(join(tmp, 'contract.h'), contractHeader());
  writeFileSync(join(tmp, 'evil.c'), EVIL_C);
  execFileSync('musl-gcc', ['-static', '-Os', '-Wall', `-I${resolve('src/guest/c')}`, `-iquote${tmp}`, '-o', join(tree, 'evil'), join(tmp, 'evil.c')]);
  chmodSync(join(tree, 'evil'), 0o755);
  await mkext2(tree, rootImg);
  const bins = await buildGuestPrograms({ cacheDir: join(tmp, 'cache') });
  await buildInitrd({ kernel: await findKernel(), init: bins.init, output: initrd });
}, 180_000);
afterEach(() => expect(escaped.splice(0).map(String)).toEqual([]));
afterAll(() => {
  process.off('uncaughtException', onUncaught);
  rmSync(tmp, { recursive: true, force: true });
});

async function bootEvil(scenario: string, console: string[]) {
  const launched = launch({
    kernel: (await findKernel()).path,
    initrd,
    root: rootImg,
    accel: 'tcg',
    cacheDir: join(tmp, 'cache'),
    cmdline: [param('root', ROOT_SERIAL), param('init', '/evil'), `evil=${scenario}`],
    onConsole: (l) => console.push(l),
    ready: async (ctx) => AgentClient.connect(await ctx.channel),
  });
  return { launched };
}

describe('a guest that writes crafted frames on the agent channel', () => {
  for (const [scenario, detail, opts] of [
    ['short-exit', /EXIT of 5 bytes/, {}],
    ['huge', /4294967280 bytes/, {}],
    ['ack', /STDIN_ACK .* in flight/, { input: 'some input' }],
  ] as const) {
    it(`${scenario}: the command fails with EPROTO and one line, and kill() leaves nothing`, async () => {
      const console: string[] = [];
      const { launched } = await bootEvil(scenario, console);
      const vm = await launched;
      const res = await within(20_000, outcome(vm.ready.exec(['anything'], opts)), 'the crafted reply');
      expect(res, console.join('\n')).toMatchObject({ ok: false, code: 'EPROTO' });
      const { message, error } = res as { message: string; error: unknown };
      expect(error).toBeInstanceOf(AgentError);
      expect(message).toMatch(detail);
      expect(message).not.toContain('\n');
      await within(5000, vm.ready.closed, 'the channel closing');
      await expect(vm.ready.exec(['again'])).rejects.toMatchObject({ code: 'EPROTO' });
      await within(10_000, vm.kill(), 'kill()');
      expect(alive(vm.pid)).toBe(false);
    });
  }

  it('short-hello: the boot fails with EPROTO naming the HELLO, and no qemu is left', async () => {
    const console: string[] = [];
    const { launched } = await bootEvil('short-hello', console);
    const res = await within(60_000, outcome(launched), 'the launch');
    expect(res, console.join('\n')).toMatchObject({ ok: false });
    const { message, error } = res as { message: string; error: unknown };
    expect(message).toMatch(/HELLO of 8 bytes/);
    expect(message).not.toContain('\n');
    expect((error as { code?: string }).code).toBe('EPROTO');
    expect(processesNaming('evil=short-hello')).toEqual([]);
  });
});
