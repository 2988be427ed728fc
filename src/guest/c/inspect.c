/*
 * appliance inspect: the guest side of disk inspection (src/inspect on the host). It only
 * reads and mounts; what the bytes mean is decided on the host. Static, so each call costs
 * no dynamic loading under TCG. Every path inside an inspected filesystem is resolved with
 * openat2(RESOLVE_IN_ROOT), so its symlinks (absolute ones too) stay inside it, and `..`
 * cannot leave it: a hostile image cannot make us read the appliance's own files.
 *
 *   inspect devices                         block devices, one line each (key=value, %XX escapes)
 *   inspect read DEV OFF LEN [DEV OFF LEN]… for each range: u32 length read, the bytes
 *   inspect mount DEV DIR TYPE OPTS [...]…  read-only mounts, one status line each (with its statfs)
 *   inspect umount DIR…                     one status line each
 *   inspect statfs DIR…                     one line each
 *   inspect walk ROOT PATH FLAGS DEPTH      records of PATH and below (see the record layout)
 *   inspect cat ROOT PATH                   a regular file's content (failing, exit status 64 + errno)
 *   inspect read-files [LIMIT ROOT N PATH…]… for each path: i32 errno, u64 length, the bytes (at most LIMIT)
 *   inspect btrfs-forget                    forget the btrfs devices that are not mounted
 *
 * Walk record (little endian): u8 'E', u8 type (f d l c b p s), u32 mode, u32 uid, u32 gid,
 * u32 nlink, u64 size, u64 blocks (512 B), u64 ino, u32 rdev major, u32 rdev minor,
 * i64+u32 atime, i64+u32 mtime, i64+u32 ctime, u32+bytes path (in the filesystem, from /),
 * u32+bytes symlink target, u8 hashed, [32 bytes sha256]. An entry that cannot be read:
 * u8 'X', i32 errno, u32+bytes path. FLAGS: a string of letters: h (hash regular files),
 * f (follow PATH itself if it is a symlink), x (stay on PATH's filesystem: its mount, btrfs
 * subvolumes included), c (content:
 * after each regular file's record, its data as extents — u64 offset, u64 length, the
 * bytes, at most 64 KiB each — found with SEEK_DATA, so holes are not sent; then u64
 * ~0, and u32 errno (0: the whole file was read). A file whose inode was sent already
 * (a hard link) sends no extent.), b (with c: a regular file of at least BIG_FILE bytes
 * with no holes sends u64 ~1 instead of its extents: the host reads it by itself, through
 * the agent's file reads, which splice a file to the port ~3x faster than a pipe can).
 *
 * Mounts: TYPE is a kernel filesystem type for mount(2), or APPL_FUSE_TYPE_PREFIX and the
 * name of a FUSE driver program of the appliance ("fuse:ntfs-3g"), run as
 * `PROGRAM -o ro,nosuid,nodev,noexec[,OPTS] DEV DIR`. A status line: dir, errno (a driver
 * that fails: EINVAL, or ENOENT when it is not in the appliance), kernel (what the kernel
 * said while the mount failed; for a driver, what it printed and how it ended), and the
 * statfs fields once mounted.
 */
#define _GNU_SOURCE
#include "protocol.h"
#define LOG_PREFIX APPL_INSPECT_LOG_PREFIX
#include "util.h"
#include "sha256.h"
#include "serve.h"

#include <dirent.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>

/* openat2(2): musl has no wrapper, and the kernel headers are not in musl's include path. */
#ifndef SYS_openat2
#define SYS_openat2 437
#endif
struct open_how_ {
  uint64_t flags, mode, resolve;
};
#define RESOLVE_NO_MAGICLINKS 0x02
#define RESOLVE_IN_ROOT 0x10

static int open_in_root(int rootfd, const char *path, int flags) {
  struct open_how_ how = {(uint64_t)(flags | O_CLOEXEC), 0, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS};
  return (int)syscall(SYS_openat2, rootfd, *path ? path : ".", &how, sizeof how);
}

/* ---- output ---- */

static unsigned char obuf[1 << 16];
static size_t ofill;

static void flush_out(void) {
  size_t off = 0;
  while (off < ofill) {
    ssize_t n = write(1, obuf + off, ofill - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) exit(3); /* the host stopped reading */
    off += (size_t)n;
  }
  ofill = 0;
}

static void put(const void *p, size_t n) {
  const unsigned char *b = p;
  while (n > 0) {
    if (ofill == sizeof obuf) flush_out();
    size_t take = sizeof obuf - ofill < n ? sizeof obuf - ofill : n;
    memcpy(obuf + ofill, b, take);
    ofill += take, b += take, n -= take;
  }
}

/*
 * `n` bytes of `fd` from `at` onto stdout, after what put() holds: spliced when stdout is
 * a pipe (the agent's), so file data is never copied through this process (under TCG each
 * copy of a large file costs ~1 s per 256 MiB); read into the output buffer otherwise.
 * Returns the bytes sent: fewer than `n` only when the file ended early or a read failed
 * (errno set).
 */
