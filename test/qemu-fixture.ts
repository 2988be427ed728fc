// A tiny guest for the launcher's boot tests: a static C /init (no agent, no root disk)
// that loads the virtio modules, tells the host which disks it sees over the guest
// channel, and powers off when the host writes to the channel. Built with musl-gcc and
// packed with GNU cpio, the oracles for "a real initramfs".
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';

const INIT_C = String.raw`
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static int con = 2;
static void say(const char *s) { write(con, s, strlen(s)); }

static int read_line(const char *path, char *buf, size_t n) {
  int fd = open(path, O_RDONLY);
  if (fd < 0) return -1;
  ssize_t r = read(fd, buf, n - 1);
  close(fd);
  if (r < 0) return -1;
  buf[r] = 0;
  buf[strcspn(buf, "\n")] = 0;
  return 0;
}

/* The /dev name of the virtio port called name, or 0. */
static int find_port(const char *name, char *dev, size_t n) {
  DIR *d = opendir("/sys/class/virtio-ports");
  struct dirent *e;
  char path[300], value[128];
  if (!d) return 0;
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    snprintf(path, sizeof path, "/sys/class/virtio-ports/%s/name", e->d_name);
    if (read_line(path, value, sizeof value) == 0 && strcmp(value, name) == 0) {
      snprintf(dev, n, "/dev/%s", e->d_name);
      closedir(d);
      return 1;
    }
  }
  closedir(d);
  return 0;
}

int main(void) {
  int fd = open("/dev/console", O_WRONLY);
  if (fd >= 0) con = fd;
  say("test-init: start\n");
  if (getenv("test_hang")) for (;;) pause();

  char line[512], dev[300], msg[1024] = "HELLO";
  FILE *order = fopen("/modules.order", "r");
  while (order && fgets(line, sizeof line, order)) {
    line[strcspn(line, "\n")] = 0;
    int m = open(line, O_RDONLY | O_CLOEXEC);
    if (m < 0 || (syscall(SYS_finit_module, m, "", 0) != 0 && errno != EEXIST)) {
      say("test-init: cannot load "); say(line); say(": "); say(strerror(errno)); say("\n");
    }
    if (m >= 0) close(m);
  }
  mkdir("/sys", 0755);
  mount("sysfs", "/sys", "sysfs", 0, 0);
  mount("devtmpfs", "/dev", "devtmpfs", 0, 0);

  int found = 0;
  for (int i = 0; i < 100 && !(found = find_port("org.appliance.agent", dev, sizeof dev)); i++) usleep(50000);
  if (!found) { say("test-init: no agent port\n"); reboot(RB_POWER_OFF); }

  DIR *d = opendir("/sys/block");
  struct dirent *e;
  char path[300], serial[64];
  while (d && (e = readdir(d))) {
    if (strncmp(e->d_name, "vd", 2) != 0) continue;
    snprintf(path, sizeof path, "/sys/block/%s/serial", e->d_name);
    if (read_line(path, serial, sizeof serial) != 0) continue;
    snprintf(path, sizeof path, "test-init: disk %s serial=%s\n", e->d_name, serial);
    say(path);
    strcat(msg, " ");
    strcat(msg, serial);
  }
  strcat(msg, "\n");

  int port = open(dev, O_RDWR);
  write(port, msg, strlen(msg));
  char c;
  read(port, &c, 1); /* the host says when to stop */
  say("test-init: poweroff\n");
  sync();
  reboot(RB_POWER_OFF);
  return 0;
}
`;

/** The virtio modules the guest needs, both transports, dependencies first. */
const MODULES = ['virtio_ring', 'virtio', 'virtio_mmio', 'virtio_pci_legacy_dev', 'virtio_pci_modern_dev', 'virtio_pci', 'virtio_blk', 'virtio_console'];

export interface TestKernel {
  path: string;
  modulesDir: string;
}

/** The host's kernel: the /boot/vmlinuz-* whose /lib/modules folder exists. */
export function hostKernel(): TestKernel {
  for (const name of readdirSync('/boot')
    .filter((n) => n.startsWith('vmlinuz-'))
    .sort()
    .reverse()) {
    const modulesDir = join('/lib/modules', name.slice('vmlinuz-'.length));
    try {
      readFileSync(join(modulesDir, 'modules.dep'));
      return { path: join('/boot', name), modulesDir };
    } catch {
      // no modules for this one
    }
  }
  throw new Error('no /boot/vmlinuz-* with its /lib/modules: install linux-image-cloud-amd64');
}

/** Builds the test initrd in `dir` and returns its path. */
export function buildTestInitrd(dir: string, kernel: TestKernel): string {
  const tree = join(dir, 'initrd-tree');
  mkdirSync(join(tree, 'm'), { recursive: true });
  writeFileSync(join(dir, 'init.c'), INIT_C);
  execFileSync('musl-gcc', ['-static', '-Os', '-o', join(tree, 'init'), join(dir, 'init.c')]);

  const dep = readFileSync(join(kernel.modulesDir, 'modules.dep'), 'utf8');
  const order: string[] = [];
  for (const name of MODULES) {
    const rel = dep
      .split('\n')
      .map((l) => l.split(':')[0]!)
      .find((p) => basename(p) === `${name}.ko`);
    if (!rel) throw new Error(`module ${name}.ko not in ${kernel.modulesDir}/modules.dep (this test needs uncompressed modules)`);
    copyFileSync(join(kernel.modulesDir, rel), join(tree, 'm', `${name}.ko`));
    order.push(`/m/${name}.ko`);
  }
  writeFileSync(join(tree, 'modules.order'), order.join('\n') + '\n');

  const initrd = join(dir, 'initrd.cpio');
  const files = ['init', 'modules.order', 'm', ...order.map((p) => p.slice(1))].join('\n') + '\n';
  execFileSync('sh', ['-c', `cpio -o -H newc --quiet > ${JSON.stringify(initrd)}`], { cwd: tree, input: files });
  return initrd;
}
