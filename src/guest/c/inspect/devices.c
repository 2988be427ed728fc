/* Block devices (sysfs) and raw reads of their bytes, which the host parses (src/inspect/probe). */
#include "inspect.h"

#include <dirent.h>

/* A small sysfs file, trailing whitespace removed; NULL if it cannot be read. */
static char *sysfs(const char *dir, const char *name, char *buf, size_t size) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return NULL;
  ssize_t n = read(fd, buf, size - 1);
  close(fd);
  if (n < 0) return NULL;
  while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' ')) n--;
  buf[n] = '\0';
  return buf;
}

static void list_slaves(const char *dir) {
  char path[512], all[1024] = "";
  size_t len = 0;
  snprintf(path, sizeof path, "%s/slaves", dir);
  DIR *d = opendir(path);
  struct dirent *e;
  while (d && (e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    int n = snprintf(all + len, sizeof all - len, "%s%s", len ? "," : "", e->d_name);
    if (n < 0 || (size_t)n >= sizeof all - len) break;
    len += (size_t)n;
  }
  if (d) closedir(d);
  if (len) field(APPL_FIELD_SLAVES, all);
}

int cmd_devices(int argc, char **argv) {
  (void)argc, (void)argv;
  DIR *d = opendir("/sys/class/block");
  if (!d) fatal("cannot list /sys/class/block: %s", strerror(errno));
  struct dirent *e;
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    char dir[320], link[512], buf[256];
    snprintf(dir, sizeof dir, "/sys/class/block/%s", e->d_name);
    if (!sysfs(dir, "size", buf, sizeof buf) || !strcmp(buf, "0")) continue;
    field(APPL_FIELD_NAME, e->d_name);
    field(APPL_FIELD_DEV, sysfs(dir, "dev", buf, sizeof buf));
    field(APPL_FIELD_SECTORS, sysfs(dir, "size", buf, sizeof buf));
    field(APPL_FIELD_RO, sysfs(dir, "ro", buf, sizeof buf));
    if (sysfs(dir, "partition", buf, sizeof buf)) {
      field(APPL_FIELD_PARTITION, buf);
      field(APPL_FIELD_START, sysfs(dir, "start", buf, sizeof buf));
      ssize_t n = readlink(dir, link, sizeof link - 1);
      if (n > 0) {
        link[n] = '\0';
        char *slash = strrchr(link, '/');
        if (slash) *slash = '\0';
        slash = strrchr(link, '/');
        field(APPL_FIELD_PARENT, slash ? slash + 1 : link);
      }
    } else {
      field(APPL_FIELD_SERIAL, sysfs(dir, "serial", buf, sizeof buf));
      field(APPL_FIELD_SECTOR_SIZE, sysfs(dir, "queue/logical_block_size", buf, sizeof buf));
    }
    field(APPL_FIELD_DM_NAME, sysfs(dir, "dm/name", buf, sizeof buf));
    field(APPL_FIELD_DM_UUID, sysfs(dir, "dm/uuid", buf, sizeof buf));
    field(APPL_FIELD_MD_LEVEL, sysfs(dir, "md/level", buf, sizeof buf));
    list_slaves(dir);
    end_line();
  }
  closedir(d);
  return 0;
}

/*
 * The ranges are asked for first (POSIX_FADV_WILLNEED queues their reads and returns), so
 * that a probe's reads, at the starts and ends of every device, are in flight together
 * and qemu serves them in parallel, instead of one disk request after another. In batches,
 * so that a long list holds a bounded number of descriptors open.
 */
#define READ_BATCH 64
int cmd_read(int argc, char **argv) {
  if (argc % 3) fatal("read: give DEV OFF LEN triples");
  static unsigned char buf[1 << 20];
  for (int first = 0; first < argc; first += 3 * READ_BATCH) {
    struct {
      int fd;
      off_t off;
      size_t len;
    } r[READ_BATCH];
    int n = 0;
    for (int i = first; i < argc && n < READ_BATCH; i += 3, n++) {
      unsigned long long len = strtoull(argv[i + 2], NULL, 10);
      r[n].off = (off_t)strtoull(argv[i + 1], NULL, 10);
      r[n].len = len > sizeof buf ? sizeof buf : (size_t)len;
      r[n].fd = open(argv[i], O_RDONLY | O_CLOEXEC);
      if (r[n].fd >= 0) posix_fadvise(r[n].fd, r[n].off, (off_t)r[n].len, POSIX_FADV_WILLNEED);
    }
    for (int j = 0; j < n; j++) {
      size_t got = 0;
      while (r[j].fd >= 0 && got < r[j].len) {
        ssize_t k = pread(r[j].fd, buf + got, r[j].len - got, r[j].off + (off_t)got);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) break;
        got += (size_t)k;
      }
      if (r[j].fd >= 0) close(r[j].fd);
      put_bytes(buf, got);
    }
  }
  return 0;
}