#define SPLICE_MIN (32 << 10)
static int piped = -1; /* stdout is a pipe: 1, is not: 0, not looked at yet (each command): -1 */
static size_t send_range(int fd, off_t at, size_t n) {
  if (piped < 0) {
    struct stat st;
    piped = fstat(1, &st) == 0 && S_ISFIFO(st.st_mode);
  }
  size_t sent = 0;
  /* Small ranges are copied into the output buffer instead: a splice of its own would make
   * each small file a write of its own, which the agent sends as frames of their own. */
  if (piped && n >= SPLICE_MIN) {
    flush_out();
    while (sent < n) {
      loff_t off = at + (off_t)sent;
      ssize_t k = splice(fd, &off, 1, NULL, n - sent, SPLICE_F_MORE);
      if (k < 0 && errno == EINTR) continue;
      if (k < 0 && (errno == EINVAL || errno == ENOSYS) && sent == 0) { /* not spliceable: read below */
        errno = 0;
        break;
      }
      if (k < 0 && errno == EPIPE) exit(3); /* the host stopped reading */
      if (k <= 0) return sent;
      sent += (size_t)k;
    }
    if (sent == n) return sent;
  }
  while (sent < n) {
    if (ofill == sizeof obuf) flush_out();
    size_t room = sizeof obuf - ofill;
    size_t want = n - sent < room ? n - sent : room;
    ssize_t k = pread(fd, obuf + ofill, want, at + (off_t)sent);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) return sent;
    ofill += (size_t)k;
    sent += (size_t)k;
  }
  return sent;
}

/* `n` zero bytes: the rest of an extent whose file ended early, so the stream stays whole. */
static void put_zeros(size_t n) {
  static const unsigned char zeros[4096];
  while (n > 0) {
    size_t k = n < sizeof zeros ? n : sizeof zeros;
    put(zeros, k);
    n -= k;
  }
}

static void put8(unsigned v) {
  unsigned char b = (unsigned char)v;
  put(&b, 1);
}
static void put32(uint32_t v) {
  unsigned char b[4];
  appl_put32(b, v);
  put(b, 4);
}
static void put64(uint64_t v) {
  put32((uint32_t)v);
  put32((uint32_t)(v >> 32));
}
static void put_bytes(const void *p, size_t n) {
  put32((uint32_t)n);
  put(p, n);
}

/* Text fields: bytes outside printable ASCII, and % = tab, as %XX. */
static void put_escaped(const char *s, size_t n) {
  static const char hex[] = "0123456789ABCDEF";
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c <= 0x20 || c >= 0x7f || c == '%' || c == '=') {
      char e[3] = {'%', hex[c >> 4], hex[c & 15]};
      put(e, 3);
    } else {
      put(&c, 1);
    }
  }
}
static void field(const char *key, const char *value) {
  if (!value) return;
  put(key, strlen(key));
  put("=", 1);
  put_escaped(value, strlen(value));
  put("\t", 1);
}
static void field_u64(const char *key, uint64_t v) {
  char b[32];
  snprintf(b, sizeof b, "%llu", (unsigned long long)v);
  field(key, b);
}
static void end_line(void) {
  put("\n", 1);
}

/* ---- devices ---- */

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
  if (len) field("slaves", all);
}

static int cmd_devices(void) {
  DIR *d = opendir("/sys/class/block");
  if (!d) fatal("cannot list /sys/class/block: %s", strerror(errno));
  struct dirent *e;
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    char dir[320], link[512], buf[256];
    snprintf(dir, sizeof dir, "/sys/class/block/%s", e->d_name);
    if (!sysfs(dir, "size", buf, sizeof buf) || !strcmp(buf, "0")) continue;
    field("name", e->d_name);
    field("dev", sysfs(dir, "dev", buf, sizeof buf));
    field("sectors", sysfs(dir, "size", buf, sizeof buf));
    field("ro", sysfs(dir, "ro", buf, sizeof buf));
    if (sysfs(dir, "partition", buf, sizeof buf)) {
      field("partition", buf);
      field("start", sysfs(dir, "start", buf, sizeof buf));
      ssize_t n = readlink(dir, link, sizeof link - 1);
      if (n > 0) {
        link[n] = '\0';
        char *slash = strrchr(link, '/');
        if (slash) *slash = '\0';
        slash = strrchr(link, '/');
        field("parent", slash ? slash + 1 : link);
      }
    } else {
      field("serial", sysfs(dir, "serial", buf, sizeof buf));
      field("sector_size", sysfs(dir, "queue/logical_block_size", buf, sizeof buf));
    }
    field("dm_name", sysfs(dir, "dm/name", buf, sizeof buf));
    field("dm_uuid", sysfs(dir, "dm/uuid", buf, sizeof buf));
    field("md_level", sysfs(dir, "md/level", buf, sizeof buf));
    list_slaves(dir);
    end_line();
  }
  closedir(d);
  return 0;
}

/* ---- raw reads ---- */

/*
 * The ranges are asked for first (POSIX_FADV_WILLNEED queues their reads and returns), so
 * that a probe's reads, at the starts and ends of every device, are in flight together
 * and qemu serves them in parallel, instead of one disk request after another. In batches,
 * so that a long list holds a bounded number of descriptors open.
 */
