/*
 * appliance init: PID 1 in the initramfs. Loads the modules that reach the root disk,
 * waits for it, mounts it read-only with tmpfs where the system writes, switches root
 * (freeing the initramfs) and execs the agent. With appliance.snapshot=1 it stops after
 * the switch, before the user disks are bound, until the launcher's go line (await_go).
 * The kernel command line it reads is documented in ARCHITECTURE.md. On any fatal error
 * it prints one line and powers off.
 */
#define _GNU_SOURCE
#include "protocol.h"
#define LOG_PREFIX APPL_INIT_LOG_PREFIX
#include "util.h"

#include <dirent.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

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
 * off, so that loading one binds no device (see bind_transport_devices). */
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
 * The snapshot point (appliance.snapshot=1): the launcher may save the VM here, and every
 * VM restored from that state resumes here, so what must differ between boots comes
 * after it, on the console, in one line the launcher sends once the guest runs:
 *   appliance.go realtime=SECONDS.NANOSECONDS seed=64HEX timing=0|1 end
 * The wall clock would otherwise be the snapshot's, and the random generator's state
 * would be the same in every restored VM: the seed is credited and the generator
 * reseeded from it.
 */
static uint64_t resume_ms;

static int hexval(char c) {
  return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static int apply_go(char *line) {
  size_t start = strlen(APPL_GO_START);
  if (strncmp(line, APPL_GO_START, start)) return 0;
  long long sec = -1;
  long nsec = -1;
  int go_timing = -1, end = 0;
  struct {
    int entropy_count, buf_size;
    unsigned char buf[APPL_GO_SEED_BYTES];
  } seed = {APPL_GO_SEED_BYTES * 8, APPL_GO_SEED_BYTES, {0}};
  int seeded = 0;
  for (char *tok = strtok(line + start, " \n"); tok; tok = strtok(NULL, " \n")) {
    if (!strncmp(tok, "realtime=", 9)) {
      char *dot;
      sec = strtoll(tok + 9, &dot, 10);
      if (*dot == '.') nsec = strtol(dot + 1, NULL, 10);
    } else if (!strncmp(tok, "seed=", 5) && strlen(tok + 5) == 2 * APPL_GO_SEED_BYTES) {
      seeded = 1;
      for (int i = 0; i < APPL_GO_SEED_BYTES; i++) {
        int hi = hexval(tok[5 + 2 * i]), lo = hexval(tok[6 + 2 * i]);
        if (hi < 0 || lo < 0) seeded = 0;
        seed.buf[i] = (unsigned char)(hi << 4 | lo);
      }
    } else if (!strncmp(tok, "timing=", 7)) {
      go_timing = atoi(tok + 7) != 0;
    } else if (!strcmp(tok, APPL_GO_END)) {
      end = 1;
    }
  }
  /* Anything else typed on the console, or a line cut short, is not a go. */
  if (!end || sec < 0 || nsec < 0 || nsec > 999999999 || !seeded || go_timing < 0) return 0;
  struct timespec now = {(time_t)sec, nsec};
  if (clock_settime(CLOCK_REALTIME, &now) < 0) say("cannot set the clock: %s", strerror(errno));
  int rnd = open("/dev/urandom", O_WRONLY | O_CLOEXEC);
  if (rnd < 0 || ioctl(rnd, _IOW('R', 0x03, int[2]), &seed) < 0 || ioctl(rnd, _IO('R', 0x07)) < 0)
    say("cannot seed the random generator: %s", strerror(errno));
  if (rnd >= 0) close(rnd);
  timing = go_timing;
  return 1;
}

static void await_go(const char *unsafe) {
  struct termios t;
  /* Canonical input, one line per read; no echo, or the line would show on the console. */
  if (tcgetattr(0, &t) == 0) {
    t.c_lflag |= ICANON;
    t.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
    tcsetattr(0, TCSANOW, &t);
  }
  if (unsafe) say("%s%s", APPL_LINE_NO_SNAPSHOT, unsafe);
  else say("%s", APPL_LINE_SNAPSHOT);
  tcdrain(2);
  static char line[1024];
  for (;;) {
    ssize_t n = read(0, line, sizeof line - 1);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) fatal("the console closed before the launcher's go line (%s)", n < 0 ? strerror(errno) : "end of file");
    line[n] = '\0';
    if (apply_go(line)) break;
  }
  resume_ms = clock_ms(CLOCK_BOOTTIME);
  say("%s", APPL_LINE_RESUMED);
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

/*
 * Which devices are bound before the snapshot point. With the buses' autoprobe off, the
 * transport drivers load without binding anything; the init then binds the first two
 * virtio transport devices, which the launcher attaches first: the root disk and the
 * guest channel. Their probing (slow under TCG) is in the snapshot; the user disks are
 * bound after the point, so a restored VM sees the disks of its own boot.
 */
static const char *const transport_buses[] = {"platform", "pci"};

static int write_text(const char *path, const char *text) {
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n = write(fd, text, strlen(text));
  close(fd);
  return n == (ssize_t)strlen(text) ? 0 : -1;
}

static void set_autoprobe(int on) {
  for (size_t i = 0; i < sizeof transport_buses / sizeof transport_buses[0]; i++) {
    char path[64];
    snprintf(path, sizeof path, "/sys/bus/%s/drivers_autoprobe", transport_buses[i]);
    write_text(path, on ? "1" : "0");
  }
}

/* A virtio-mmio device (ACPI LNRO0005) or a virtio PCI function (vendor 0x1af4). */
static int is_transport_device(const char *bus, const char *name) {
  if (!strcmp(bus, "platform")) return !strncmp(name, "LNRO0005", 8);
  char path[320], vendor[16];
  snprintf(path, sizeof path, "/sys/bus/pci/devices/%s/vendor", name);
  return read_text(path, vendor, sizeof vendor) == 0 && !strcmp(vendor, "0x1af4");
}

/* Binds the transport devices that have no driver yet, in name order: `limit` of them, or all (-1). */
static void bind_transport_devices(int limit) {
  int bound = 0;
  for (size_t b = 0; b < sizeof transport_buses / sizeof transport_buses[0]; b++) {
    char dir[64], probe[64];
    snprintf(dir, sizeof dir, "/sys/bus/%s/devices", transport_buses[b]);
    snprintf(probe, sizeof probe, "/sys/bus/%s/drivers_probe", transport_buses[b]);
    struct dirent **names;
    int n = scandir(dir, &names, NULL, alphasort);
    for (int i = 0; i < n; i++) {
      char driver[400];
      struct stat st;
      const char *name = names[i]->d_name;
      snprintf(driver, sizeof driver, "%s/%s/driver", dir, name);
      if ((limit < 0 || bound < limit) && name[0] != '.' && is_transport_device(transport_buses[b], name) &&
          lstat(driver, &st) < 0 && write_text(probe, name) == 0)
        bound++;
      free(names[i]);
    }
    if (n >= 0) free(names);
  }
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
    snprintf(link, sizeof link, APPL_BY_ID_PREFIX "%s", serial);
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
  if (!root_spec) fatal("no %s on the kernel command line: the root disk is unknown", APPL_PARAM_ROOT);

  load_modules(0);
  const char *unsafe = NULL;
  if (snapshot_point) {
    set_autoprobe(0);
    load_modules(1);
    bind_transport_devices(2);
    if ((unsafe = snapshot_unsafe())) {
      set_autoprobe(1);
      bind_transport_devices(-1);
    }
  } else {
    load_modules(1);
  }
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
  preload_modules();
  if (snapshot_point) {
    mark("snapshot point");
    await_go(unsafe);
    mark("go line applied");
    if (!unsafe) {
      set_autoprobe(1);
      bind_transport_devices(-1);
      link_disks_by_id();
      mark("user disks bound");
    }
  }

  const char *term = getenv("TERM");
  char term_env[64], start_env[64], resume_env[64];
  snprintf(term_env, sizeof term_env, "TERM=%s", term && *term ? term : "linux");
  snprintf(start_env, sizeof start_env, "APPLIANCE_INIT_MS=%llu", (unsigned long long)start_ms);
  snprintf(resume_env, sizeof resume_env, "APPLIANCE_RESUME_MS=%llu", (unsigned long long)resume_ms);
  char *const argv[] = {(char *)init_path, NULL};
  char *const envp[] = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", term_env, start_env, resume_env,
                        timing ? "APPLIANCE_TIMING=1" : NULL, NULL};
  execve(init_path, argv, envp);
  fatal("cannot run %s from the root disk: %s (%s names what to run)", init_path, strerror(errno),
        APPL_PARAM_INIT);
}
