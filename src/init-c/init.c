/*
 * appliance init: PID 1 in the initramfs. Loads the modules that reach the root disk,
 * waits for it, mounts it read-only with tmpfs where the system writes, switches root
 * (freeing the initramfs) and execs the agent. The kernel command line it reads is
 * documented in ARCHITECTURE.md. On any fatal error it prints one line and powers off.
 */
#define _GNU_SOURCE
#define LOG_PREFIX "appliance-init"
#include "util.h"

#include <dirent.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#define NEWROOT "/newroot"

static int timing;

static __attribute__((format(printf, 1, 2))) void mark(const char *fmt, ...) {
  if (!timing) return;
  char step[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(step, sizeof step, fmt, ap);
  va_end(ap);
  struct timespec ts;
  clock_gettime(CLOCK_BOOTTIME, &ts);
  say("%5lld.%03ld s  %s", (long long)ts.tv_sec, ts.tv_nsec / 1000000, step);
}

/* Reads a small file into buf (NUL-terminated, trailing whitespace removed). */
static int read_text(const char *path, char *buf, size_t size) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  size_t have = 0;
  for (;;) {
    ssize_t n = read(fd, buf + have, size - 1 - have);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    have += (size_t)n;
    if (have == size - 1) break;
  }
  close(fd);
  while (have > 0 && (buf[have - 1] == '\n' || buf[have - 1] == ' ' || buf[have - 1] == '\0'))
    have--;
  buf[have] = '\0';
  return 0;
}

static int try_mount(const char *src, const char *dst, const char *type, unsigned long flags,
                     const char *data) {
  mkdir(dst, 0755);
  return mount(src, dst, type, flags, data);
}

static void mount_or_die(const char *src, const char *dst, const char *type, unsigned long flags,
                         const char *data) {
  if (try_mount(src, dst, type, flags, data) < 0)
    fatal("cannot mount %s on %s: %s", type, dst, strerror(errno));
}

/* Kernel command line: appliance.root=, appliance.init=, appliance.rootwait=, appliance.timing=. */
static char cmdline[4096];
static const char *root_spec, *init_path = "/init";
static int rootwait_s = 10;

static void parse_cmdline(void) {
  if (read_text("/proc/cmdline", cmdline, sizeof cmdline) < 0)
    fatal("cannot read /proc/cmdline: %s", strerror(errno));
  for (char *tok = strtok(cmdline, " \t\n"); tok; tok = strtok(NULL, " \t\n")) {
    if (!strncmp(tok, "appliance.root=", 15)) root_spec = tok + 15;
    else if (!strncmp(tok, "appliance.init=", 15)) init_path = tok + 15;
    else if (!strncmp(tok, "appliance.rootwait=", 19)) rootwait_s = atoi(tok + 19);
    else if (!strncmp(tok, "appliance.timing=", 17)) timing = atoi(tok + 17) != 0;
  }
}

/* True when the folder has an entry whose name starts with prefix ("" for any). */
static int has_entry(const char *dir, const char *prefix) {
  DIR *d = opendir(dir);
  if (!d) return 0;
  struct dirent *e;
  int found = 0;
  while (!found && (e = readdir(d)))
    found = e->d_name[0] != '.' && !strncmp(e->d_name, prefix, strlen(prefix));
  closedir(d);
  return found;
}

/* The initrd serves every machine, but each has one virtio transport: loading the other's
 * modules costs ~25 ms under TCG for nothing. microvm has no PCI bus; its virtio-mmio
 * devices are the ACPI platform devices LNRO0005 (q35 and pc have none). */
static int transport_unused(const char *path) {
  const char *base = strrchr(path, '/');
  base = base ? base + 1 : path;
  if (!strncmp(base, "virtio_pci", 10)) return !has_entry("/sys/bus/pci/devices", "");
  if (!strncmp(base, "virtio_mmio", 11)) return !has_entry("/sys/bus/platform/devices", "LNRO0005");
  return 0;
}

/* /modules.order: one module path per line, dependencies first. */
static void load_modules(void) {
  static char list[65536];
  if (read_text("/modules.order", list, sizeof list) < 0) {
    if (errno != ENOENT) say("cannot read /modules.order: %s", strerror(errno));
    return;
  }
  for (char *line = strtok(list, "\n"); line; line = strtok(NULL, "\n")) {
    if (!*line || *line == '#') continue;
    char path[512];
    snprintf(path, sizeof path, "%s%s", *line == '/' ? "" : "/", line);
    if (transport_unused(path)) continue;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      say("module %s: cannot open: %s (errno %d)", path, strerror(errno), errno);
      continue;
    }
    if (syscall(SYS_finit_module, fd, "", 0) < 0 && errno != EEXIST) {
      int e = errno;
      say("module %s: %s (errno %d)%s", path, strerror(e), e,
          e == ENOENT ? ": an unknown symbol, is a module it needs missing or listed after it?" : "");
    }
    close(fd);
    mark("module %s", path);
  }
}