#define READ_BATCH 64
static int cmd_read(int argc, char **argv) {
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

/* ---- mounts ---- */

/* What a mount's kernel or driver said: at most this much. */
#define SAID_MAX 2048

/* The kernel's messages since `from` (an open /dev/kmsg), as one escaped field. */
static void kernel_says(int kmsg) {
  char rec[1024], all[SAID_MAX] = "";
  size_t len = 0;
  ssize_t n;
  while (kmsg >= 0 && (n = read(kmsg, rec, sizeof rec - 1)) > 0) {
    rec[n] = '\0';
    char *text = strchr(rec, ';'); /* "prio,seq,time,flags;message\n" */
    if (!text) continue;
    text++;
    text[strcspn(text, "\n")] = '\0';
    int w = snprintf(all + len, sizeof all - len, "%s%s", len ? " / " : "", text);
    if (w < 0 || (size_t)w >= sizeof all - len) break;
    len += (size_t)w;
  }
  if (len) field("kernel", all);
}

static void mkdirs(const char *path) {
  char p[4096];
  snprintf(p, sizeof p, "%s", path);
  for (char *s = p + 1; *s; s++)
    if (*s == '/') {
      *s = '\0';
      mkdir(p, 0755);
      *s = '/';
    }
  mkdir(p, 0755);
}

/* A mounted filesystem's size and use, as fields of the current line. */
static int statfs_fields(const char *dir) {
  struct statfs s;
  if (statfs(dir, &s) < 0) return errno;
  field_u64("frsize", (uint64_t)s.f_frsize);
  field_u64("blocks", (uint64_t)s.f_blocks);
  field_u64("bfree", (uint64_t)s.f_bfree);
  field_u64("bavail", (uint64_t)s.f_bavail);
  field_u64("files", (uint64_t)s.f_files);
  field_u64("ffree", (uint64_t)s.f_ffree);
  return 0;
}

/* ---- FUSE drivers ---- */

/* Where a driver program is looked for: the agent's PATH, whatever the environment says. */
static const char *const FUSE_DIRS[] = {"/usr/sbin", "/usr/bin", "/sbin", "/bin"};

/* A driver's output as one line (its lines joined by " / "), and how it ended, in `said`. */
static void driver_said(char *said, const char *raw, size_t n, const char *ending) {
  size_t len = 0;
  while (n && (raw[n - 1] == '\n' || raw[n - 1] == ' ')) n--;
  for (size_t i = 0; i < n && len + 4 < SAID_MAX; i++) {
    if (raw[i] != '\n') said[len++] = raw[i];
    else len += (size_t)snprintf(said + len, 4, " / ");
  }
  snprintf(said + len, SAID_MAX - len, "%s%s", len && *ending ? " " : "", ending);
}

/*
 * Mounts DEV on DIR read-only with the FUSE driver `program`; `said` gets what it printed.
 * Such a driver (ntfs-3g) mounts, then daemonizes: its first process exits 0 once the mount
 * is made, and the daemon, in a session of its own with /dev/null as its stdio (which ends
 * the pipe read here), serves the mount until it is gone; orphaned, it is PID 1's to reap.
 * Returns 0 or an errno.
 */
static int fuse_mount(const char *program, const char *dev, const char *dir, const char *opts, char *said) {
  said[0] = '\0';
  char path[256] = "";
  for (size_t i = 0; i < sizeof FUSE_DIRS / sizeof *FUSE_DIRS && !strchr(program, '/'); i++) {
    snprintf(path, sizeof path, "%s/%s", FUSE_DIRS[i], program);
    if (access(path, X_OK) == 0) break;
    path[0] = '\0';
  }
  if (!path[0]) {
    snprintf(said, SAID_MAX, "%s is not a program of the appliance", program);
    return ENOENT;
  }
  char options[1024];
  snprintf(options, sizeof options, "ro,nosuid,nodev,noexec%s%s", *opts ? "," : "", opts);
  int out[2];
  if (pipe2(out, O_CLOEXEC) < 0) return errno;
  pid_t pid = fork();
  if (pid == 0) {
    int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (null < 0 || dup2(null, 0) < 0 || dup2(out[1], 1) < 0 || dup2(out[1], 2) < 0) _exit(127);
    char *args[] = {(char *)program, "-o", options, (char *)dev, (char *)dir, NULL};
    char *env[] = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", NULL};
    execve(path, args, env);
    dprintf(2, "cannot run %s: %s\n", path, strerror(errno));
    _exit(127);
  }
  int err = pid < 0 ? errno : 0;
  close(out[1]);
  char raw[SAID_MAX];
  size_t len = 0;
  while (pid > 0) {
    char buf[512];
    ssize_t n = read(out[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    for (ssize_t i = 0; i < n && len < sizeof raw; i++) raw[len++] = buf[i]; /* the rest is read and dropped */
  }
  close(out[0]);
  int status = 0;
  while (pid > 0 && waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
  if (err || (WIFEXITED(status) && WEXITSTATUS(status) == 0)) return err;
  char ending[64];
  if (WIFSIGNALED(status)) snprintf(ending, sizeof ending, "(killed by signal %d)", WTERMSIG(status));
  else snprintf(ending, sizeof ending, "(exit status %d)", WEXITSTATUS(status));
  driver_said(said, raw, len, ending);
  return EINVAL;
}

static int is_fuse_type(const char *t) {
  return !strcmp(t, "fuse") || !strcmp(t, "fuseblk") || !strncmp(t, "fuse.", 5) || !strncmp(t, "fuseblk.", 8);
}

/* mountinfo's escapes (\040 for a space…) undone in place. */
static void unescape(char *s) {
  char *w = s;
  for (char *r = s; *r; w++) {
    if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3' && r[2] >= '0' && r[2] <= '7' && r[3] >= '0' && r[3] <= '7') {
      *w = (char)((r[1] - '0') * 64 + (r[2] - '0') * 8 + (r[3] - '0'));
      r += 4;
    } else {
      *w = *r++;
    }
  }
  *w = '\0';
}

/* The FUSE connection of the mount on `dir` (its name under /sys/fs/fuse/connections: the
 * superblock's device number as the kernel encodes it), 0 when that is no FUSE mount. Read
 * from mountinfo: a stat of the folder would wait on a stuck driver. */
static unsigned fuse_connection(const char *dir) {
  FILE *f = fopen("/proc/self/mountinfo", "re");
  char *line = NULL;
  size_t cap = 0;
  unsigned conn = 0;
  while (f && getline(&line, &cap, f) > 0) {
    /* ID PARENT MAJ:MIN ROOT POINT OPTIONS [OPTIONAL…] - TYPE SOURCE SUPEROPTIONS */
    unsigned maj, min;
    char point[4096], type[64];
    const char *dash = strstr(line, " - ");
    if (!dash || sscanf(line, "%*u %*u %u:%u %*s %4095s", &maj, &min, point) != 3 || sscanf(dash + 3, "%63s", type) != 1) continue;
    unescape(point);
    /* The last line for a folder is the mount on top. */
    if (!strcmp(point, dir)) conn = is_fuse_type(type) ? (maj << 20) | min : 0;
  }
  free(line);
  if (f) fclose(f);
  return conn;
}

/* How long an unmount waits for a FUSE driver before it ends the driver's connection. */
#define FUSE_UMOUNT_WAIT_MS 2000

/* Ends a FUSE connection: the requests waiting on its driver fail, and the driver leaves
 * when its /dev/fuse read fails. */
static void fuse_abort(unsigned conn) {
  /* fusectl goes where the fuse module made its folder; mounted once (EBUSY after that). */
  mount("fusectl", "/sys/fs/fuse/connections", "fusectl", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
  char path[96];
  snprintf(path, sizeof path, "/sys/fs/fuse/connections/%u/abort", conn);
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return;
  while (write(fd, "1", 1) < 0 && errno == EINTR) {}
  close(fd);
}

/*
 * umount2(dir), returning 0 or an errno. For the last mount of a FUSE filesystem the kernel
 * waits for the driver's answer to DESTROY, which a stuck driver never gives: so that runs
 * in a child, and after FUSE_UMOUNT_WAIT_MS the connection is ended, which ends the wait.
 * The mounts are read-only: a driver cut off has nothing to write back. A mount in use
 * still fails at once (EBUSY), its driver untouched.
 */
static int umount_dir(const char *dir) {
  unsigned conn = fuse_connection(dir);
  if (!conn) return umount2(dir, 0) < 0 ? errno : 0;
  pid_t pid = fork();
  if (pid == 0) {
    /* Not the helper's stdio: the agent waits for its end, and this child may outlive it. */
    close(0), close(1), close(2);
    _exit(umount2(dir, 0) < 0 ? errno : 0);
  }
  if (pid < 0) return errno;
  int status = 0, waited = 0;
  pid_t r;
  while ((r = waitpid(pid, &status, WNOHANG)) == 0 || (r < 0 && errno == EINTR)) {
    if (waited == FUSE_UMOUNT_WAIT_MS) fuse_abort(conn);
    if (waited == 2 * FUSE_UMOUNT_WAIT_MS) return ETIMEDOUT; /* the child is PID 1's if it ever ends */
    usleep(10000);
    waited += 10;
  }
  return r < 0 ? errno : WIFEXITED(status) ? WEXITSTATUS(status) : EINTR;
}

static int cmd_mount(int argc, char **argv) {
  if (argc % 4) fatal("mount: give DEV DIR TYPE OPTS quadruples");
  const size_t prefix = strlen(APPL_FUSE_TYPE_PREFIX);
  for (int i = 0; i < argc; i += 4) {
    const char *dev = argv[i], *dir = argv[i + 1], *type = argv[i + 2], *opts = argv[i + 3];
    mkdirs(dir);
    int err;
    if (!strncmp(type, APPL_FUSE_TYPE_PREFIX, prefix)) {
      char said[SAID_MAX];
      err = fuse_mount(type + prefix, dev, dir, opts, said);
      field("dir", dir);
      field_u64("errno", (uint64_t)err);
      if (err && said[0]) field("kernel", said);
    } else {
      int kmsg = open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC);
      if (kmsg >= 0) lseek(kmsg, 0, SEEK_END);
      err = mount(dev, dir, type, MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, opts) < 0 ? errno : 0;
      field("dir", dir);
      field_u64("errno", (uint64_t)err);
      if (err) kernel_says(kmsg);
      if (kmsg >= 0) close(kmsg);
    }
    if (!err) statfs_fields(dir);
    end_line();
  }
  return 0;
}

static int cmd_umount(int argc, char **argv) {
  for (int i = 0; i < argc; i++) {
    field("dir", argv[i]);
    field_u64("errno", (uint64_t)umount_dir(argv[i]));
    end_line();
  }
  return 0;
}

static int cmd_statfs(int argc, char **argv) {
  for (int i = 0; i < argc; i++) {
    field("dir", argv[i]);
    field_u64("errno", (uint64_t)statfs_fields(argv[i]));
    end_line();
  }
  return 0;
}

/* ---- walks ---- */

struct walk {
  int rootfd;
  int hash, follow, one_fs, content, defer_big;
  /* Inodes whose content was sent (hard links), as (dev, ino), open addressing. */
  uint64_t *sent;
  size_t sent_cap, sent_n;
  dev_t dev;
  uint64_t mnt_id; /* the walk's mount (statx), 0 if the kernel cannot tell */
  char path[4096]; /* in the filesystem, from "/" */
};

/* statx(2) for the mount ID alone: musl's headers have no statx. The mount ID is at byte
 * 144 of struct statx, valid when STATX_MNT_ID (0x1000) is in the returned mask. */
#ifndef SYS_statx
#define SYS_statx 332
#endif
static uint64_t mount_id(int dirfd, const char *name) {
  uint64_t stx[32] = {0}; /* struct statx: 256 bytes */
  if (syscall(SYS_statx, dirfd, *name ? name : "", AT_SYMLINK_NOFOLLOW | (*name ? 0 : AT_EMPTY_PATH), 0x1000u, stx) < 0) return 0;
  return ((uint32_t)stx[0] & 0x1000u) ? stx[144 / 8] : 0;
}

/* Whether a directory is on the walk's filesystem: its device, or (btrfs subvolumes have a
 * device number each) its mount. Another filesystem mounted inside is not walked into. */
static int same_fs(struct walk *w, int dirfd, const char *name, const struct stat *st) {
  if (!w->one_fs || st->st_dev == w->dev) return 1;
  return w->mnt_id && mount_id(dirfd, name) == w->mnt_id;
}

static char type_of(mode_t m) {
  return S_ISREG(m) ? 'f' : S_ISDIR(m) ? 'd' : S_ISLNK(m) ? 'l' : S_ISCHR(m) ? 'c' : S_ISBLK(m) ? 'b' : S_ISFIFO(m) ? 'p' : 's';
}

static void put_error(int err, const char *path) {
  put8('X');
  put32((uint32_t)err);
  put_bytes(path, strlen(path));
}

static int hash_file(int dirfd, const char *name, unsigned char out[32]) {
  char self[64];
  snprintf(self, sizeof self, "/proc/self/fd/%d", dirfd);
  /* name "": dirfd is the file itself (an O_PATH descriptor), reopened for reading. */
  int fd = *name ? openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY)
                 : open(self, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) return errno;
  static unsigned char buf[1 << 17];
  struct sha256 s;
  sha256_init(&s);
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) != 0) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int e = errno;
      close(fd);
      return e;
    }
    sha256_update(&s, buf, (size_t)n);
  }
  close(fd);
  sha256_final(&s, out);
  return 0;
}

