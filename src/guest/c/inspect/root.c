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
#define RESOLVE_IN_ROOT 0x10

/* `path` as if `rootfd` were "/": its symlinks, absolute ones too, and `..` stay inside. */
int open_in_root(int rootfd, const char *path, int flags) {
  struct open_how_ how = {(uint64_t)(flags | O_CLOEXEC), 0, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS};
  return (int)syscall(SYS_openat2, rootfd, *path ? path : ".", &how, sizeof how);
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