static int is_virtio_blk(const char *name) {
  char link[320], target[256];
  snprintf(link, sizeof link, "/sys/block/%s/device/driver", name);
  ssize_t n = readlink(link, target, sizeof target - 1);
  if (n < 0) return 0;
  target[n] = '\0';
  const char *base = strrchr(target, '/');
  return !strcmp(base ? base + 1 : target, "virtio_blk");
}

static int read_serial(const char *name, char *serial, size_t size) {
  char path[320];
  snprintf(path, sizeof path, "/sys/block/%s/serial", name);
  return read_text(path, serial, size) == 0 && serial[0] ? 0 : -1;
}

/* Finds the root disk by serial; fills dev with its /dev path. */
static int find_root(char *dev, size_t size) {
  if (!strncmp(root_spec, "/dev/", 5)) {
    snprintf(dev, size, "%s", root_spec);
    return access(dev, F_OK);
  }
  DIR *d = opendir("/sys/block");
  if (!d) return -1;
  int found = -1;
  struct dirent *e;
  while (found < 0 && (e = readdir(d))) {
    char serial[128];
    if (e->d_name[0] == '.' || read_serial(e->d_name, serial, sizeof serial) < 0) continue;
    if (strcmp(serial, root_spec)) continue;
    snprintf(dev, size, "/dev/%s", e->d_name);
    /* sysfs shows the disk a moment before devtmpfs has its node. */
    found = access(dev, F_OK);
  }
  closedir(d);
  return found;
}