/* True the first time an inode is seen (so its content goes once, with its first name). */
static int first_time(struct walk *w, const struct stat *st) {
  uint64_t key = ((uint64_t)st->st_dev << 40) ^ (uint64_t)st->st_ino;
  if (key == 0) key = 1;
  if (w->sent_n * 2 >= w->sent_cap) {
    size_t cap = w->sent_cap ? w->sent_cap * 2 : 1024;
    uint64_t *t = calloc(cap, sizeof *t);
    if (!t) fatal("out of memory");
    for (size_t i = 0; i < w->sent_cap; i++)
      if (w->sent[i]) {
        size_t j = w->sent[i] % cap;
        while (t[j]) j = (j + 1) % cap;
        t[j] = w->sent[i];
      }
    free(w->sent);
    w->sent = t, w->sent_cap = cap;
  }
  size_t j = key % w->sent_cap;
  while (w->sent[j]) {
    if (w->sent[j] == key) return 0;
    j = (j + 1) % w->sent_cap;
  }
  w->sent[j] = key;
  w->sent_n++;
  return 1;
}

/* The most data one extent record holds (records.ts EXTENT_MAX: the host's bound). */
#define EXTENT_MAX (1 << 16)

/* Files the host reads by itself with flag b (records.ts BIG_FILE). */
#define BIG_FILE (1 << 20)

