/*
 * appliance init: PID 1 in the initramfs. Loads the modules that reach the root disk,
 * waits for it, mounts it read-only with tmpfs where the system writes, switches root
 * (freeing the initramfs) and execs the agent. With appliance.snapshot=1 there is a
 * snapshot point after the switch, before the user disks are bound (snapshot-point.h):
 * the agent runs it, any other program named by appliance.init gets it here.
 * The kernel command line it reads is documented in ARCHITECTURE.md. On any fatal error
 * it prints one line and powers off.
 */
#define _GNU_SOURCE
#include "protocol.h"
#define LOG_PREFIX APPL_INIT_LOG_PREFIX
#include "util.h"
#include "snapshot-point.h"

#include <dirent.h>
#include <ftw.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#define NEWROOT "/newroot"

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

/* Kernel command line: the APPL_PARAM_* of contract.h. */
static char cmdline[4096];
static const char *root_spec, *init_path = "/init", *preload;
static int rootwait_s = 10, snapshot_point;

/* The value of a "key=value" token for `key` (which ends with '='), else NULL. */
static const char *param_value(const char *tok, const char *key) {
  size_t n = strlen(key);
  return strncmp(tok, key, n) ? NULL : tok + n;
}

static void parse_cmdline(void) {
  if (read_text("/proc/cmdline", cmdline, sizeof cmdline) < 0)
    fatal("cannot read /proc/cmdline: %s", strerror(errno));
  for (char *tok = strtok(cmdline, " \t\n"); tok; tok = strtok(NULL, " \t\n")) {
    const char *v;
    if ((v = param_value(tok, APPL_PARAM_ROOT))) root_spec = v;
    else if ((v = param_value(tok, APPL_PARAM_INIT))) init_path = v;
    else if ((v = param_value(tok, APPL_PARAM_ROOTWAIT))) rootwait_s = atoi(v);
    else if ((v = param_value(tok, APPL_PARAM_TIMING))) timing = atoi(v) != 0;
    else if ((v = param_value(tok, APPL_PARAM_SNAPSHOT))) snapshot_point = atoi(v) != 0;
    else if ((v = param_value(tok, APPL_PARAM_MODULES))) preload = v;
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

enum transport { NOT_TRANSPORT, PCI, MMIO };

static enum transport transport_of(const char *path) {
  const char *base = strrchr(path, '/');
  base = base ? base + 1 : path;
  if (!strncmp(base, "virtio_pci", 10)) return PCI; /* virtio_pci and its helper modules */
  if (!strncmp(base, "virtio_mmio", 11)) return MMIO;
  return NOT_TRANSPORT;
}

/* The initrd serves every machine, but each has one virtio transport: loading the other's
 * modules costs ~25 ms under TCG for nothing. microvm has no PCI bus; its virtio-mmio
 * devices are the ACPI platform devices LNRO0005 (q35 and pc have none). */
static int transport_unused(enum transport t) {
  if (t == PCI) return !has_entry("/sys/bus/pci/devices", "");
  return !has_entry("/sys/bus/platform/devices", "LNRO0005");
}

/* /modules.order: one module path per line, dependencies first. The virtio transports
 * come in a second pass (transports = 1): with snapshots, after the buses' autoprobe is
 * off, so that loading one binds no device (see bind_devices). */
static void load_modules(int transports) {
  static char list[65536];
  if (read_text("/modules.order", list, sizeof list) < 0) {
    if (errno != ENOENT) say("cannot read /modules.order: %s", strerror(errno));
    return;
  }
  for (char *line = strtok(list, "\n"); line; line = strtok(NULL, "\n")) {
    if (!*line || *line == '#') continue;
    char path[512];
    snprintf(path, sizeof path, "%s%s", *line == '/' ? "" : "/", line);
    enum transport t = transport_of(path);
    if ((t != NOT_TRANSPORT) != transports || (t != NOT_TRANSPORT && transport_unused(t))) continue;
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

/*
 * appliance.modules=a,b,c: modules of the root (filesystems, device-mapper…) loaded now,
 * before the snapshot point, so that a snapshot holds them loaded: under TCG each costs
 * about a second to load in a resumed guest. modprobe of the root resolves dependencies.
 */
static void preload_modules(void) {
  if (!preload || !*preload) return;
  static char list[1024];
  char *argv[64] = {"/sbin/modprobe", "-a", "-q"};
  int argc = 3;
  snprintf(list, sizeof list, "%s", preload);
  for (char *m = strtok(list, ","); m && argc < 63; m = strtok(NULL, ",")) argv[argc++] = m;
  argv[argc] = NULL;
  pid_t pid = fork();
  if (pid == 0) {
    char *const envp[] = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", NULL};
    execve(argv[0], argv, envp);
    _exit(127);
  }
  int status = 0;
  while (pid > 0 && waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
  if (pid < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
    say("preloading modules (%s): modprobe %s", preload, pid < 0 ? strerror(errno) : "failed");
  mark("modules preloaded");
}

/*
 * Reads the root's files into the page cache before the snapshot point, so that the
 * snapshot holds them: a restored VM then runs any program of the root (and our own, the
 * agent and the inspect helper) without reading the root disk. Under TCG a read costs the
 * whole block path's translation in each new qemu (the translated code is not saved):
 * `sh -c 'ls | grep'` in a restored VM took ~12 % fewer translations. Kernel modules are
 * left out (modprobe reads those it loads), and so is what passes PREREAD_MAX: a root
 * given extra large files must not grow every snapshot by their size.
 */
#define PREREAD_MAX (96u << 20)
static size_t preread_total;

static int preread_file(const char *path, const struct stat *st, int type, struct FTW *ftw) {
  (void)ftw;
  static char buf[65536];
  if (type != FTW_F || !S_ISREG(st->st_mode) || strstr(path, "/lib/modules/")) return 0;
  if ((size_t)st->st_size > PREREAD_MAX - preread_total) return 0;
  int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return 0;
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0 && preread_total + (size_t)n <= PREREAD_MAX) preread_total += (size_t)n;
  close(fd);
  return 0;
}

static void read_root_files(void) {
  /* FTW_MOUNT: the root's own files, not /proc, /sys or /dev mounted on it. */
  nftw("/", preread_file, 16, FTW_PHYS | FTW_MOUNT);
  mark("root files read: %zu MiB", preread_total >> 20);
}

/* Why this guest must not be saved, or NULL: what is bound must be the root disk and the
 * guest channel only (a kernel with the transport built in has bound every disk already). */
static const char *snapshot_unsafe(void) {
  static char why[256];
  int root = 0, console = 0, other = 0;
  DIR *d = opendir("/sys/bus/virtio/devices");
  struct dirent *e;
  while (d && (e = readdir(d))) {
    char path[320], id[16], serial[128];
    if (e->d_name[0] == '.') continue;
    snprintf(path, sizeof path, "/sys/bus/virtio/devices/%s/device", e->d_name);
    if (read_text(path, id, sizeof id) < 0) continue;
    if (!strcmp(id, "0x0003")) {
      console++;
      continue;
    }
    snprintf(path, sizeof path, "/sys/bus/virtio/devices/%s/block", e->d_name);
    DIR *blocks = !strcmp(id, "0x0002") ? opendir(path) : NULL;
    struct dirent *b;
    int is_root = 0;
    while (blocks && (b = readdir(blocks)))
      if (b->d_name[0] != '.' && read_serial(b->d_name, serial, sizeof serial) == 0 && !strcmp(serial, root_spec))
        is_root = 1;
    if (blocks) closedir(blocks);
    if (is_root) root++;
    else other++;
  }
  if (d) closedir(d);
  if (root == 1 && console == 1 && other == 0) return NULL;
  snprintf(why, sizeof why,
           "before the snapshot point the guest had %d root disk(s), %d channel(s) and %d other virtio "
           "device(s), not one root disk and one channel (is the virtio transport built into this kernel?)",
           root, console, other);
  return why;
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

static void mount_root(const char *dev) {
  mkdir(NEWROOT, 0755);
  if (mount(dev, NEWROOT, "ext2", MS_RDONLY, NULL) < 0)
    fatal("cannot mount the root disk %s (ext2, read-only) on %s: %s", dev, NEWROOT, strerror(errno));
  static const struct { const char *path, *opts; } tmpfs[] = APPL_TMPFS_MOUNTS;
  for (size_t i = 0; i < sizeof tmpfs / sizeof tmpfs[0]; i++) {
    char path[128];
    snprintf(path, sizeof path, NEWROOT "%s", tmpfs[i].path);
    if (mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, tmpfs[i].opts) < 0)
      say("cannot mount a tmpfs on %s: %s (does the root image have that folder?)", tmpfs[i].path,
          strerror(errno));
  }
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
  static const char *const moved[] = APPL_MOVED_MOUNTS;
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

/* The kernel's filesystems, and the console as stdio (the kernel gives init none when the initramfs lacks /dev/console). */
static void early_mounts(void) {
  mount_or_die("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
  mount_or_die("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
  mount_or_die("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755");
  int con = open("/dev/console", O_RDWR | O_NOCTTY);
  if (con >= 0) {
    for (int fd = 0; fd < 3; fd++)
      if (fd != con) dup2(con, fd);
    if (con > 2) close(con);
  }
}

/* Every module; at a snapshot point only the root disk and the channel get their drivers.
 * Why this boot must not be saved, or NULL. */
static const char *load_and_bind(void) {
  load_modules(0);
  const char *unsafe = NULL;
  if (snapshot_point) {
    set_autoprobe(0);
    load_modules(1);
    bind_devices(2, 0);
    /* The other transports now: a guest that must not be saved binds its disks at once; one
     * that may be leaves their virtio devices driverless until the go line (snapshot-point.h). */
    if ((unsafe = snapshot_unsafe())) set_autoprobe(1);
    else write_text(VIRTIO_BUS "/drivers_autoprobe", "0");
    bind_devices(-1, 0);
  } else {
    load_modules(1);
  }
  mark("modules loaded");
  return unsafe;
}

/* Execs the program of the root (appliance.init), telling it what it must know in its environment. */
static __attribute__((noreturn)) void exec_program(uint64_t start_ms, const char *unsafe) {
  /* The agent runs the snapshot point itself (snapshot-point.h), told so in its
   * environment, so that it is already running in the snapshot: a restored VM does not
   * exec it, ~60 ms under TCG. Any other program gets the point here, before its exec. */
  char point_env[320] = "";
  if (snapshot_point) {
    read_root_files();
    if (strcmp(init_path, APPL_AGENT_PATH)) pass_snapshot_point(unsafe);
    else if (unsafe) snprintf(point_env, sizeof point_env, "%s=%s", APPL_ENV_SNAPSHOT_REFUSED, unsafe);
    else snprintf(point_env, sizeof point_env, "%s=1", APPL_ENV_SNAPSHOT);
  }
  const char *term = getenv("TERM");
  char term_env[64], start_env[64];
  snprintf(term_env, sizeof term_env, "TERM=%s", term && *term ? term : "linux");
  snprintf(start_env, sizeof start_env, "%s=%llu", APPL_ENV_INIT_MS, (unsigned long long)start_ms);
  char *const argv[] = {(char *)init_path, NULL};
  char *envp[8] = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", term_env, start_env};
  size_t n = 4;
  if (timing) envp[n++] = APPL_ENV_TIMING "=1";
  if (*point_env) envp[n++] = point_env;
  envp[n] = NULL;
  execve(init_path, argv, envp);
  fatal("cannot run %s from the root disk: %s (%s names what to run)", init_path, strerror(errno), APPL_PARAM_INIT);
}

int main(void) {
  uint64_t start_ms = clock_ms(CLOCK_BOOTTIME);
  if (getpid() != 1) {
    say("must run as PID 1 (the kernel's init)");
    return 1;
  }
  umask(022);
  early_mounts();
  parse_cmdline();
  mark("init started");
  if (!root_spec) fatal("no %s on the kernel command line: the root disk is unknown", APPL_PARAM_ROOT);
  const char *unsafe = load_and_bind();

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
  preload_modules();
  exec_program(start_ms, unsafe);
}
