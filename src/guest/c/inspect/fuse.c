/*
 * FUSE drivers (ntfs-3g, as libguestfs reads NTFS): mounted read-only by their program, and
 * unmounted without waiting forever on one that is stuck.
 */
#include "inspect.h"

#include <sys/mount.h>
#include <sys/wait.h>

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
int fuse_mount(const char *program, const char *dev, const char *dir, const char *opts, char *said) {
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
int umount_dir(const char *dir) {
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