/* A large file without holes, whose data the host reads apart with flag b. */
static int read_apart(const struct walk *w, const struct stat *st) {
  return w->defer_big && st->st_size >= BIG_FILE && st->st_blocks * 512 >= st->st_size;
}

/* A regular file's data as extents (see the record layout): holes are skipped. */
static void put_content(struct walk *w, int dirfd, const char *name, const struct stat *st) {
  int err = 0;
  if (read_apart(w, st) && (st->st_nlink <= 1 || first_time(w, st))) {
    put64(~(uint64_t)1);
    return;
  }
  if (st->st_nlink <= 1 || first_time(w, st)) {
    char self[64];
    snprintf(self, sizeof self, "/proc/self/fd/%d", dirfd);
    int fd = *name ? openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY)
                   : open(self, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    off_t at = 0;
    while (fd >= 0 && !err && at < st->st_size) {
      off_t data = lseek(fd, at, SEEK_DATA);
      if (data < 0) {
        if (errno != ENXIO) err = errno; /* ENXIO: only a hole is left */
        break;
      }
      off_t hole = lseek(fd, data, SEEK_HOLE);
      if (hole < 0 || hole > st->st_size) hole = st->st_size;
      for (at = data; at < hole && !err;) {
        /* The extent's length goes first, so a short read is padded with zeros and said. */
        size_t want = hole - at < EXTENT_MAX ? (size_t)(hole - at) : EXTENT_MAX;
        put64((uint64_t)at), put64((uint64_t)want);
        errno = 0;
        size_t got = send_range(fd, at, want);
        if (got < want) {
          err = errno ? errno : EIO;
          put_zeros(want - got);
        }
        at += (off_t)want;
      }
    }
    if (fd < 0) err = errno;
    else close(fd);
  }
  put64(~(uint64_t)0);
  put32((uint32_t)err);
}

