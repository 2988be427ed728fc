/*
 * The snapshot point and what follows it, shared by the init (which binds the root disk
 * and the channel before it) and the agent (which runs the point itself when the init
 * execs it there: see init.c). Include after util.h.
 */
#ifndef APPLIANCE_SNAPSHOT_POINT_H
#define APPLIANCE_SNAPSHOT_POINT_H

#include <dirent.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

/* 1: print a timing mark at each step (the kernel command line, or the go line). */
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
 * guest channel. Their probing (slow under TCG) is in the snapshot. Then the user disk
 * slots' transports, with the virtio bus's autoprobe off: their virtio devices exist but
 * have no driver (nothing of the disk behind them was read), and after the point the
 * agent binds virtio_blk to those of the disks of its own boot (~15 ms less per boot with
 * disks than probing their transports then).
 */
#define VIRTIO_BUS "/sys/bus/virtio"

static const char *const transport_buses[] = {"platform", "pci"};

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

/* The virtio device on transport device `dir` (its child virtioN), into name; -1 if none. */
static int virtio_child(const char *dir, char *name, size_t size) {
  DIR *d = opendir(dir);
  if (!d) return -1;
  struct dirent *e;
  int found = -1;
  while (found < 0 && (e = readdir(d)))
    if (!strncmp(e->d_name, "virtio", 6) && e->d_name[6] >= '0' && e->d_name[6] <= '9' && strlen(e->d_name) < size) {
      strcpy(name, e->d_name);
      found = 0;
    }
  closedir(d);
  return found;
}

/*
 * Binds a driver to devices that have none, in their transports' name order: `limit` of
 * them, or all (-1). The transport devices themselves, or (virtio) the virtio device on
 * each, which its transport's probe registered.
 */
static void bind_devices(int limit, int virtio) {
  int bound = 0;
  for (size_t b = 0; b < sizeof transport_buses / sizeof transport_buses[0] && (limit < 0 || bound < limit); b++) {
    char dir[64], bus[64], probe[96];
    snprintf(dir, sizeof dir, "/sys/bus/%s/devices", transport_buses[b]);
    if (virtio) snprintf(bus, sizeof bus, "%s", VIRTIO_BUS);
    else snprintf(bus, sizeof bus, "/sys/bus/%s", transport_buses[b]);
    snprintf(probe, sizeof probe, "%s/drivers_probe", bus);
    struct dirent **names;
    int n = scandir(dir, &names, NULL, alphasort);
    for (int i = 0; i < n; i++) {
      char path[400], target[64], driver[400];
      struct stat st;
      const char *name = names[i]->d_name;
      snprintf(path, sizeof path, "%s/%s", dir, name);
      int ok = (limit < 0 || bound < limit) && name[0] != '.' && is_transport_device(transport_buses[b], name);
      if (ok && virtio) ok = virtio_child(path, target, sizeof target) == 0;
      else if (ok) ok = snprintf(target, sizeof target, "%s", name) < (int)sizeof target;
      if (ok) snprintf(driver, sizeof driver, "%s/devices/%s/driver", bus, target);
      if (ok && lstat(driver, &st) < 0 && write_text(probe, target) == 0) bound++;
      free(names[i]);
    }
    if (n >= 0) free(names);
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

/*
 * The snapshot point (appliance.snapshot=1): the launcher may save the VM here, and every
 * VM restored from that state resumes here, so what must differ between boots comes
 * after it, on the console, in one line the launcher sends once the guest runs:
 *   appliance.go realtime=SECONDS.NANOSECONDS seed=64HEX timing=0|1 disks=N end
 * The wall clock would otherwise be the snapshot's, and the random generator's state
 * would be the same in every restored VM: the seed is credited and the generator
 * reseeded from it.
 */
static uint64_t resume_ms;
/* How many user disk slots hold this boot's disks (the go line's disks=): the rest are stand-ins, left unbound. */
static int go_disks;

/* The snapshot point's lines are the init's in the contract (initLine), whichever program says them. */
static __attribute__((format(printf, 1, 2))) void say_as_init(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsay_as(APPL_INIT_LOG_PREFIX, "", fmt, ap);
  va_end(ap);
}

static int hexval(char c) {
  return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static int apply_go(char *line) {
  size_t start = strlen(APPL_GO_START);
  if (strncmp(line, APPL_GO_START, start)) return 0;
  long long sec = -1;
  long nsec = -1;
  int go_timing = -1, end = 0;
  long disks = -1;
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
    } else if (!strncmp(tok, "disks=", 6)) {
      char *stop;
      disks = strtol(tok + 6, &stop, 10);
      if (*stop) disks = -1;
    } else if (!strcmp(tok, APPL_GO_END)) {
      end = 1;
    }
  }
  /* Anything else typed on the console, or a line cut short, is not a go. */
  if (!end || sec < 0 || nsec < 0 || nsec > 999999999 || !seeded || go_timing < 0 || disks < 0 || disks > 4096) return 0;
  struct timespec now = {(time_t)sec, nsec};
  if (clock_settime(CLOCK_REALTIME, &now) < 0) say("cannot set the clock: %s", strerror(errno));
  int rnd = open("/dev/urandom", O_WRONLY | O_CLOEXEC);
  if (rnd < 0 || ioctl(rnd, _IOW('R', 0x03, int[2]), &seed) < 0 || ioctl(rnd, _IO('R', 0x07)) < 0)
    say("cannot seed the random generator: %s", strerror(errno));
  if (rnd >= 0) close(rnd);
  timing = go_timing;
  go_disks = (int)disks;
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
  if (unsafe) say_as_init("%s%s", APPL_LINE_NO_SNAPSHOT, unsafe);
  else say_as_init("%s", APPL_LINE_SNAPSHOT);
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
  say_as_init("%s", APPL_LINE_RESUMED);
}

/*
 * The snapshot point: say so (or why this guest must not be saved: `refused`), wait for
 * the go line, then bind virtio_blk to the user disks, which are attached to this boot and
 * not to the one the snapshot was saved from: the first `disks=` slots (the others hold
 * stand-ins, never driven). A refused guest bound them all before the point.
 */
static void pass_snapshot_point(const char *refused) {
  mark("snapshot point");
  await_go(refused);
  mark("go line applied");
  if (refused) return;
  set_autoprobe(1);
  bind_devices(go_disks, 1);
  write_text(VIRTIO_BUS "/drivers_autoprobe", "1");
  link_disks_by_id();
  mark("user disks bound");
}

#endif