static __attribute__((noreturn)) void root_timeout(void) {
  char seen[2048] = "";
  size_t len = 0;
  DIR *d = opendir("/sys/block");
  struct dirent *e;
  while (d && (e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    char serial[128];
    if (read_serial(e->d_name, serial, sizeof serial) < 0) strcpy(serial, "none");
    int n = snprintf(seen + len, sizeof seen - len, "%s%s (serial %s)", len ? ", " : "",
                     e->d_name, serial);
    if (n < 0 || (size_t)n >= sizeof seen - len) break;
    len += (size_t)n;
  }
  if (d) closedir(d);
  fatal("root disk %s did not appear within %d s; block devices seen: %s", root_spec, rootwait_s,
        len ? seen : "none");
}

static void wait_for_root(char *dev, size_t size) {
  uint64_t deadline = clock_ms(CLOCK_BOOTTIME) + (uint64_t)rootwait_s * 1000;
  long delay_us = 500;
  while (find_root(dev, size) < 0) {
    if (clock_ms(CLOCK_BOOTTIME) >= deadline) root_timeout();
    struct timespec ts = {0, delay_us * 1000};
    nanosleep(&ts, NULL);
    if (delay_us < 20000) delay_us *= 2;
  }
}

/* /dev/disk/by-id/virtio-<serial> for every virtio disk, as udev would name them. */
static void link_disks_by_id(void) {
  DIR *d = opendir("/sys/block");
  if (!d) return;
  mkdir("/dev/disk", 0755);
  mkdir("/dev/disk/by-id", 0755);
  struct dirent *e;
  while ((e = readdir(d))) {
    char serial[128], link[180], target[280];
    if (e->d_name[0] == '.' || !is_virtio_blk(e->d_name)) continue;
    if (read_serial(e->d_name, serial, sizeof serial) < 0) continue;
    for (char *c = serial; *c; c++)
      if (!strchr("#+-.:=@_", *c) && !(*c >= '0' && *c <= '9') && !(*c >= 'a' && *c <= 'z') &&
          !(*c >= 'A' && *c <= 'Z'))
        *c = '_';
    snprintf(link, sizeof link, "/dev/disk/by-id/virtio-%s", serial);
    snprintf(target, sizeof target, "../../%s", e->d_name);
    if (symlink(target, link) < 0 && errno != EEXIST)
      say("cannot create %s: %s", link, strerror(errno));
  }
  closedir(d);
}

static void mount_root(const char *dev) {
  mkdir(NEWROOT, 0755);
  if (mount(dev, NEWROOT, "ext2", MS_RDONLY, NULL) < 0)
    fatal("cannot mount the root disk %s (ext2, read-only) on %s: %s", dev, NEWROOT, strerror(errno));
  static const struct { const char *path, *opts; } tmpfs[] = {
      {NEWROOT "/tmp", "mode=1777"},
      {NEWROOT "/run", "mode=0755"},
      {NEWROOT "/var/tmp", "mode=1777"},
      {NEWROOT "/root", "mode=0700"},
  };
  for (size_t i = 0; i < sizeof tmpfs / sizeof tmpfs[0]; i++)
    if (mount("tmpfs", tmpfs[i].path, "tmpfs", MS_NOSUID | MS_NODEV, tmpfs[i].opts) < 0)
      say("cannot mount a tmpfs on %s: %s (does the root image have that folder?)",
          tmpfs[i].path + sizeof NEWROOT - 1, strerror(errno));
}

/* Deletes the initramfs's files (they hold RAM) without entering other mounts, as
 * switch_root does. */
static void remove_tree(int dirfd, dev_t rootdev) {
  DIR *d = fdopendir(dirfd);
  if (!d) {
    close(dirfd);
    return;
  }
  struct dirent *e;
  while ((e = readdir(d))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    struct stat st;
    if (fstatat(dirfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || st.st_dev != rootdev) continue;
    if (S_ISDIR(st.st_mode)) {
      int sub = openat(dirfd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (sub >= 0) remove_tree(sub, rootdev);
      unlinkat(dirfd, e->d_name, AT_REMOVEDIR);
    } else {
      unlinkat(dirfd, e->d_name, 0);
    }
  }
  closedir(d);
}

static void switch_root(void) {
  static const char *const moved[] = {"/dev", "/proc", "/sys"};
  for (size_t i = 0; i < sizeof moved / sizeof moved[0]; i++) {
    char dst[64];
    snprintf(dst, sizeof dst, NEWROOT "%s", moved[i]);
    if (mount(moved[i], dst, NULL, MS_MOVE, NULL) < 0)
      fatal("cannot move %s to the root disk's %s: %s (does the root image have that folder?)",
            moved[i], moved[i], strerror(errno));
  }
  if (chdir(NEWROOT) < 0) fatal("cannot enter %s: %s", NEWROOT, strerror(errno));
  struct stat st;
  int old = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (old < 0 || fstat(old, &st) < 0) fatal("cannot open the initramfs: %s", strerror(errno));
  remove_tree(old, st.st_dev);
  if (mount(".", "/", NULL, MS_MOVE, NULL) < 0) fatal("cannot move the root to /: %s", strerror(errno));
  if (chroot(".") < 0 || chdir("/") < 0) fatal("cannot chroot into the root disk: %s", strerror(errno));
}

int main(void) {
  uint64_t start_ms = clock_ms(CLOCK_BOOTTIME);
  if (getpid() != 1) {
    say("must run as PID 1 (the kernel's init)");
    return 1;
  }
  umask(022);
  mount_or_die("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
  mount_or_die("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
  mount_or_die("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755");
  /* The kernel gives init no console when the initramfs lacks /dev/console. */
  int con = open("/dev/console", O_RDWR | O_NOCTTY);
  if (con >= 0) {
    for (int fd = 0; fd < 3; fd++)
      if (fd != con) dup2(con, fd);
    if (con > 2) close(con);
  }
  parse_cmdline();
  mark("init started");
  if (!root_spec) fatal("no appliance.root= on the kernel command line: the root disk is unknown");

  load_modules();
  mark("modules loaded");

  char dev[300];
  wait_for_root(dev, sizeof dev);
  link_disks_by_id();
  mark("root disk found");

  /* Terminals for PTY execs, and shared memory: useful, not vital. */
  if (try_mount("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "mode=0620,ptmxmode=0666") < 0 ||
      try_mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777") < 0)
    say("cannot mount /dev/pts or /dev/shm: %s", strerror(errno));
  mount_root(dev);
  switch_root();
  mark("root mounted, exec");

  const char *term = getenv("TERM");
  char term_env[64], start_env[64];
  snprintf(term_env, sizeof term_env, "TERM=%s", term && *term ? term : "linux");
  snprintf(start_env, sizeof start_env, "APPLIANCE_INIT_MS=%llu", (unsigned long long)start_ms);
  char *const argv[] = {(char *)init_path, NULL};
  char *const envp[] = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", term_env, start_env,
                        timing ? "APPLIANCE_TIMING=1" : NULL, NULL};
  execve(init_path, argv, envp);
  fatal("cannot run %s from the root disk: %s (appliance.init= names what to run)", init_path,
        strerror(errno));
}