/* One entry: `name` in `dirfd` (AT_EMPTY_PATH when name is ""), shown as w->path. */
static int put_entry(struct walk *w, int dirfd, const char *name, struct stat *st) {
  if (fstatat(dirfd, name, st, AT_SYMLINK_NOFOLLOW | (*name ? 0 : AT_EMPTY_PATH)) < 0) {
    put_error(errno, w->path);
    return -1;
  }
  char target[4096];
  ssize_t tlen = 0;
  if (S_ISLNK(st->st_mode) && (tlen = readlinkat(dirfd, name, target, sizeof target)) < 0) tlen = 0;
  unsigned char digest[32];
  int hashed = w->hash && S_ISREG(st->st_mode) && hash_file(dirfd, name, digest) == 0;
  put8('E');
  put8((unsigned)type_of(st->st_mode));
  put32(st->st_mode);
  put32(st->st_uid);
  put32(st->st_gid);
  put32((uint32_t)st->st_nlink);
  put64((uint64_t)st->st_size);
  put64((uint64_t)st->st_blocks);
  put64((uint64_t)st->st_ino);
  put32(major(st->st_rdev));
  put32(minor(st->st_rdev));
  put64((uint64_t)st->st_atim.tv_sec), put32((uint32_t)st->st_atim.tv_nsec);
  put64((uint64_t)st->st_mtim.tv_sec), put32((uint32_t)st->st_mtim.tv_nsec);
  put64((uint64_t)st->st_ctim.tv_sec), put32((uint32_t)st->st_ctim.tv_nsec);
  put_bytes(w->path, strlen(w->path));
  put_bytes(target, (size_t)tlen);
  put8((unsigned)hashed);
  if (hashed) put(digest, 32);
  if (w->content && S_ISREG(st->st_mode)) put_content(w, dirfd, name, st);
  return 0;
}

/*
 * Read-ahead of a folder's regular files ahead of their turn, when the walk reads their
 * data (content or hashes). Read one at a time, each file is a disk request of its own
 * that the walk waits for (~0.3-0.5 ms each under TCG); asked for ahead (readahead(2)
 * only queues the reads), they are in flight together, and qemu serves them in parallel
 * on the host's other cores. Measured in a restored VM, 200 files of 0.1-20 KB on xfs,
 * cold: read one by one 64-111 ms, read after a readahead of each 40-49 ms. The window
 * bounds the page cache the walk fills ahead of the host's reading; files the host reads
 * apart (flag b) are left alone.
 */
#define AHEAD_BYTES (8 << 20)

/* Queues the reads of `name` in `dirfd` if it is a regular file the walk will read; returns the bytes queued. */
static off_t read_ahead(struct walk *w, int dirfd, const char *name) {
  struct stat st;
  if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode) || st.st_size == 0) return 0;
  if (!w->hash && read_apart(w, &st)) return 0;
  off_t n = st.st_size < AHEAD_BYTES ? st.st_size : AHEAD_BYTES;
  int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) return 0;
  if (readahead(fd, 0, (size_t)n) < 0) n = 0;
  close(fd);
  return n;
}

