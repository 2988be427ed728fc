/* Paths inside an inspected filesystem: resolved in its root, never outside it. */
#include "inspect.h"

#include <sys/syscall.h>

/* openat2(2): musl has no wrapper, and the kernel headers are not in musl's include path. */
#ifndef SYS_openat2
#define SYS_openat2 437
#endif
struct open_how_ {
  uint64_t flags, mode, resolve;
};
#define RESOLVE_NO_MAGICLINKS 0x02
#define RESOLVE_BENEATH 0x08
#define RESOLVE_IN_ROOT 0x10

static int openat2_(int dirfd, const char *path, int flags, uint64_t resolve) {
  struct open_how_ how = {(uint64_t)(flags | O_CLOEXEC), 0, resolve | RESOLVE_NO_MAGICLINKS};
  return (int)syscall(SYS_openat2, dirfd, *path ? path : ".", &how, sizeof how);
}

/* Where the first piece of a long path ends: its last "/" before PATH_MAX, or 0 if none. */
static size_t piece_end(const char *path) {
  size_t end = 0;
  for (size_t i = 1; i < APPL_GUEST_PATH_MAX - 1 && path[i]; i++)
    if (path[i] == '/') end = i;
  return end;
}

/*
 * `path` as if `rootfd` were "/": its symlinks, absolute ones too, and `..` stay inside.
 * A path longer than the kernel takes in one call (PATH_MAX: a walk finds deeper ones) is
 * opened a piece at a time, each from the folder the one before it opened. Past the first
 * piece, a `..` or symlink that would leave that folder fails (RESOLVE_BENEATH) rather than
 * land somewhere else than "/" would: ENAMETOOLONG, the reason it cannot be followed.
 */
int open_in_root(int rootfd, const char *path, int flags) {
  if (strlen(path) < APPL_GUEST_PATH_MAX) return openat2_(rootfd, path, flags, RESOLVE_IN_ROOT);
  size_t end = piece_end(path);
  if (!end) return errno = ENAMETOOLONG, -1;
  char first[APPL_GUEST_PATH_MAX];
  memcpy(first, path, end);
  first[end] = '\0';
  int dir = openat2_(rootfd, first, O_PATH | O_DIRECTORY, RESOLVE_IN_ROOT);
  for (path += end; dir >= 0 && strlen(path + 1) >= APPL_GUEST_PATH_MAX;) {
    if (!(end = piece_end(path))) {
      close(dir);
      return errno = ENAMETOOLONG, -1;
    }
    memcpy(first, path + 1, end - 1);
    first[end - 1] = '\0';
    int next = openat2_(dir, first, O_PATH | O_DIRECTORY, RESOLVE_BENEATH), err = errno;
    close(dir);
    errno = err;
    dir = next, path += end;
  }
  if (dir < 0) return errno == EXDEV ? (errno = ENAMETOOLONG, -1) : -1;
  int fd = openat2_(dir, path + 1, flags, RESOLVE_BENEATH);
  int err = errno;
  close(dir);
  return fd < 0 ? (errno = err == EXDEV ? ENAMETOOLONG : err, -1) : fd;
}

/* A mode's APPL_TYPE_ letter. */
char file_type(mode_t m) {
  return S_ISREG(m)    ? APPL_TYPE_FILE
         : S_ISDIR(m)  ? APPL_TYPE_DIR
         : S_ISLNK(m)  ? APPL_TYPE_SYMLINK
         : S_ISCHR(m)  ? APPL_TYPE_CHARDEV
         : S_ISBLK(m)  ? APPL_TYPE_BLOCKDEV
         : S_ISFIFO(m) ? APPL_TYPE_FIFO
                       : APPL_TYPE_SOCKET;
}

/* The folder a filesystem is mounted on (given by the host, not by the image). */
int open_root(const char *root) {
  int fd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) fatal("cannot open %s: %s", root, strerror(errno));
  return fd;
}

/* A regular file of the filesystem, open for reading; -1 with `*err` set otherwise. */
int open_regular(int rootfd, const char *path, int *err) {
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
