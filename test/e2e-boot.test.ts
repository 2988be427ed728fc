// End to end, with nothing but our own writers: a root image from our ext2 writer whose
// /init prints a marker and powers off, an initrd from our newc writer holding our C
// init and the virtio modules, booted by the host's kernel in real qemu (TCG) on a
// virtio-mmio machine (microvm) and on a virtio-pci one (q35). The kernel accepting the
// cpio, our init finding the disk and mounting the ext2 read-only is the proof.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkext2 } from '../src/appliance/mkext2.js';
import { buildGuestPrograms } from '../src/guest/compile.js';
import { findKernel } from '../src/kernel/find.js';
import { buildInitrd } from '../src/appliance/initrd.js';
import { ROOT_SERIAL } from '../src/guest/contract.js';
import { launch } from '../src/launcher/launch.js';

const tmp = mkdtempSync(join(tmpdir(), 'appliance-e2e-'));
const rootImg = join(tmp, 'root.ext2');
const initrd = join(tmp, 'initrd');
const sha = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');

// The root's /init: reports its PID, how / is mounted and a file read from the root, then powers off.
const MARKER_C = String.raw`
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/reboot.h>
int main(void) {
  char buf[4096] = {0}, line[512];
  FILE *m = fopen("/proc/mounts", "r"), *f = fopen("/etc/marker", "r");
  while (m && fgets(line, sizeof line, m)) if (strstr(line, " / ")) strncpy(buf, line, sizeof buf - 1);
  if (f && fgets(line, sizeof line, f)) line[strcspn(line, "\n")] = 0; else strcpy(line, "(no /etc/marker)");
  printf("E2E-MARKER pid=%d content=%s mount=%s", (int)getpid(), line, buf);
  fflush(stdout);
  sync();
  reboot(RB_POWER_OFF);
  return 1;
}
`;

beforeAll(async () => {
  const tree = join(tmp, 'tree');
  for (const d of ['proc', 'sys', 'dev', 'tmp', 'run', 'var/tmp', 'root', 'etc']) mkdirSync(join(tree, d), { recursive: true });
  writeFileSync(join(tmp, 'marker.c'), MARKER_C);
  execFileSync('musl-gcc', ['-static', '-Os', '-o', join(tree, 'init'), join(tmp, 'marker.c')]);
  chmodSync(join(tree, 'init'), 0o755);
  writeFileSync(join(tree, 'etc/marker'), 'written-by-our-ext2-writer\n');
  await mkext2(tree, rootImg);
  const bins = await buildGuestPrograms({ cacheDir: join(tmp, 'cache') });
  await buildInitrd({ kernel: await findKernel(), init: bins.init, output: initrd });
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('our ext2 root + our initrd + our init boot the host kernel', () => {
  for (const machine of ['microvm', 'q35'] as const) {
    it(`on ${machine} (${machine === 'microvm' ? 'virtio-mmio' : 'virtio-pci'})`, async () => {
      const lines: string[] = [];
      let markerSeen!: () => void;
      const marker = new Promise<void>((resolve) => (markerSeen = resolve));
      const rootHash = sha(rootImg);
      const t0 = performance.now();
      const vm = await launch({
        kernel: (await findKernel()).path,
        initrd,
        root: rootImg,
        accel: 'tcg',
        machine,
        cacheDir: join(tmp, 'cache'),
        cmdline: [`appliance.root=${ROOT_SERIAL}`, 'appliance.init=/init', 'appliance.timing=1'],
        onConsole: (l) => {
          lines.push(l);
          if (l.includes('E2E-MARKER')) markerSeen();
        },
        ready: () => marker,
      });
      const status = await vm.exited;
      const ms = performance.now() - t0;
      const text = lines.join('\n');
      expect(status).toEqual({ code: 0, signal: null });
      expect(vm.machine).toBe(machine);
      const m = /E2E-MARKER pid=(\d+) content=(\S+) mount=(\S+) (\S+) (\S+) (\S+)/.exec(text);
      expect(m, text).not.toBeNull();
      // PID 1: the init exec'd the root's /init after switching root.
      expect(m![1]).toBe('1');
      expect(m![2]).toBe('written-by-our-ext2-writer');
      expect(m![4]).toBe('/');
      expect(m![5]).toBe('ext2');
      expect(m![6]).toMatch(/^ro[,$]/);
      expect(text).not.toMatch(/FATAL|Kernel panic|Initramfs unpacking failed|EXT4-fs error/);
      for (const step of ['init started', 'modules loaded', 'root disk found', 'root mounted, exec']) {
        expect(text).toContain(step);
      }
      // The root image is attached read-only: the boot must not have changed it.
      expect(sha(rootImg)).toBe(rootHash);
      console.log(`e2e ${machine}: initrd ${statSync(initrd).size} bytes, boot to marker and poweroff ${ms.toFixed(0)} ms`);
    });
  }
});