static int by_bytes(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The entries below the directory open as `dirfd` (w->path), depth first, names in byte order. */
static void walk_below(struct walk *w, int dirfd, int depth) {
  DIR *d = fdopendir(dup(dirfd));
  if (!d) {
    put_error(errno, w->path);
    return;
  }
  size_t n = 0, cap = 64;
  char **names = malloc(cap * sizeof *names);
  struct dirent *e;
  errno = 0;
  while (names && (e = readdir(d))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    if (n == cap) {
      char **more = realloc(names, (cap *= 2) * sizeof *names);
      if (!more) break;
      names = more;
    }
    if (!(names[n] = strdup(e->d_name))) break;
    n++;
  }
  if (errno) put_error(errno, w->path);
  closedir(d);
  if (!names) fatal("out of memory");
  qsort(names, n, sizeof *names, by_bytes);
  /* Bytes queued by read_ahead for each name, the window's total, and the next name to queue. */
  off_t *queued = w->content || w->hash ? calloc(n ? n : 1, sizeof *queued) : NULL;
  off_t window = 0;
  size_t ahead = 0;
  size_t base = strlen(w->path);
  for (size_t i = 0; i < n; i++) {
    while (queued && ahead < n && (ahead <= i || window < AHEAD_BYTES)) {
      queued[ahead] = read_ahead(w, dirfd, names[ahead]);
      window += queued[ahead++];
    }
    if (base + 1 + strlen(names[i]) >= sizeof w->path) {
      put_error(ENAMETOOLONG, w->path);
    } else {
      snprintf(w->path + base, sizeof w->path - base, "%s%s", base > 1 ? "/" : "", names[i]);
      struct stat st;
      if (put_entry(w, dirfd, names[i], &st) == 0 && S_ISDIR(st.st_mode) && depth > 1 && same_fs(w, dirfd, names[i], &st)) {
        int sub = openat(dirfd, names[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (sub < 0) put_error(errno, w->path);
        else {
          walk_below(w, sub, depth - 1);
          close(sub);
        }
      }
      w->path[base] = '\0';
    }
    if (queued) window -= queued[i];
    free(names[i]);
  }
  free(queued);
  free(names);
}

static int open_root(const char *root) {
  int fd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) fatal("cannot open %s: %s", root, strerror(errno));
  return fd;
}

static int cmd_walk(int argc, char **argv) {
  if (argc != 4) fatal("walk: give ROOT PATH FLAGS DEPTH");
  struct walk w = {.rootfd = open_root(argv[0])};
  w.hash = strchr(argv[2], 'h') != NULL;
  w.follow = strchr(argv[2], 'f') != NULL;
  w.one_fs = strchr(argv[2], 'x') != NULL;
  w.content = strchr(argv[2], 'c') != NULL;
  w.defer_big = strchr(argv[2], 'b') != NULL;
  long depth = strtol(argv[3], NULL, 10);
  snprintf(w.path, sizeof w.path, "%s", *argv[1] ? argv[1] : "/");
  /* PATH itself: as a link unless asked to follow it; its parent is resolved inside the root. */
  int fd = open_in_root(w.rootfd, argv[1], O_PATH | (w.follow ? 0 : O_NOFOLLOW));
  struct stat st;
  if (fd < 0) {
    put_error(errno, w.path);
  } else if (put_entry(&w, fd, "", &st) == 0) {
    w.dev = st.st_dev;
    w.mnt_id = mount_id(fd, "");
    if (S_ISDIR(st.st_mode) && depth > 0) {
      int dir = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (dir < 0) put_error(errno, w.path);
      else {
        walk_below(&w, dir, (int)depth);
        close(dir);
      }
    }
  }
  if (fd >= 0) close(fd);
  close(w.rootfd);
  free(w.sent);
  flush_out();
  return 0;
}

/* ---- file contents ---- */

static int open_regular(int rootfd, const char *path, int *err) {
  int fd = open_in_root(rootfd, path, O_RDONLY | O_NONBLOCK | O_NOCTTY);
  struct stat st;
  *err = 0;
  if (fd < 0) {
    *err = errno;
  } else if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
    *err = S_ISDIR(st.st_mode) ? EISDIR : EINVAL;
    close(fd);
    fd = -1;
  }
  return fd;
}

/* cat's exit status when a file cannot be read: this plus its errno (1 stays fatal()'s). */
#define CAT_ERRNO_BASE 64

static int cmd_cat(int argc, char **argv) {
  if (argc != 2) fatal("cat: give ROOT PATH");
  int rootfd = open_root(argv[0]);
  int err, fd = open_regular(rootfd, argv[1], &err);
  close(rootfd);
  if (fd < 0) {
    say("%s: %s", argv[1], strerror(err));
    return CAT_ERRNO_BASE + err; /* the host names the errno */
  }
  struct stat st;
  off_t at = 0;
  for (;;) {
    /* Up to the size fstat says, then on until EOF: a file may be longer than it says (/proc). */
    size_t want = fstat(fd, &st) == 0 && st.st_size > at ? (size_t)(st.st_size - at) : EXTENT_MAX;
    errno = 0;
    size_t got = send_range(fd, at, want);
    at += (off_t)got;
    if (errno) {
      int e = errno;
      say("%s: %s", argv[1], strerror(e));
      flush_out();
      close(fd);
      return CAT_ERRNO_BASE + e;
    }
    if (got < want) break; /* EOF */
  }
  flush_out();
  close(fd);
  return 0;
}

static void read_file(int rootfd, const char *path, size_t limit) {
  static unsigned char buf[1 << 16];
  {
    int err, fd = open_regular(rootfd, path, &err);
    size_t have = 0, cap = 0;
    unsigned char *data = NULL;
    while (fd >= 0 && have < limit) {
      ssize_t n = read(fd, buf, sizeof buf < limit - have ? sizeof buf : limit - have);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) err = errno;
      if (n <= 0) break;
      if (have + (size_t)n > cap) {
        unsigned char *more = realloc(data, cap = (have + (size_t)n) * 2);
        if (!more) fatal("out of memory");
        data = more;
      }
      memcpy(data + have, buf, (size_t)n);
      have += (size_t)n;
    }
    if (fd >= 0) close(fd);
    put32((uint32_t)err);
    put64(err ? 0 : have);
    if (!err) put(data, have);
    free(data);
  }
}

/* Small files of several filesystems in one call: groups of ROOT, a count, the paths. */
static int cmd_read_files(int argc, char **argv) {
  for (int i = 0; i + 2 < argc;) {
    size_t limit = strtoull(argv[i], NULL, 10);
    int rootfd = open_root(argv[i + 1]);
    long n = strtol(argv[i + 2], NULL, 10);
    if (n < 0 || n > argc - i - 3) fatal("read-files: %s has %ld paths, fewer are given", argv[i + 1], n);
    for (long j = 0; j < n; j++) read_file(rootfd, argv[i + 3 + j], limit);
    close(rootfd);
    i += 3 + (int)n;
  }
  flush_out();
  return 0;
}

/* ---- btrfs ---- */

/* BTRFS_IOC_FORGET_DEV with no path: the kernel forgets every device it scanned that no
 * mounted filesystem uses, so that mounting one of two cloned images reads that one. */
static int cmd_btrfs_forget(void) {
  struct {
    int64_t fd;
    char name[4088];
  } args = {0, ""};
  int fd = open("/dev/btrfs-control", O_RDWR | O_CLOEXEC);
  int r = fd < 0 ? -1 : ioctl(fd, _IOW(0x94, 5, char[4096]), &args);
  field_u64("errno", r < 0 ? (uint64_t)errno : 0);
  end_line();
  if (fd >= 0) close(fd);
  flush_out();
  return 0;
}

/* One command: argv[0] is the program, argv[1] the command. Its exit status. */
static int run_command(int argc, char **argv) {
  ofill = 0;
  piped = -1;
  if (argc < 2) {
    say("usage: inspect devices|read|mount|umount|statfs|walk|cat|read-files|btrfs-forget …");
    return 2;
  }
  const char *cmd = argv[1];
  int n = argc - 2;
  char **rest = argv + 2;
  int r;
  if (!strcmp(cmd, "devices")) r = cmd_devices();
  else if (!strcmp(cmd, "read")) r = cmd_read(n, rest);
  else if (!strcmp(cmd, "mount")) r = cmd_mount(n, rest);
  else if (!strcmp(cmd, "umount")) r = cmd_umount(n, rest);
  else if (!strcmp(cmd, "statfs")) r = cmd_statfs(n, rest);
  else if (!strcmp(cmd, "walk")) r = cmd_walk(n, rest);
  else if (!strcmp(cmd, "cat")) r = cmd_cat(n, rest);
  else if (!strcmp(cmd, "read-files")) r = cmd_read_files(n, rest);
  else if (!strcmp(cmd, "btrfs-forget")) r = cmd_btrfs_forget();
  else {
    say("unknown command %s", cmd);
    return 2;
  }
  flush_out();
  return r;
}

/* ---- serving (serve.h) ---- */

/* The next request on `sock`: its arguments into argv (argv[0] is set), its stdout and
 * stderr onto 1 and 2. The argument count; 0 once the agent has gone, -1 for a bad request. */
static int next_request(int sock, char *buf, char **argv) {
  union {
    struct cmsghdr h;
    char space[CMSG_SPACE(2 * sizeof(int))];
  } ctl;
  struct iovec iov = {buf, APPL_SERVE_REQUEST_MAX};
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.space, .msg_controllen = sizeof ctl.space};
  ssize_t len;
  while ((len = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR) {}
  if (len <= 0) return 0;
  int fds[2] = {-1, -1};
  struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
  if (c && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS && c->cmsg_len == CMSG_LEN(sizeof fds))
    memcpy(fds, CMSG_DATA(c), sizeof fds);
  int ok = fds[0] >= 0 && fds[1] >= 0 && !(msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) && buf[len - 1] == '\0';
  if (ok) ok = dup2(fds[0], 1) == 1 && dup2(fds[1], 2) == 2;
  for (int i = 0; i < 2; i++)
    if (fds[i] > 2) close(fds[i]);
  if (!ok) return -1;
  int argc = 1;
  for (char *p = buf; p < buf + len && argc < APPL_SERVE_ARGS_MAX; p += strlen(p) + 1) argv[argc++] = p;
  argv[argc] = NULL;
  return argc;
}

/* inspect serve: the agent's commands, one at a time, in this process (serve.h). */
static int cmd_serve(char *self) {
  struct stat st;
  int sock = fcntl(0, F_DUPFD_CLOEXEC, 3);
  if (sock < 0 || fstat(sock, &st) < 0 || !S_ISSOCK(st.st_mode)) fatal("serve: stdin is not the agent's socket");
  int null = open("/dev/null", O_RDWR);
  if (null < 0 || dup2(null, 0) < 0) fatal("serve: /dev/null: %s", strerror(errno));
  close(null);
  static char buf[APPL_SERVE_REQUEST_MAX];
  static char *argv[APPL_SERVE_ARGS_MAX + 1];
  argv[0] = self;
  for (;;) {
    int argc = next_request(sock, buf, argv);
    if (argc == 0) return 0;
    int status = argc < 0 ? 2 : run_command(argc, argv);
    /* Its pipes closed (the agent waits for their end), and whatever the command left open. */
    dup2(0, 1);
    dup2(0, 2);
    close_others(sock);
    if (send(sock, &status, sizeof status, MSG_NOSIGNAL) != sizeof status) return 0;
  }
}

int main(int argc, char **argv) {
  if (argc == 2 && !strcmp(argv[1], APPL_SERVE_COMMAND)) return cmd_serve(argv[0]);
  return run_command(argc, argv);
}
